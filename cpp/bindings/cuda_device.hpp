// What the CUDA functions of lstm_native._core (cuda_bindings.cpp) and the benchmark module
// lstm_native._cuda_bench (cuda_bench.cpp) share: device memory, inputs taken from numpy (copied to the device)
// or from CUDA arrays by DLPack (read in place), and the host and device sides of a forward call. A CUDA build
// only.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "dlpack_abi.hpp"
#include "lstm_native/cuda.hpp"

namespace lstm_native::bindings {

template <class G>  // Gradients<T>, const or not
auto gradient_tensors(G& g) {
  return std::array{&g.dx, &g.dh0, &g.dc0, &g.dW, &g.dU, &g.db, &g.dpeephole, &g.dprojection};
}

// An input as Python gave it: a host view (numpy; copied to the device) or a device view (DLPack; used in place).
template <class T>
struct Source {
  Tensor<const T> view;
  bool on_device = false;
};

// Device memory, freed with this object.
class DeviceArrays {
 public:
  DeviceArrays() = default;
  DeviceArrays(const DeviceArrays&) = delete;
  DeviceArrays& operator=(const DeviceArrays&) = delete;
  ~DeviceArrays() {
    for (void* pointer : owned_) cuda::device_free(pointer);
  }
  template <class T>
  Tensor<T> allocate(const std::vector<std::int64_t>& shape) {
    std::int64_t count = 1;
    for (std::int64_t d : shape) count *= d;
    T* data = static_cast<T*>(cuda::device_malloc(sizeof(T) * std::size_t(count)));
    owned_.push_back(data);
    return Tensor<T>(data, shape);
  }
  template <class T>
  Tensor<const T> upload(const Tensor<const T>& host) {
    if (host.empty()) return {};
    Tensor<T> device = allocate<T>(host.shape);
    cuda::copy_to_device(device.data, host.data, sizeof(T) * std::size_t(host.numel()));
    return device;
  }
  template <class T>
  Tensor<const T> upload(const Source<T>& source) {
    return source.on_device ? source.view : upload(source.view);
  }
  template <class T>
  Weights<T> upload(const Weights<T>& w) {
    return {upload(w.W), upload(w.U), upload(w.b), upload(w.peephole), upload(w.projection)};
  }
  // Device gradients of the shapes of `host`'s (absent where it has none).
  template <class T>
  Gradients<T> like(const Gradients<T>& host) {
    Gradients<T> device;
    const auto from = gradient_tensors(host);
    const auto to = gradient_tensors(device);
    for (std::size_t k = 0; k < from.size(); ++k)
      if (!from[k]->empty()) *to[k] = allocate<T>(from[k]->shape);
    return device;
  }

 private:
  std::vector<void*> owned_;
};

template <class T>
void download(const Tensor<T>& device, const Tensor<T>& host) {
  if (!host.empty()) cuda::copy_to_host(host.data, device.data, sizeof(T) * std::size_t(host.numel()));
}

template <class T>
void download(const Gradients<T>& device, const Gradients<T>& host) {
  const auto from = gradient_tensors(device);
  const auto to = gradient_tensors(host);
  for (std::size_t k = 0; k < from.size(); ++k) download(*from[k], *to[k]);
}

inline std::string type_name(const py::handle& obj) { return py::str(py::type::of(obj).attr("__name__")); }

inline std::string dlpack_dtype_name(const dlpack::DLDataType& t) {  // e.g. "float64", "bfloat16", "int8x4"
  static const char* const codes[] = {"int", "uint", "float", "opaque", "bfloat", "complex", "bool"};
  std::string name = t.code < 7 ? codes[t.code] : "(DLPack type code " + std::to_string(t.code) + ")";
  name += std::to_string(t.bits);
  return t.lanes == 1 ? name : name + "x" + std::to_string(t.lanes);
}

// DLPack tensors taken from Python objects by the DLPack Python specification's capsule protocol. Each one is
// handed back (its deleter called) when this object dies: declare it before the GIL is released, so that it
// dies with the GIL held and after the device work that reads the tensors has been synchronized.
class DLPackImports {
 public:
  DLPackImports() = default;
  DLPackImports(const DLPackImports&) = delete;
  DLPackImports& operator=(const DLPackImports&) = delete;
  ~DLPackImports() {
    for (dlpack::DLManagedTensor* tensor : taken_)
      if (tensor->deleter) tensor->deleter(tensor);
  }

