// lstm_native._core: the thin pybind11 layer over the C++ core. It checks that each array is a numpy
// array of the call's dtype, C-contiguous and aligned (never copying), allocates the outputs, releases the
// GIL and calls the core; the core checks every shape. std::invalid_argument becomes ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "lstm_native/lstm_native.hpp"
#if LSTM_NATIVE_WITH_CUDA
#include "lstm_native/cuda.hpp"
#endif

namespace py = pybind11;
using namespace lstm_native;

namespace {

std::vector<std::int64_t> shape_of(const py::array& a) {
  return std::vector<std::int64_t>(a.shape(), a.shape() + a.ndim());
}

// numpy's dtype equality: same type and byte order.
bool same_dtype(const py::dtype& a, const py::dtype& b) { return a.attr("__eq__")(b).cast<bool>(); }

// The array behind `obj`, which must be a numpy array of dtype T, C-contiguous and aligned.
template <class T>
py::array checked_array(const char* name, const py::object& obj) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + ": expected a numpy array, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!same_dtype(a.dtype(), py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": expected dtype " + std::string(py::str(py::dtype::of<T>())) +
                         ", got " + std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + ": must be C-contiguous");
  if (!(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(std::string(name) + ": must be aligned");
  return a;
}

// A read-only view of an optional argument (None: an empty view).
template <class T>
Tensor<const T> input(const char* name, const py::object& obj) {
  if (obj.is_none()) return {};
  py::array a = checked_array<T>(name, obj);
  return Tensor<const T>(static_cast<const T*>(a.data()), shape_of(a));
}

template <class T>
Tensor<const T> required_input(const char* name, const py::object& obj) {
  if (obj.is_none()) throw py::type_error(std::string(name) + ": required, got None");
  return input<T>(name, obj);
}

Tensor<const std::uint8_t> mask_input(const py::object& obj) {
  if (!obj.is_none() && py::isinstance<py::array>(obj) &&
      same_dtype(py::reinterpret_borrow<py::array>(obj).dtype(), py::dtype::of<bool>()))
    return input<std::uint8_t>("mask", obj.attr("view")(py::dtype::of<std::uint8_t>()));
  return input<std::uint8_t>("mask", obj);
}

// A new array of `shape` and a writable view of it.
template <class T>
std::pair<py::array_t<T>, Tensor<T>> output(const std::vector<std::int64_t>& shape) {
  py::array_t<T> a(std::vector<py::ssize_t>(shape.begin(), shape.end()));
  return {a, Tensor<T>(a.mutable_data(), shape)};
}

struct Variant {
  Peephole peephole;
  OutputPeepholeSource source;
};

Variant parse_variant(const std::string& peephole, const std::string& source) {
  return {parse_peephole(peephole), parse_output_peephole_source(source)};
}

template <class T>
Weights<T> weights_of(const py::object& W, const py::object& U, const py::object& b, const py::object& p,
                      const py::object& W_hr) {
  return {required_input<T>("W", W), required_input<T>("U", U), input<T>("b", b), input<T>("p", p),
          input<T>("W_hr", W_hr)};
}

template <class T>
py::tuple forward_impl(const py::object& x_obj, const Weights<T>& weights, const CellConfig& config,
                       const py::object& h0, const py::object& c0, const py::object& mask, bool training,
                       const Regularization& reg, const py::object& workspace_in = py::none()) {
  validate(config, weights);
  const SequenceInput<T> in{required_input<T>("x", x_obj), input<T>("h0", h0), input<T>("c0", c0),
                            mask_input(mask)};
  const SequenceDims dims = sequence_dims(config, in.x.shape);
  const std::int64_t B = dims.batch, time = dims.time, H = config.hidden_size, Ho = output_size(config);
  auto [y, y_view] = output<T>({B, time, Ho});
  auto [h, h_view] = output<T>({B, Ho});
  auto [c, c_view] = output<T>({B, H});
  const SequenceOutput<T> out{y_view, h_view, c_view};
  py::object workspace = py::none();
  if (training) {
    const std::int64_t size = training_workspace_size(config, B, time, reg);
    if (workspace_in.is_none()) {
      workspace = output<T>({size}).first;
    } else {  // the caller's, reused: it must be a writable 1-d array that is large enough
      const Tensor<const T> given = input<T>("workspace", workspace_in);
      if (given.shape.size() != 1 || given.numel() < size || !py::reinterpret_borrow<py::array>(workspace_in).writeable())
        throw py::value_error("workspace: expected a writable 1-d array of at least " + std::to_string(size) +
                              " elements, got shape " + shape_to_string(given.shape));
      workspace = workspace_in;
    }
    py::array ws = py::reinterpret_borrow<py::array>(workspace);
    const Workspace<T> work{static_cast<T*>(ws.mutable_data()), static_cast<std::int64_t>(ws.size())};
    {
      py::gil_scoped_release release;
      forward_training(config, weights, in, out, work, reg);
    }
  } else {
    py::gil_scoped_release release;
    forward_inference(config, weights, in, out, reg);
  }
  return py::make_tuple(y, h, c, workspace);
}

template <class T>
py::tuple backward_impl(const Weights<T>& weights, const CellConfig& config, const py::object& mask,
                        const py::object& dy, const py::object& dh_n, const py::object& dc_n,
                        const py::object& workspace_obj, std::int64_t batch, std::int64_t time,
                        const Regularization& reg) {
  validate(config, weights);
  const std::int64_t I = config.input_size, H = config.hidden_size, Ho = output_size(config);
  const Tensor<const T> ws = required_input<T>("workspace", workspace_obj);
  if (!py::reinterpret_borrow<py::array>(workspace_obj).writeable())
    throw py::value_error("workspace: must be writable");
  const Workspace<T> work{const_cast<T*>(ws.data), ws.numel()};
  const OutputGradients<T> grad_out{input<T>("dy", dy), input<T>("dh_n", dh_n), input<T>("dc_n", dc_n)};
  training_workspace_size(config, batch, time, reg);  // checks batch and time before anything is allocated
  auto [dx, dx_view] = output<T>({batch, time, I});
  auto [dh0, dh0_view] = output<T>({batch, Ho});
  auto [dc0, dc0_view] = output<T>({batch, H});
  auto [dW, dW_view] = output<T>({I, 4 * H});
  auto [dU, dU_view] = output<T>({Ho, 4 * H});
  Gradients<T> grads{dx_view, dh0_view, dc0_view, dW_view, dU_view, {}, {}, {}};
  py::object db = py::none(), dp = py::none(), dW_hr = py::none();
  if (!weights.b.empty()) {
    auto [array, view] = output<T>({4 * H});
    grads.db = view;
    db = array;
  }
  if (!weights.peephole.empty()) {
    auto [array, view] = output<T>(weights.peephole.shape);
    grads.dpeephole = view;
    dp = array;
  }
  if (!weights.projection.empty()) {
    auto [array, view] = output<T>(weights.projection.shape);
    grads.dprojection = view;
    dW_hr = array;
  }
  const Tensor<const std::uint8_t> mask_view = mask_input(mask);
  {
    py::gil_scoped_release release;
    backward(config, weights, mask_view, batch, time, grad_out, work, grads, reg);
  }
  return py::make_tuple(dx, dh0, dc0, dW, dU, db, dp, dW_hr);
}

template <class T>
py::dict trace_impl(const py::object& x_obj, const Weights<T>& weights, const CellConfig& config, const py::object& h0,
                    const py::object& c0, const py::object& mask, const Regularization& reg) {
  const py::tuple forward = forward_impl<T>(x_obj, weights, config, h0, c0, mask, true, reg);
  const py::array workspace = forward[3].cast<py::array>(), y = forward[0].cast<py::array>();
  const std::int64_t B = y.shape(0), time = y.shape(1), H = config.hidden_size, Ho = output_size(config);
  py::dict result;
  Trace<T> trace;
  for (auto [name, view] : {std::pair{"i", &trace.i}, {"f", &trace.f}, {"g", &trace.g}, {"o", &trace.o},
                            {"c", &trace.c}, {"h", &trace.h}}) {
    auto [array, tensor] = output<T>({B, time, name[0] == 'h' ? Ho : H});
    *view = tensor;
    result[name] = array;
  }
  const Workspace<T> work{static_cast<T*>(const_cast<void*>(workspace.data())), workspace.size()};
  const Tensor<const std::uint8_t> mask_view = mask_input(mask);
  {
    py::gil_scoped_release release;
    read_trace(config, B, time, mask_view, work, trace, reg);
  }
  return result;
}

template <class T>
py::tuple step_impl(const Weights<T>& weights, const CellConfig& config, const py::object& x, const py::object& h,
                    const py::object& c, const Regularization& reg) {
  validate(config, weights);
  const Tensor<const T> x_view = required_input<T>("x", x);
  if (x_view.shape.size() != 2)
    throw py::value_error("x: expected shape [B, " + std::to_string(config.input_size) + "], got " +
                          shape_to_string(x_view.shape));
  const std::int64_t B = x_view.shape[0], H = config.hidden_size;
  auto [h_new, h_view] = output<T>({B, output_size(config)});
  auto [c_new, c_view] = output<T>({B, H});
  const Tensor<const T> h_prev = required_input<T>("h", h), c_prev = required_input<T>("c", c);
  {
    py::gil_scoped_release release;
    forward_step(config, weights, x_view, h_prev, c_prev, h_view, c_view, reg);
  }
  return py::make_tuple(h_new, c_new);
}

// Runs fn<float> or fn<double> by the dtype of W.
template <class Fn>
auto by_dtype(const py::object& W, const Fn& fn) -> decltype(fn(float{})) {
  if (py::isinstance<py::array>(W)) {
    const py::dtype dtype = py::reinterpret_borrow<py::array>(W).dtype();
    if (same_dtype(dtype, py::dtype::of<float>())) return fn(float{});
    if (same_dtype(dtype, py::dtype::of<double>())) return fn(double{});
  }
  throw py::type_error("W: expected a numpy array of dtype float32 or float64");
}

Regularization regularization_of(double dropout, double recurrent_dropout, double zoneout_h, double zoneout_c,
                                 double weight_drop, std::uint64_t seed) {
  const Regularization reg{dropout, recurrent_dropout, zoneout_h, zoneout_c, weight_drop, seed};
  validate(reg);
  return reg;
}

CellConfig config_of(const py::object& W, const py::object& U, const py::object& W_hr, const Variant& v,
                     bool zero_output_for_mask) {
  auto shape = [](const char* name, const py::object& obj) {
    if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(name) + ": expected a numpy array");
    return shape_of(py::reinterpret_borrow<py::array>(obj));
  };
  const std::vector<std::int64_t> projection_shape = W_hr.is_none() ? std::vector<std::int64_t>{} : shape("W_hr", W_hr);
  if (!W_hr.is_none() && projection_shape.empty())  // a 0-d array: no projection shape at all
    throw py::value_error("W_hr: expected shape [H, P], got []");
  return config_from_shapes(shape("W", W), shape("U", U), v.peephole, v.source, zero_output_for_mask, projection_shape);
}


