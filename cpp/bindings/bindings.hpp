// What the binding's sources share: checks of the numpy arrays a call receives (the call's dtype,
// C-contiguous and aligned, never copied), new output arrays, and the one declaration of the cell's keyword
// arguments (def_cell_function), with the configuration and regularization parsed from them.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lstm_native/lstm_native.hpp"

namespace lstm_native::bindings {

namespace py = pybind11;

inline std::vector<std::int64_t> shape_of(const py::array& a) {
  return std::vector<std::int64_t>(a.shape(), a.shape() + a.ndim());
}

// numpy's dtype equality: same type and byte order.
inline bool same_dtype(const py::dtype& a, const py::dtype& b) { return a.attr("__eq__")(b).cast<bool>(); }

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

inline Tensor<const std::uint8_t> mask_input(const py::object& obj) {
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

inline Variant parse_variant(const std::string& peephole, const std::string& source) {
  return {parse_peephole(peephole), parse_output_peephole_source(source)};
}

template <class T>
Weights<T> weights_of(const py::object& W, const py::object& U, const py::object& b, const py::object& p,
                      const py::object& W_hr) {
  return {required_input<T>("W", W), required_input<T>("U", U), input<T>("b", b), input<T>("p", p),
          input<T>("W_hr", W_hr)};
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

inline Regularization regularization_of(double dropout, double recurrent_dropout, double zoneout_h,
                                        double zoneout_c, double weight_drop, std::uint64_t seed) {
  const Regularization reg{dropout, recurrent_dropout, zoneout_h, zoneout_c, weight_drop, seed};
  validate(reg);
  return reg;
}

inline CellConfig config_of(const py::object& W, const py::object& U, const py::object& W_hr, const Variant& v,
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

// The arguments every binding of the cell shares: the weights as Python gave them (checked where they are
// used), the cell's configuration and the regularization, parsed once.
struct CellArguments {
  py::object W, U, b, p, W_hr;
  CellConfig config;
  Regularization regularization;

  template <class T>
  Weights<T> weights() const {
    return weights_of<T>(W, U, b, p, W_hr);
  }
};

// Defines the keyword-only function m.<name>(W, U, b=None, p=None, W_hr=None, peephole="diagonal",
// output_peephole_source="current", zero_output_for_mask=False, dropout=0, recurrent_dropout=0, zoneout_h=0,
// zoneout_c=0, weight_drop=0, seed=0, <extra>) as fn(const CellArguments&, Rest...): `Rest` are the C++ types
// of the further keyword arguments that `extra` declares (py::arg, in the same order), followed by the
// docstring. The one declaration of the cell's arguments: every binding of the cell is defined through it.
template <class... Rest, class Fn, class... Extra>
void def_cell_function(py::module_& m, const char* name, Fn fn, const Extra&... extra) {
  m.def(
      name,
      [fn](const py::object& W, const py::object& U, const py::object& b, const py::object& p, const py::object& W_hr,
           const std::string& peephole, const std::string& output_peephole_source, bool zero_output_for_mask,
           double dropout, double recurrent_dropout, double zoneout_h, double zoneout_c, double weight_drop,
           std::uint64_t seed, Rest... rest) {
        const CellArguments cell{
            W, U, b, p, W_hr,
            config_of(W, U, W_hr, parse_variant(peephole, output_peephole_source), zero_output_for_mask),
            regularization_of(dropout, recurrent_dropout, zoneout_h, zoneout_c, weight_drop, seed)};
        return fn(cell, rest...);
      },
      py::kw_only(), py::arg("W"), py::arg("U"), py::arg("b") = py::none(), py::arg("p") = py::none(),
      py::arg("W_hr") = py::none(), py::arg("peephole") = "diagonal", py::arg("output_peephole_source") = "current",
      py::arg("zero_output_for_mask") = false, py::arg("dropout") = 0.0, py::arg("recurrent_dropout") = 0.0,
      py::arg("zoneout_h") = 0.0, py::arg("zoneout_c") = 0.0, py::arg("weight_drop") = 0.0, py::arg("seed") = 0,
      extra...);
}

// The arguments of a call over whole sequences: the cell's, and the inputs as Python gave them.
struct SequenceArguments : CellArguments {
  py::object x, h0, c0, mask;
};

// As def_cell_function, with the inputs x (required), h0=None, c0=None, mask=None: fn(const SequenceArguments&,
// Rest...).
template <class... Rest, class Fn, class... Extra>
void def_sequence_function(py::module_& m, const char* name, Fn fn, const Extra&... extra) {
  def_cell_function<py::object, py::object, py::object, py::object, Rest...>(
      m, name,
      [fn](const CellArguments& cell, const py::object& x, const py::object& h0, const py::object& c0,
           const py::object& mask, Rest... rest) { return fn(SequenceArguments{cell, x, h0, c0, mask}, rest...); },
      py::arg("x"), py::arg("h0") = py::none(), py::arg("c0") = py::none(), py::arg("mask") = py::none(), extra...);
}

// The whole-sequence forward of a device (forward, cuda_forward), one surface for both: further keyword
// arguments training=False, workspace=None, return_sequences=True; fn(const SequenceArguments&, bool training,
// const py::object& workspace, bool return_sequences) -> (y or None, h_n, c_n, workspace or None).
template <class Fn>
void def_forward(py::module_& m, const char* name, Fn fn, const char* doc) {
  def_sequence_function<bool, py::object, bool>(m, name, fn, py::arg("training") = false,
                                                py::arg("workspace") = py::none(),
                                                py::arg("return_sequences") = true, doc);
}

// The arguments of a backward pass besides the cell's.
struct BackwardArguments : CellArguments {
  py::object mask, dy, dh_n, dc_n, workspace;
  std::int64_t batch = 0, time = 0;
};

// The backward pass of a device (backward, cuda_backward), one surface for both: further keyword arguments
// mask=None, dy=None, dh_n=None, dc_n=None, workspace, batch, time; fn(const BackwardArguments&) -> the tuple
// of gradient_outputs.
template <class Fn>
void def_backward(py::module_& m, const char* name, Fn fn, const char* doc) {
  def_cell_function<py::object, py::object, py::object, py::object, py::object, std::int64_t, std::int64_t>(
      m, name,
      [fn](const CellArguments& cell, const py::object& mask, const py::object& dy, const py::object& dh_n,
           const py::object& dc_n, const py::object& workspace, std::int64_t batch, std::int64_t time) {
        return fn(BackwardArguments{cell, mask, dy, dh_n, dc_n, workspace, batch, time});
      },
      py::arg("mask") = py::none(), py::arg("dy") = py::none(), py::arg("dh_n") = py::none(),
      py::arg("dc_n") = py::none(), py::arg("workspace"), py::arg("batch"), py::arg("time"), doc);
}

// New host arrays for the gradients of a backward pass over `batch` sequences of `time` steps, and the tuple
// Python receives: (dx, dh0, dc0, dW, dU, db or None, dp or None, dW_hr or None).
template <class T>
std::pair<py::tuple, Gradients<T>> gradient_outputs(const CellConfig& config, const Weights<T>& weights,
                                                    std::int64_t batch, std::int64_t time) {
  Gradients<T> grads;
  py::tuple arrays(8);
  const auto add = [&](std::size_t k, const std::vector<std::int64_t>& shape, Tensor<T>& view) {
    auto [array, tensor] = output<T>(shape);
    view = tensor;
    arrays[k] = array;
  };
  add(0, {batch, time, config.input_size}, grads.dx);
  add(1, {batch, output_size(config)}, grads.dh0);
  add(2, {batch, config.hidden_size}, grads.dc0);
  add(3, weights.W.shape, grads.dW);
  add(4, weights.U.shape, grads.dU);
  const std::pair<const Tensor<const T>*, Tensor<T>*> optional[] = {
      {&weights.b, &grads.db}, {&weights.peephole, &grads.dpeephole}, {&weights.projection, &grads.dprojection}};
  for (std::size_t k = 0; k < 3; ++k) {
    const auto [weight, view] = optional[k];
    if (weight->empty()) arrays[5 + k] = py::none();
    else add(5 + k, weight->shape, *view);
  }
  return {arrays, grads};
}

// Runs fn() with the GIL released, interruptible by Ctrl-C: the core polls a check between chunks of steps
// (threads.hpp), which at most every 50 ms takes the GIL and lets Python run its signal handlers (in the main
// thread; elsewhere there is nothing to run). When a handler raises (KeyboardInterrupt), the core stops with
// Cancelled and that Python exception propagates.
template <class Fn>
void run_interruptible(const Fn& fn) {
  using Clock = std::chrono::steady_clock;
  bool interrupted = false;
  try {
    py::gil_scoped_release release;
    Clock::time_point next_check = Clock::now();
    const CancellationScope scope([&] {
      if (Clock::now() < next_check) return false;
      next_check = Clock::now() + std::chrono::milliseconds(50);
      py::gil_scoped_acquire gil;
      interrupted = PyErr_CheckSignals() != 0;
      return interrupted;
    });
    fn();
  } catch (const Cancelled&) {
    if (interrupted) throw py::error_already_set();
    throw;
  }
}

#if LSTM_NATIVE_WITH_MODEL_IO
// Adds Model and Stream, the C++ loader's model and its streaming sessions (model_bindings.cpp).
void add_model_classes(py::module_& m);
#endif

#if LSTM_NATIVE_WITH_CUDA
// Adds cuda_device_count, cuda_forward, cuda_backward and CudaWorkspace (cuda_bindings.cpp).
void add_cuda_functions(py::module_& m);
#endif

}  // namespace lstm_native::bindings
