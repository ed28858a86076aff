// The few DLPack types that the binding reads, declared from the DLPack specification (dmlc/dlpack,
// include/dlpack/dlpack.h): the unversioned DLManagedTensor ABI, unchanged from DLPack v0.2 through v1.x (which
// keeps it beside DLManagedTensorVersioned), and what a producer's __dlpack__() returns when the consumer
// passes no max_version. The exchange itself follows the DLPack Python specification
// (https://dmlc.github.io/dlpack/latest/python_spec.html): a PyCapsule named "dltensor", which the consumer
// renames "used_dltensor" when it takes the tensor, and whose deleter it calls when done with it.
#pragma once

#include <cstdint>

namespace lstm_native::bindings::dlpack {

// DLDeviceType values (a C enum: int-sized).
constexpr std::int32_t kDLCPU = 1;
constexpr std::int32_t kDLCUDA = 2;

// DLDataTypeCode values.
constexpr std::uint8_t kDLFloat = 2;

struct DLDevice {
  std::int32_t device_type;
  std::int32_t device_id;
};

struct DLDataType {
  std::uint8_t code;
  std::uint8_t bits;
  std::uint16_t lanes;
};

struct DLTensor {
  void* data;  // the element at index 0 is at data + byte_offset
  DLDevice device;
  std::int32_t ndim;
  DLDataType dtype;
  std::int64_t* shape;    // [ndim]
  std::int64_t* strides;  // [ndim] in elements, or null: compact row-major
  std::uint64_t byte_offset;
};

struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);  // may be null; frees the tensor and `self`
};

static_assert(sizeof(void*) != 8 || (sizeof(DLTensor) == 48 && sizeof(DLManagedTensor) == 64),
              "the DLPack ABI on a 64-bit platform");

}  // namespace lstm_native::bindings::dlpack
