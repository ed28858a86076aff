// lstm_native._core's CUDA functions (a CUDA build only): the GPU path. Numpy arrays are copied to the device
// and the results back once per call. x, h0, c0, dy, dh_n and dc_n may instead be arrays that already live
// on the current CUDA device, given as any object with __dlpack__ (CuPy arrays, PyTorch CUDA tensors): they
// are read in place. All device work runs on the legacy default stream, with the GIL released.
#include "bindings.hpp"

#if LSTM_NATIVE_WITH_CUDA
#include <cuda_runtime_api.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlpack_abi.hpp"
#include "lstm_native/cuda.hpp"

namespace lstm_native::bindings {
namespace {

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

std::string type_name(const py::handle& obj) { return py::str(py::type::of(obj).attr("__name__")); }

std::string dlpack_dtype_name(const dlpack::DLDataType& t) {  // e.g. "float64", "bfloat16", "int8x4"
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
  HostForward(const ForwardArguments& a, DLPackImports& imports) : weights(a.weights<T>()) {
    validate(a.config, weights);
    if (a.x.is_none()) throw py::type_error("x: required, got None");
    x = source<T>("x", a.x, imports), h0 = source<T>("h0", a.h0, imports), c0 = source<T>("c0", a.c0, imports);
    mask = mask_input(a.mask);
    dims = sequence_dims(a.config, x.view.shape);
  }

  // The weights and the mask copied into `lasting` (a training state keeps them), the inputs the device lacks
  // into `scratch`, and the outputs allocated in `scratch`.
  DeviceForward<T> upload(DeviceArrays& lasting, DeviceArrays& scratch, const CellConfig& config) const {
    const std::int64_t B = dims.batch, time = dims.time, Ho = output_size(config);
    return {lasting.upload(weights),
            {scratch.upload(x), scratch.upload(h0), scratch.upload(c0), lasting.upload(mask)},
            {scratch.allocate<T>({B, time, Ho}), scratch.allocate<T>({B, Ho}),
             scratch.allocate<T>({B, config.hidden_size})}};
  }

  Weights<T> weights;
  Source<T> x, h0, c0;
  Tensor<const std::uint8_t> mask;
  SequenceDims dims;
};

// What a training forward leaves on the device for its backward pass.
template <class T>
struct Resident {
  DeviceArrays memory;  // owns the weights, the mask and the workspace
  Weights<T> weights;
  Tensor<const std::uint8_t> mask;
  Workspace<T> workspace;
  SequenceDims dims;
};

// Forward on the device -> (y, h_n, c_n), new host arrays. Inference, or with `kept` the training forward,
// which leaves its weights, mask and workspace in `kept`.
template <class T>
py::tuple forward_on_device(const ForwardArguments& a, Resident<T>* kept) {
  DLPackImports imports;
  const HostForward<T> host(a, imports);
  const std::int64_t B = host.dims.batch, time = host.dims.time, Ho = output_size(a.config);
  auto [y, y_view] = output<T>({B, time, Ho});
  auto [h, h_view] = output<T>({B, Ho});
  auto [c, c_view] = output<T>({B, a.config.hidden_size});
  {
    py::gil_scoped_release release;
    DeviceArrays scratch;
    const DeviceForward<T> d = host.upload(kept ? kept->memory : scratch, scratch, a.config);
    if (kept) {
      const std::int64_t size = training_workspace_size(a.config, B, time, a.regularization);
      kept->weights = d.weights, kept->mask = d.in.mask, kept->dims = host.dims;
      kept->workspace = {kept->memory.template allocate<T>({size}).data, size};
      cuda::forward_training(a.config, d.weights, d.in, d.out, kept->workspace, a.regularization);
    } else {
      cuda::forward_inference(a.config, d.weights, d.in, d.out, a.regularization);
    }
    cuda::synchronize();
    download(d.out.y, y_view), download(d.out.h_n, h_view), download(d.out.c_n, c_view);
  }
  return py::make_tuple(y, h, c);
}

// cuda_forward_training's state (Python: CudaTrainingState), consumed by one cuda_backward.
class TrainingState {
 public:
  virtual ~TrainingState() = default;
  // -> (dx, dh0, dc0, dW, dU, db or None, dp or None, dW_hr or None), new host arrays.
  virtual py::tuple backward(const py::object& dy, const py::object& dh_n, const py::object& dc_n) = 0;
};

template <class T>
class TrainingStateOf final : public TrainingState {
 public:
  explicit TrainingStateOf(const ForwardArguments& a)
      : config_(a.config), regularization_(a.regularization), resident_(std::make_unique<Resident<T>>()) {}