  // The data of `obj` (which has __dlpack__), which must be a C-contiguous, aligned array of T on the current
  // CUDA device.
  template <class T>
  Tensor<const T> take(const char* name, const py::object& obj) {
    const std::string what(name);
    const auto device = obj.attr("__dlpack_device__")().cast<std::pair<int, int>>();
    if (device.first != dlpack::kDLCUDA)
      throw py::type_error(what + ": expected a numpy array or an array on a CUDA device, got a " + type_name(obj) +
                           " on DLPack device type " + std::to_string(device.first) +
                           (device.first == dlpack::kDLCPU ? " (CPU)" : ""));
    // The consumer's stream, 1: the legacy default stream, on which the producer orders its pending work first.
    const py::object capsule = obj.attr("__dlpack__")(py::arg("stream") = 1);
    if (!PyCapsule_IsValid(capsule.ptr(), "dltensor"))
      throw py::type_error(what + ": " + type_name(obj) + ".__dlpack__() did not return a DLPack capsule named \"dltensor\"");
    auto* managed = static_cast<dlpack::DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
    taken_.push_back(managed);
    if (PyCapsule_SetName(capsule.ptr(), "used_dltensor") != 0) {  // the capsule still owns it
      taken_.pop_back();
      throw py::error_already_set();
    }
    return checked_view<T>(what, managed->dl_tensor);
  }

 private:
  template <class T>
  static Tensor<const T> checked_view(const std::string& what, const dlpack::DLTensor& t) {
    if (t.dtype.code != dlpack::kDLFloat || t.dtype.bits != 8 * sizeof(T) || t.dtype.lanes != 1)
      throw py::type_error(what + ": expected dtype " + (std::is_same_v<T, float> ? "float32" : "float64") +
                           " (the dtype of W), got " + dlpack_dtype_name(t.dtype));
    if (t.ndim < 0 || (t.ndim > 0 && !t.shape)) throw py::value_error(what + ": a DLPack tensor without a shape");
    std::vector<std::int64_t> shape(t.shape, t.shape + t.ndim);
    if (t.strides) {  // compact row-major; a dimension of size 1 may have any stride
      std::int64_t expected = 1;
      for (std::int32_t d = t.ndim - 1; d >= 0; --d) {
        if (shape[d] != 1 && t.strides[d] != expected)
          throw py::value_error(what + ": must be C-contiguous (shape " + shape_to_string(shape) + ", strides " +
                                shape_to_string(std::vector<std::int64_t>(t.strides, t.strides + t.ndim)) + ")");
        expected *= shape[d];
      }
    }
    const char* data = static_cast<const char*>(t.data) + t.byte_offset;
    if (reinterpret_cast<std::uintptr_t>(data) % alignof(T) != 0) throw py::value_error(what + ": must be aligned");
    int current = 0;
    if (const cudaError_t error = cudaGetDevice(&current); error != cudaSuccess) {
      cudaGetLastError();  // clear it
      throw std::runtime_error(std::string("CUDA: cudaGetDevice: ") + cudaGetErrorString(error));
    }
    if (t.device.device_id != current)
      throw py::value_error(what + ": on CUDA device " + std::to_string(t.device.device_id) +
                            ", but the calls run on the current device, " + std::to_string(current));
    return Tensor<const T>(reinterpret_cast<const T*>(data), std::move(shape));
  }

  std::vector<dlpack::DLManagedTensor*> taken_;
};

template <class T>
Source<T> source(const char* name, const py::object& obj, DLPackImports& imports) {
  if (obj.is_none() || py::isinstance<py::array>(obj)) return {input<T>(name, obj), false};
  if (!py::hasattr(obj, "__dlpack__"))
    throw py::type_error(std::string(name) + ": expected a numpy array or a CUDA array with __dlpack__ (CuPy, "
                         "PyTorch), got " + type_name(obj));
  return {imports.take<T>(name, obj), true};
}

// The device side of a forward call: weights, inputs and room for the outputs.
template <class T>
struct DeviceForward {
  Weights<T> weights;
  SequenceInput<T> in;
  SequenceOutput<T> out;
};

// The host side of a forward call, checked with the GIL held; DLPack inputs are taken into `imports`.
template <class T>
struct HostForward {
  HostForward(const SequenceArguments& a, DLPackImports& imports) : weights(a.weights<T>()) {
    validate(a.config, weights);
    if (a.x.is_none()) throw py::type_error("x: required, got None");
    x = source<T>("x", a.x, imports), h0 = source<T>("h0", a.h0, imports), c0 = source<T>("c0", a.c0, imports);
    mask = mask_input(a.mask);
    dims = sequence_dims(a.config, x.view.shape);
  }

  // The weights, the mask and the inputs the device lacks copied into `device`, and the outputs allocated there.
  DeviceForward<T> upload(DeviceArrays& device, const CellConfig& config) const {
    const std::int64_t B = dims.batch, time = dims.time, Ho = output_size(config);
    return {device.upload(weights),
            {device.upload(x), device.upload(h0), device.upload(c0), device.upload(mask)},
            {device.allocate<T>({B, time, Ho}), device.allocate<T>({B, Ho}), device.allocate<T>({B, config.hidden_size})}};
  }

  Weights<T> weights;
  Source<T> x, h0, c0;
  Tensor<const std::uint8_t> mask;
  SequenceDims dims;
};

}  // namespace lstm_native::bindings