#if LSTM_NATIVE_WITH_CUDA
// The GPU path for host (numpy) arrays: every input is copied to the device and every output back, once per
// call; the device memory lives for the call only. (A device-resident path, e.g. __dlpack__, is later work.)
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
    Tensor<T> device = allocate<std::remove_const_t<T>>(host.shape);
    cuda::copy_to_device(device.data, host.data, sizeof(T) * std::size_t(host.numel()));
    return device;
  }
  template <class T>
  Weights<T> upload(const Weights<T>& w) {
    return {upload(w.W), upload(w.U), upload(w.b), upload(w.peephole), upload(w.projection)};
  }

 private:
  std::vector<void*> owned_;
};

template <class T>
void download(const Tensor<T>& device, const Tensor<T>& host) {
  if (!host.empty()) cuda::copy_to_host(host.data, device.data, sizeof(T) * std::size_t(host.numel()));
}

// forward (inference) -> (y, h_n, c_n); with training, forward_training then backward with dy, dh_n, dc_n
// -> (y, h_n, c_n, dx, dh0, dc0, dW, dU, db or None, dp or None, dW_hr or None). With repeats > 0: the seconds of each of
// `repeats` device-resident calls (after one warm-up), each synchronized, for benchmarks.
template <class T>
py::object cuda_impl(const py::object& x_obj, const Weights<T>& weights, const CellConfig& config, const py::object& h0,
                    const py::object& c0, const py::object& mask, bool training, const Regularization& reg,
                    const py::object& dy, const py::object& dh_n, const py::object& dc_n, int repeats) {
  validate(config, weights);
  const SequenceInput<T> in{required_input<T>("x", x_obj), input<T>("h0", h0), input<T>("c0", c0), mask_input(mask)};
  const SequenceDims dims = sequence_dims(config, in.x.shape);
  const std::int64_t B = dims.batch, time = dims.time, I = config.input_size, H = config.hidden_size;
  const std::int64_t Ho = output_size(config);
  auto [y, y_view] = output<T>({B, time, Ho});
  auto [h, h_view] = output<T>({B, Ho});
  auto [c, c_view] = output<T>({B, H});
  const OutputGradients<T> grad_out{input<T>("dy", dy), input<T>("dh_n", dh_n), input<T>("dc_n", dc_n)};
  std::vector<py::object> grads_out;
  std::vector<double> seconds;
  Gradients<T> host_grads;
  if (training && repeats <= 0) {
    auto add = [&](std::vector<std::int64_t> shape, Tensor<T>& view) {
      auto [array, tensor] = output<T>(shape);
      view = tensor;
      grads_out.push_back(array);
    };
    add({B, time, I}, host_grads.dx);
    add({B, Ho}, host_grads.dh0);
    add({B, H}, host_grads.dc0);
    add({I, 4 * H}, host_grads.dW);
    add({Ho, 4 * H}, host_grads.dU);
    if (!weights.b.empty()) add({4 * H}, host_grads.db); else grads_out.push_back(py::none());
    if (!weights.peephole.empty()) add(weights.peephole.shape, host_grads.dpeephole); else grads_out.push_back(py::none());
    if (!weights.projection.empty()) add(weights.projection.shape, host_grads.dprojection); else grads_out.push_back(py::none());
  }
  {
    py::gil_scoped_release release;
    DeviceArrays device;
    const Weights<T> w = device.upload(weights);
    const SequenceInput<T> d_in{device.upload(in.x), device.upload(in.h0), device.upload(in.c0), device.upload(in.mask)};
    const SequenceOutput<T> d_out{device.allocate<T>({B, time, Ho}), device.allocate<T>({B, Ho}),
                                  device.allocate<T>({B, H})};
    if (repeats > 0) {  // timing: the data stay on the device; one warm-up call, then `repeats` timed calls
      const std::int64_t size = training ? training_workspace_size(config, B, time, reg) : 0;
      const Workspace<T> work{training ? device.allocate<T>({size}).data : nullptr, size};
      const OutputGradients<T> d_grad_out{device.upload(grad_out.dy), device.upload(grad_out.dh_n),
                                          device.upload(grad_out.dc_n)};
      const Gradients<T> d_grads{device.allocate<T>({B, time, I}), device.allocate<T>({B, Ho}),
                                 device.allocate<T>({B, H}), device.allocate<T>({I, 4 * H}),
                                 device.allocate<T>({Ho, 4 * H}),
                                 weights.b.empty() ? Tensor<T>() : device.allocate<T>({4 * H}),
                                 weights.peephole.empty() ? Tensor<T>() : device.allocate<T>(weights.peephole.shape),
                                 weights.projection.empty() ? Tensor<T>() : device.allocate<T>(weights.projection.shape)};
      for (int k = 0; k <= repeats; ++k) {
        const auto start = std::chrono::steady_clock::now();
        if (training) {
          cuda::forward_training(config, w, d_in, d_out, work, reg);
          cuda::backward(config, w, d_in.mask, B, time, d_grad_out, work, d_grads, reg);
        } else {
          cuda::forward_inference(config, w, d_in, d_out, reg);
        }
        cuda::synchronize();
        if (k > 0) seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
    } else if (!training) {
      cuda::forward_inference(config, w, d_in, d_out, reg);
    } else {
      const std::int64_t size = training_workspace_size(config, B, time, reg);
      const Workspace<T> work{device.allocate<T>({size}).data, size};
      cuda::forward_training(config, w, d_in, d_out, work, reg);
      const OutputGradients<T> d_grad_out{device.upload(grad_out.dy), device.upload(grad_out.dh_n),
                                          device.upload(grad_out.dc_n)};
      Gradients<T> d_grads;
      auto like = [&](const Tensor<T>& host) { return host.empty() ? Tensor<T>() : device.allocate<T>(host.shape); };
      d_grads.dx = like(host_grads.dx), d_grads.dh0 = like(host_grads.dh0), d_grads.dc0 = like(host_grads.dc0);
      d_grads.dW = like(host_grads.dW), d_grads.dU = like(host_grads.dU), d_grads.db = like(host_grads.db);
      d_grads.dpeephole = like(host_grads.dpeephole), d_grads.dprojection = like(host_grads.dprojection);
      cuda::backward(config, w, d_in.mask, B, time, d_grad_out, work, d_grads, reg);
      cuda::synchronize();
      download(d_grads.dx, host_grads.dx), download(d_grads.dh0, host_grads.dh0), download(d_grads.dc0, host_grads.dc0);
      download(d_grads.dW, host_grads.dW), download(d_grads.dU, host_grads.dU), download(d_grads.db, host_grads.db);
      download(d_grads.dpeephole, host_grads.dpeephole), download(d_grads.dprojection, host_grads.dprojection);
    }
    cuda::synchronize();
    download(d_out.y, y_view), download(d_out.h_n, h_view), download(d_out.c_n, c_view);
  }
  if (repeats > 0) return py::cast(seconds);
  if (!training) return py::make_tuple(y, h, c);
  py::tuple result(3 + grads_out.size());
  result[0] = y, result[1] = h, result[2] = c;
  for (std::size_t k = 0; k < grads_out.size(); ++k) result[3 + k] = grads_out[k];
  return result;
}
#endif
}  // namespace