  // The training forward -> (y, h_n, c_n).
  py::tuple forward(const ForwardArguments& a) { return forward_on_device<T>(a, resident_.get()); }

  py::tuple backward(const py::object& dy, const py::object& dh_n, const py::object& dc_n) override {
    if (!resident_) throw py::value_error("state: already consumed by an earlier cuda_backward call");
    DLPackImports imports;
    const Source<T> d_y = source<T>("dy", dy, imports), d_h = source<T>("dh_n", dh_n, imports),
                    d_c = source<T>("dc_n", dc_n, imports);
    const std::int64_t B = resident_->dims.batch, time = resident_->dims.time;
    auto [result, host_grads] = gradient_outputs<T>(config_, resident_->weights, B, time);
    std::unique_ptr<Resident<T>> r = std::move(resident_);  // taken: a second or concurrent call finds none
    try {
      py::gil_scoped_release release;
      DeviceArrays scratch;
      const OutputGradients<T> grad_out{scratch.upload(d_y), scratch.upload(d_h), scratch.upload(d_c)};
      const Gradients<T> grads = scratch.like(host_grads);
      cuda::backward(config_, r->weights, r->mask, B, time, grad_out, r->workspace, grads, regularization_);
      cuda::synchronize();
      download(grads, host_grads);
    } catch (const std::invalid_argument&) {  // a bad argument, found before the workspace was touched
      resident_ = std::move(r);
      throw;
    }
    return result;
  }

