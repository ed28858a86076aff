// lstm_native._core: the thin pybind11 layer over the C++ core. It checks that each array is a numpy
// array of the call's dtype, C-contiguous and aligned (never copying), allocates the outputs, releases the
// GIL and calls the core; the core checks every shape. std::invalid_argument becomes ValueError. The shared
// checks and the one declaration of the cell's keyword arguments are in bindings.hpp, the CUDA functions (the
// same surface) in cuda_bindings.cpp.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bindings.hpp"

using namespace lstm_native;
using namespace lstm_native::bindings;

namespace {

template <class T>
py::tuple forward_impl(const SequenceArguments& a, bool training, const py::object& workspace_in,
                       bool return_sequences) {
  const CellConfig& config = a.config;
  const Weights<T> weights = a.weights<T>();
  validate(config, weights);
  const SequenceInput<T> in{required_input<T>("x", a.x), input<T>("h0", a.h0), input<T>("c0", a.c0),
                            mask_input(a.mask)};
  const SequenceDims dims = sequence_dims(config, in.x.shape);
  const std::int64_t B = dims.batch, time = dims.time, H = config.hidden_size, Ho = output_size(config);
  // Without return_sequences only the final states are computed and kept (y is None).
  auto [y, y_view] = return_sequences ? output<T>({B, time, Ho}) : std::pair{py::array_t<T>(), Tensor<T>()};
  auto [h, h_view] = output<T>({B, Ho});
  auto [c, c_view] = output<T>({B, H});
  const SequenceOutput<T> out{y_view, h_view, c_view};
  py::object workspace = py::none();
  if (training) {
    const std::int64_t size = training_workspace_size(config, B, time, a.regularization);
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
    run_interruptible([&] { forward_training(config, weights, in, out, work, a.regularization); });
  } else {
    run_interruptible([&] { forward_inference(config, weights, in, out, a.regularization); });
  }
  return py::make_tuple(return_sequences ? py::object(y) : py::none(), h, c, workspace);
}

template <class T>
py::tuple backward_impl(const BackwardArguments& a) {
  const Weights<T> weights = a.weights<T>();
  validate(a.config, weights);
  const Tensor<const T> ws = required_input<T>("workspace", a.workspace);
  if (!py::reinterpret_borrow<py::array>(a.workspace).writeable())
    throw py::value_error("workspace: must be writable");
  const Workspace<T> work{const_cast<T*>(ws.data), ws.numel()};
  const OutputGradients<T> grad_out{input<T>("dy", a.dy), input<T>("dh_n", a.dh_n), input<T>("dc_n", a.dc_n)};
  // checks batch and time before anything is allocated
  training_workspace_size(a.config, a.batch, a.time, a.regularization);
  auto [result, grads] = gradient_outputs<T>(a.config, weights, a.batch, a.time);
  const Tensor<const std::uint8_t> mask_view = mask_input(a.mask);
  run_interruptible(
      [&] { backward(a.config, weights, mask_view, a.batch, a.time, grad_out, work, grads, a.regularization); });
  return result;
}

// trace reads the activations of a forward pass without regularization, and returns the states (carried at a
// masked step), never the outputs: it refuses the arguments that would ask for anything else.
void check_trace_arguments(const CellArguments& a) {
  const Regularization& r = a.regularization;
  const std::pair<const char*, bool> given[] = {
      {"dropout", r.dropout != 0.0},     {"recurrent_dropout", r.recurrent_dropout != 0.0},
      {"zoneout_h", r.zoneout_h != 0.0}, {"zoneout_c", r.zoneout_c != 0.0},
      {"weight_drop", r.weight_drop != 0.0}, {"seed", r.seed != 0}};
  for (const auto& [name, set] : given)
    if (set) throw py::value_error(std::string(name) + ": trace runs without regularization; leave it at its default");
  if (a.config.zero_output_for_mask)
    throw py::value_error("zero_output_for_mask: trace returns the states (carried at a masked step), not the "
                          "outputs; leave it False");
}

template <class T>
py::dict trace_impl(const SequenceArguments& a) {
  check_trace_arguments(a);
  const py::tuple forward = forward_impl<T>(a, true, py::none(), true);
  const py::array workspace = forward[3].cast<py::array>(), y = forward[0].cast<py::array>();
  const CellConfig& config = a.config;
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
  const Tensor<const std::uint8_t> mask_view = mask_input(a.mask);
  {
    py::gil_scoped_release release;
    read_trace(config, B, time, mask_view, work, trace, a.regularization);
  }
  return result;
}

// One step of inference: forward(training=False) over one step without a mask, so of the regularization only
// zoneout acts (as its expectation), and zero_output_for_mask has nothing to act on.
template <class T>
py::tuple step_impl(const CellArguments& a, const py::object& x, const py::object& h, const py::object& c) {
  const CellConfig& config = a.config;
  const Weights<T> weights = a.weights<T>();
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
    forward_step(config, weights, x_view, h_prev, c_prev, h_view, c_view, a.regularization);
  }
  return py::make_tuple(h_new, c_new);
}

}  // namespace