// Built three times on x86-64: _core (portable), _core_avx2 (AVX2 + FMA) and _core_avx512; lstm_native/_backend.py
// picks one.
#ifndef LSTM_NATIVE_MODULE_NAME
#define LSTM_NATIVE_MODULE_NAME _core
#endif

PYBIND11_MODULE(LSTM_NATIVE_MODULE_NAME, m) {
  m.doc() = "lstm_native's native core: the peephole LSTM cell, forward and backward (see lstm_native.ops).";
  m.def(
      "cpu_supports",
      [](const std::string& isa) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        if (isa == "avx2") return avx2;
        if (isa == "avx512")
          return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
#endif
        if (isa != "avx2" && isa != "avx512") throw py::value_error("isa: expected \"avx2\" or \"avx512\", got \"" + isa + "\"");
        return false;
      },
      py::arg("isa"), "Whether this CPU runs the build for `isa`: \"avx2\" (AVX2 + FMA) or \"avx512\" (F, DQ, VL, BW).");
  m.attr("__version__") = LSTM_NATIVE_VERSION;
  m.attr("with_cuda") = static_cast<bool>(LSTM_NATIVE_WITH_CUDA);
  m.attr("with_openmp") = static_cast<bool>(LSTM_NATIVE_WITH_OPENMP);
  m.attr("with_model_io") = static_cast<bool>(LSTM_NATIVE_WITH_MODEL_IO);
