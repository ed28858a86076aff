// lstm_native::Model and its streams for Python (lstm_native.streaming wraps them): a model file's bytes in, float32
// arrays in and out. Argument conversion is the Python side's; here arrays must already be float32, C-contiguous
// and of the exact shape.
#include "bindings.hpp"

#if LSTM_NATIVE_WITH_MODEL_IO
#include "lstm_native/model.hpp"

namespace lstm_native::bindings {
namespace {

py::array_t<float> new_array(const std::vector<std::int64_t>& shape) {
  return py::array_t<float>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

Array to_array(const py::object& obj) {
  const py::array a = checked_array<float>("x", obj);
  const auto* values = static_cast<const float*>(a.data());
  return Array{shape_of(a), std::vector<float>(values, values + a.size())};
}

py::array_t<float> from_array(const Array& y) {
  py::array_t<float> out = new_array(y.shape);
  std::copy(y.values.begin(), y.values.end(), out.mutable_data());
  return out;
}

}  // namespace

void add_model_classes(py::module_& m) {
  // module_local: each build's module (_core, _core_avx2, ...) registers its own classes, which pybind11 would
  // otherwise refuse as registered twice (the portable module is always imported, the fast one after it).
  py::class_<Model>(m, "Model", py::module_local(), "A model read by the C++ loader (lstm_native/model.hpp), float32.")
      .def_static(
          "from_bytes",
          [](const py::bytes& data, const std::string& name) {
            const std::string bytes = data;
            try {
              return Model::load_from_memory(bytes.data(), bytes.size(), name);
            } catch (const ModelFileError& error) {
              throw py::value_error(error.what());
            }
          },
          py::arg("data"), py::arg("name"), "The model of a model file's bytes; `name` stands for the file in errors.")
      .def(
          "predict",
          [](const Model& model, const py::object& x) {
            const Array input = to_array(x);
            Array y;
            {
              py::gil_scoped_release release;
              y = model.predict(input);
            }
            return from_array(y);
          },
          py::arg("x"))
      .def("stream", &Model::stream, py::arg("batch"), "A streaming session of `batch` streams, its state zero.")
      .def("summary", &Model::summary);

  py::class_<Stream>(m, "Stream", py::module_local(), "A Model run step by step, every LSTM's state kept between calls.")
      .def(
          "step",
          [](Stream& stream, const py::object& x) {
            const py::array a = checked_array<float>("x", x);
            if (shape_of(a) != stream.step_input_shape())
              throw py::value_error("x: expected one step of shape " + shape_to_string(stream.step_input_shape()) +
                                    ", got " + shape_to_string(shape_of(a)));
            py::array_t<float> y = new_array(stream.step_output_shape());
            float* out = y.mutable_data();
            {
              py::gil_scoped_release release;
              stream.step(static_cast<const float*>(a.data()), out);
            }
            return y;
          },
          py::arg("x"), "One step: x [B, features...] -> the model's output for it [B, out...].")
      .def(
          "steps",
          [](Stream& stream, const py::object& x) {
            const Array chunk = to_array(x);
            Array y;
            {
              py::gil_scoped_release release;
              y = stream.steps(chunk);
            }
            return from_array(y);
          },
          py::arg("x"), "A chunk x [B, S, features...] -> predict's output for it, the state carried.")
      .def("reset", &Stream::reset, py::call_guard<py::gil_scoped_release>())
      .def(
          "state",
          [](const Stream& stream) {
            const std::vector<float> state = stream.state();
            return from_array(Array{{std::int64_t(state.size())}, state});
          },
          "Every LSTM's h then c, layer after layer, as one float32 vector.")
      .def(
          "set_state",
          [](Stream& stream, const py::object& state) {
            const py::array a = checked_array<float>("state", state);
            const auto* values = static_cast<const float*>(a.data());
            stream.set_state(std::vector<float>(values, values + a.size()));
          },
          py::arg("state"))
      .def_property_readonly("batch", &Stream::batch)
      .def_property_readonly("state_size", &Stream::state_size)
      .def_property_readonly("step_input_shape", &Stream::step_input_shape)
      .def_property_readonly("step_output_shape", &Stream::step_output_shape)
      .def_property_readonly("sequence_output", &Stream::sequence_output);
}

}  // namespace lstm_native::bindings
#endif  // LSTM_NATIVE_WITH_MODEL_IO