// Built three times on x86-64: _core (portable), _core_avx2 (AVX2 + FMA) and _core_avx512; lstm_native/_backend.py
// picks one.
#ifndef LSTM_NATIVE_MODULE_NAME
#define LSTM_NATIVE_MODULE_NAME _core
#endif

PYBIND11_MODULE(LSTM_NATIVE_MODULE_NAME, m) {
  m.doc() = "lstm_native's native core: the peephole LSTM cell, forward and backward (see lstm_native.ops).";
  m.def("cpu_supports", &cpu_supports,
        py::arg("isa"), "Whether this CPU runs the build for `isa`: \"avx2\" (AVX2 + FMA) or \"avx512\" (F, DQ, VL, BW).");
  m.attr("__version__") = LSTM_NATIVE_VERSION;
  m.attr("with_cuda") = static_cast<bool>(LSTM_NATIVE_WITH_CUDA);
  m.attr("with_openmp") = static_cast<bool>(LSTM_NATIVE_WITH_OPENMP);
  m.attr("with_model_io") = static_cast<bool>(LSTM_NATIVE_WITH_MODEL_IO);
#if LSTM_NATIVE_WITH_MODEL_IO
  add_model_classes(m);
#endif
#if LSTM_NATIVE_WITH_CUDA
  add_cuda_functions(m);
#else
  m.def("cuda_device_count", []() { return 0; }, "Number of CUDA devices usable (0 in a CPU-only build).");
#endif
  m.def(
      "set_num_threads",
      [](const py::object& n) {
        // An integer, not a bool, float or string (which int() would have turned into one); the core checks
        // the range, [1, max_num_threads()].
        if (py::isinstance<py::bool_>(n) || !PyIndex_Check(n.ptr()))
          throw py::type_error("n: expected an integer thread count, got " +
                               std::string(py::str(py::type::of(n).attr("__name__"))) + " " +
                               std::string(py::repr(n)));
        const py::int_ value = py::reinterpret_steal<py::int_>(PyNumber_Index(n.ptr()));
        if (!value) throw py::error_already_set();
        int overflow = 0;  // beyond 64 bits: the nearest 64-bit value, which the core refuses just as well
        const long long count = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
        set_num_threads(overflow > 0 ? INT64_MAX : overflow < 0 ? INT64_MIN : std::int64_t{count});
      },
      py::arg("n"), "Threads used by later calls: an integer in [1, max_num_threads()].");
  m.def("max_num_threads", &max_num_threads, "The largest count set_num_threads accepts (4 per CPU, at least 16).");
  m.def("get_num_threads", &get_num_threads, "Threads later calls will use.");

  def_forward(
      m, "forward",
      [](const SequenceArguments& a, bool training, const py::object& workspace, bool return_sequences) {
        return by_dtype(a.W, [&](auto scalar) {
          return forward_impl<decltype(scalar)>(a, training, workspace, return_sequences);
        });
      },
      "Whole-sequence forward -> (y or None, h_n, c_n, workspace or None). With training, `workspace` "
      "(optional) is an array to reuse for the training workspace (see training_workspace_size); else one is "
      "allocated. Without return_sequences y is not computed (None). Ctrl-C stops it (KeyboardInterrupt).");

  def_backward(
      m, "backward",
      [](const BackwardArguments& a) {
        return by_dtype(a.W, [&](auto scalar) { return backward_impl<decltype(scalar)>(a); });
      },
      "Backward after forward(training=True), with its arguments -> (dx, dh0, dc0, dW, dU, db or None, dp or "
      "None, dW_hr or None). Consumes the workspace.");

  def_cell_function<py::object, py::object, py::object>(
      m, "step",
      [](const CellArguments& a, const py::object& x, const py::object& h, const py::object& c) {
        return by_dtype(a.W, [&](auto scalar) { return step_impl<decltype(scalar)>(a, x, h, c); });
      },
      py::arg("x"), py::arg("h"), py::arg("c"),
      "One inference step: x [B,I], h [B,Ho], c [B,H] -> (h, c), as forward(training=False) over one step: "
      "zoneout acts as its expectation, the dropouts (and seed) do not act, nor zero_output_for_mask (no mask).");

  def_sequence_function<>(
      m, "trace",
      [](const SequenceArguments& a) {
        return by_dtype(a.W, [&](auto scalar) { return trace_impl<decltype(scalar)>(a); });
      },
      "Per-step activations {i, f, g, o, c, h}, each [B,T,H] (h [B,T,Ho]), of a forward pass without "
      "regularization (ValueError for a regularization argument, or zero_output_for_mask: h is the state).");

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