#if LSTM_NATIVE_WITH_CUDA
  m.def("cuda_device_count", []() { return cuda::device_count(); },
        "Number of CUDA devices usable (0 in a CPU-only build, or without a driver or device).");
  m.def(
      "cuda_forward",
      [](const py::object& x, const py::object& W, const py::object& U, const py::object& b, const py::object& p,
         const py::object& W_hr, const py::object& h0, const py::object& c0, const py::object& mask,
         const std::string& peephole, const std::string& output_peephole_source, bool zero_output_for_mask,
         bool training, double dropout, double recurrent_dropout, double zoneout_h, double zoneout_c,
         double weight_drop, std::uint64_t seed, const py::object& dy, const py::object& dh_n, const py::object& dc_n,
         int repeats) {
        const CellConfig config =
            config_of(W, U, W_hr, parse_variant(peephole, output_peephole_source), zero_output_for_mask);
        const Regularization reg =
            regularization_of(dropout, recurrent_dropout, zoneout_h, zoneout_c, weight_drop, seed);
        return by_dtype(W, [&](auto scalar) {
          using T = decltype(scalar);
          return cuda_impl<T>(x, weights_of<T>(W, U, b, p, W_hr), config, h0, c0, mask, training, reg, dy, dh_n, dc_n,
                              repeats);
        });
      },
      py::kw_only(), py::arg("x"), py::arg("W"), py::arg("U"), py::arg("b") = py::none(), py::arg("p") = py::none(),
      py::arg("W_hr") = py::none(), py::arg("h0") = py::none(), py::arg("c0") = py::none(), py::arg("mask") = py::none(),
      py::arg("peephole") = "diagonal", py::arg("output_peephole_source") = "current",
      py::arg("zero_output_for_mask") = false, py::arg("training") = false, py::arg("dropout") = 0.0,
      py::arg("recurrent_dropout") = 0.0, py::arg("zoneout_h") = 0.0, py::arg("zoneout_c") = 0.0,
      py::arg("weight_drop") = 0.0, py::arg("seed") = 0, py::arg("dy") = py::none(), py::arg("dh_n") = py::none(),
      py::arg("dc_n") = py::none(), py::arg("repeats") = 0,
      "The GPU path on host arrays (copied to the device and back once per call). training=False: forward "
      "inference -> (y, h_n, c_n). training=True: forward_training then backward with dy, dh_n, dc_n -> (y, h_n, "
      "c_n, dx, dh0, dc0, dW, dU, db or None, dp or None, dW_hr or None). repeats=N > 0: instead, the seconds of each of N "
      "device-resident calls (data uploaded once, one warm-up call first), for benchmarks.");