 private:
  CellConfig config_;
  Regularization regularization_;
  std::unique_ptr<Resident<T>> resident_;  // null once consumed
};

// The seconds of each of `repeats` device-resident calls (data uploaded once, one warm-up call first):
// forward inference, or with `training` forward_training then backward with dy, dh_n, dc_n.
template <class T>
std::vector<double> timings(const ForwardArguments& a, bool training, const py::object& dy, const py::object& dh_n,
                            const py::object& dc_n, int repeats) {
  DLPackImports imports;
  const HostForward<T> host(a, imports);
  const Source<T> d_y = source<T>("dy", dy, imports), d_h = source<T>("dh_n", dh_n, imports),
                  d_c = source<T>("dc_n", dc_n, imports);
  const std::int64_t B = host.dims.batch, time = host.dims.time;
  // host arrays only for their shapes (bench only)
  const auto host_grads = training ? gradient_outputs<T>(a.config, host.weights, B, time)
                                   : std::pair<py::tuple, Gradients<T>>{};
  std::vector<double> seconds;
  py::gil_scoped_release release;
  DeviceArrays device;
  const DeviceForward<T> d = host.upload(device, device, a.config);
  const std::int64_t size = training ? training_workspace_size(a.config, B, time, a.regularization) : 0;
  const Workspace<T> work{training ? device.allocate<T>({size}).data : nullptr, size};
  const OutputGradients<T> grad_out{device.upload(d_y), device.upload(d_h), device.upload(d_c)};
  const Gradients<T> grads = device.like(host_grads.second);
  for (int k = 0; k <= repeats; ++k) {
    const auto start = std::chrono::steady_clock::now();
    if (training) {
      cuda::forward_training(a.config, d.weights, d.in, d.out, work, a.regularization);
      cuda::backward(a.config, d.weights, d.in.mask, B, time, grad_out, work, grads, a.regularization);
    } else {
      cuda::forward_inference(a.config, d.weights, d.in, d.out, a.regularization);
    }
    cuda::synchronize();
    if (k > 0) seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return seconds;
}

}  // namespace

void add_cuda_functions(py::module_& m) {
  m.def("cuda_device_count", []() { return cuda::device_count(); },
        "Number of CUDA devices usable (0 in a CPU-only build, or without a driver or device).");

  py::class_<TrainingState>(
      m, "CudaTrainingState",
      "What cuda_backward needs from a cuda_forward_training call, kept on the device: the weights, the mask and "
      "the training workspace. One cuda_backward consumes it; its device memory is freed then, or when it is "
      "garbage-collected.");

  def_forward<bool, py::object, py::object, py::object, int>(
      m, "cuda_forward",
      [](const ForwardArguments& a, bool training, const py::object& dy, const py::object& dh_n,
         const py::object& dc_n, int repeats) {
        return by_dtype(a.W, [&](auto scalar) -> py::object {
          using T = decltype(scalar);
          if (repeats > 0) return py::cast(timings<T>(a, training, dy, dh_n, dc_n, repeats));
          if (!training) return forward_on_device<T>(a, nullptr);
          TrainingStateOf<T> state(a);
          const py::tuple outputs = state.forward(a);
          return outputs + state.backward(dy, dh_n, dc_n);
        });
      },
      py::arg("training") = false, py::arg("dy") = py::none(), py::arg("dh_n") = py::none(),
      py::arg("dc_n") = py::none(), py::arg("repeats") = 0,
      "The GPU path for tests and benchmarks. training=False: forward inference -> (y, h_n, c_n). training=True: "
      "forward_training then backward with dy, dh_n, dc_n -> (y, h_n, c_n, dx, dh0, dc0, dW, dU, db or None, dp "
      "or None, dW_hr or None). repeats=N > 0: instead, the seconds of each of N device-resident calls (data "
      "uploaded once, one warm-up call first). Numpy arrays are copied to the device and back; x, h0, c0, dy, "
      "dh_n, dc_n may be CUDA arrays with __dlpack__ (read in place).");

  def_forward<>(
      m, "cuda_forward_training",
      [](const ForwardArguments& a) {
        return by_dtype(a.W, [&](auto scalar) {
          using T = decltype(scalar);
          auto state = std::make_unique<TrainingStateOf<T>>(a);
          const py::tuple outputs = state->forward(a);
          return py::make_tuple(outputs[0], outputs[1], outputs[2], py::cast(std::unique_ptr<TrainingState>(std::move(state))));
        });
      },
      "The training forward on the GPU -> (y, h_n, c_n, state): y, h_n, c_n new numpy arrays; state a "
      "CudaTrainingState, which keeps the weights, the mask and the workspace on the device for one cuda_backward. "
      "Numpy arrays are copied to the device; x, h0, c0 may be CUDA arrays with __dlpack__ (read in place).");

  m.def(
      "cuda_backward",
      [](TrainingState& state, const py::object& dy, const py::object& dh_n, const py::object& dc_n) {
        return state.backward(dy, dh_n, dc_n);
      },
      py::arg("state"), py::kw_only(), py::arg("dy") = py::none(), py::arg("dh_n") = py::none(),
      py::arg("dc_n") = py::none(),
      "Backward after cuda_forward_training, on the GPU -> (dx, dh0, dc0, dW, dU, db or None, dp or None, dW_hr "
      "or None), new numpy arrays. dy [B,T,Ho], dh_n [B,Ho], dc_n [B,H] are optional (zero when omitted): numpy "
      "arrays, or CUDA arrays with __dlpack__. Consumes the state: a second call raises ValueError.");
}

}  // namespace lstm_native::bindings
#endif