#else
  m.def("cuda_device_count", []() { return 0; }, "Number of CUDA devices usable (0 in a CPU-only build).");
#endif
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Threads used by later calls (n >= 1).");
  m.def("get_num_threads", &get_num_threads, "Threads later calls will use.");

  m.def(
      "forward",
      [](const py::object& x, const py::object& W, const py::object& U, const py::object& b, const py::object& p,
         const py::object& W_hr, const py::object& h0, const py::object& c0, const py::object& mask,
         const std::string& peephole, const std::string& output_peephole_source, bool zero_output_for_mask,
         bool training, double dropout, double recurrent_dropout, double zoneout_h, double zoneout_c,
         double weight_drop, std::uint64_t seed, const py::object& workspace) {
        const CellConfig config =
            config_of(W, U, W_hr, parse_variant(peephole, output_peephole_source), zero_output_for_mask);
        const Regularization reg =
            regularization_of(dropout, recurrent_dropout, zoneout_h, zoneout_c, weight_drop, seed);
        return by_dtype(W, [&](auto scalar) {
          using T = decltype(scalar);
          return forward_impl<T>(x, weights_of<T>(W, U, b, p, W_hr), config, h0, c0, mask, training, reg, workspace);
        });
      },
      py::kw_only(), py::arg("x"), py::arg("W"), py::arg("U"), py::arg("b") = py::none(), py::arg("p") = py::none(),
      py::arg("W_hr") = py::none(), py::arg("h0") = py::none(), py::arg("c0") = py::none(), py::arg("mask") = py::none(),
      py::arg("peephole") = "diagonal", py::arg("output_peephole_source") = "current",
      py::arg("zero_output_for_mask") = false, py::arg("training") = false, py::arg("dropout") = 0.0,
      py::arg("recurrent_dropout") = 0.0, py::arg("zoneout_h") = 0.0, py::arg("zoneout_c") = 0.0,
      py::arg("weight_drop") = 0.0, py::arg("seed") = 0, py::arg("workspace") = py::none(),
      "Whole-sequence forward -> (y, h_n, c_n, workspace or None). With training, `workspace` (optional) is "
      "an array to reuse for the training workspace (see training_workspace_size); else one is allocated.");

  m.def(
      "backward",
      [](const py::object& W, const py::object& U, const py::object& b, const py::object& p, const py::object& W_hr,
         const py::object& mask, const py::object& dy, const py::object& dh_n, const py::object& dc_n, const py::object& workspace,
         std::int64_t batch, std::int64_t time, const std::string& peephole, const std::string& output_peephole_source,
         bool zero_output_for_mask, double dropout, double recurrent_dropout, double zoneout_h, double zoneout_c,
         double weight_drop, std::uint64_t seed) {
        const CellConfig config =
            config_of(W, U, W_hr, parse_variant(peephole, output_peephole_source), zero_output_for_mask);
        const Regularization reg =
            regularization_of(dropout, recurrent_dropout, zoneout_h, zoneout_c, weight_drop, seed);
        return by_dtype(W, [&](auto scalar) {
          using T = decltype(scalar);
          return backward_impl<T>(weights_of<T>(W, U, b, p, W_hr), config, mask, dy, dh_n, dc_n, workspace, batch, time,
                                  reg);
        });
      },
      py::kw_only(), py::arg("W"), py::arg("U"), py::arg("b") = py::none(), py::arg("p") = py::none(),
      py::arg("W_hr") = py::none(), py::arg("mask") = py::none(), py::arg("dy") = py::none(), py::arg("dh_n") = py::none(),
      py::arg("dc_n") = py::none(), py::arg("workspace"), py::arg("batch"), py::arg("time"),
      py::arg("peephole") = "diagonal", py::arg("output_peephole_source") = "current",
      py::arg("zero_output_for_mask") = false, py::arg("dropout") = 0.0, py::arg("recurrent_dropout") = 0.0,
      py::arg("zoneout_h") = 0.0, py::arg("zoneout_c") = 0.0, py::arg("weight_drop") = 0.0, py::arg("seed") = 0,
      "Backward after forward(training=True) -> (dx, dh0, dc0, dW, dU, db or None, dp or None, dW_hr or None). "
      "Consumes the workspace.");

  m.def(
      "step",
      [](const py::object& x, const py::object& h, const py::object& c, const py::object& W, const py::object& U,
         const py::object& b, const py::object& p, const py::object& W_hr, const std::string& peephole,
         const std::string& output_peephole_source, double zoneout_h, double zoneout_c) {
        const CellConfig config = config_of(W, U, W_hr, parse_variant(peephole, output_peephole_source), false);
        const Regularization reg = regularization_of(0.0, 0.0, zoneout_h, zoneout_c, 0.0, 0);
        return by_dtype(W, [&](auto scalar) {
          using T = decltype(scalar);
          return step_impl<T>(weights_of<T>(W, U, b, p, W_hr), config, x, h, c, reg);
        });
      },
      py::kw_only(), py::arg("x"), py::arg("h"), py::arg("c"), py::arg("W"), py::arg("U"), py::arg("b") = py::none(),
      py::arg("p") = py::none(), py::arg("W_hr") = py::none(), py::arg("peephole") = "diagonal", py::arg("output_peephole_source") = "current",
      py::arg("zoneout_h") = 0.0, py::arg("zoneout_c") = 0.0,
      "One inference step: x [B,I], h [B,Ho], c [B,H] -> (h, c); zoneout acts as its expectation.");

  m.def(
      "trace",
      [](const py::object& x, const py::object& W, const py::object& U, const py::object& b, const py::object& p,
         const py::object& W_hr, const py::object& h0, const py::object& c0, const py::object& mask,
         const std::string& peephole, const std::string& output_peephole_source) {
        const CellConfig config = config_of(W, U, W_hr, parse_variant(peephole, output_peephole_source), false);
        return by_dtype(W, [&](auto scalar) {
          using T = decltype(scalar);
          return trace_impl<T>(x, weights_of<T>(W, U, b, p, W_hr), config, h0, c0, mask, Regularization{});
        });
      },
      py::kw_only(), py::arg("x"), py::arg("W"), py::arg("U"), py::arg("b") = py::none(), py::arg("p") = py::none(),
      py::arg("W_hr") = py::none(), py::arg("h0") = py::none(), py::arg("c0") = py::none(), py::arg("mask") = py::none(),
      py::arg("peephole") = "diagonal", py::arg("output_peephole_source") = "current",
      "Per-step activations {i, f, g, o, c, h}, each [B,T,H] (h [B,T,Ho]), of a forward pass without regularization.");

  m.def(
      "philox4x32_10",
      [](std::array<std::uint32_t, 4> counter, std::array<std::uint32_t, 2> key) {
        return philox4x32_10(counter, key);
      },
      py::arg("counter"), py::arg("key"),
      "The counter-based generator behind the regularization masks (for checks against other backends).");

  m.def(
      "training_workspace_size",
      [](std::int64_t batch, std::int64_t time, std::int64_t input_size, std::int64_t hidden_size,
         std::int64_t projection_size, bool zoneout) {
        CellConfig config;
        config.input_size = input_size;
        config.hidden_size = hidden_size;
        config.projection_size = projection_size;
        Regularization regularization;
        regularization.zoneout_h = zoneout ? 0.5 : 0.0;  // any rate: zoneout only adds the pre-zoneout states
        return training_workspace_size(config, batch, time, regularization);
      },
      py::arg("batch"), py::arg("time"), py::arg("input_size"), py::arg("hidden_size"), py::arg("projection_size") = 0,
      py::arg("zoneout") = false,
      "Elements of the training workspace for B sequences of T steps.");
}
