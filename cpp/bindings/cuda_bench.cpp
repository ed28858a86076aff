// lstm_native._cuda_bench: device-resident timings of the CUDA backend for bench/gpu.py, kept out of the
// production module lstm_native._core. Built with the CUDA backend only.
#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include "cuda_device.hpp"

using namespace lstm_native;
using namespace lstm_native::bindings;

namespace {

// The seconds of each of `repeats` device-resident calls (data uploaded once, one warm-up call first):
// forward inference, or with `training` forward_training then backward with dy, dh_n, dc_n.
template <class T>
std::vector<double> timings(const SequenceArguments& a, bool training, const py::object& dy, const py::object& dh_n,
                            const py::object& dc_n, int repeats) {
  if (repeats < 1) throw py::value_error("repeats: expected at least 1, got " + std::to_string(repeats));
  DLPackImports imports;
  const HostForward<T> host(a, imports);
  const Source<T> d_y = source<T>("dy", dy, imports), d_h = source<T>("dh_n", dh_n, imports),
                  d_c = source<T>("dc_n", dc_n, imports);
  const std::int64_t B = host.dims.batch, time = host.dims.time;
  // host arrays only for their shapes
  const auto host_grads = training ? gradient_outputs<T>(a.config, host.weights, B, time)
                                   : std::pair<py::tuple, Gradients<T>>{};
  std::vector<double> seconds;
  py::gil_scoped_release release;
  DeviceArrays device;
  const DeviceForward<T> d = host.upload(device, a.config);
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

PYBIND11_MODULE(_cuda_bench, m) {
  m.doc() = "Device-resident timings of lstm_native's CUDA backend (bench/gpu.py); not part of the library's API.";
  def_sequence_function<bool, py::object, py::object, py::object, int>(
      m, "timings",
      [](const SequenceArguments& a, bool training, const py::object& dy, const py::object& dh_n,
         const py::object& dc_n, int repeats) {
        return by_dtype(a.W, [&](auto scalar) {
          return timings<decltype(scalar)>(a, training, dy, dh_n, dc_n, repeats);
        });
      },
      py::arg("training") = false, py::arg("dy") = py::none(), py::arg("dh_n") = py::none(),
      py::arg("dc_n") = py::none(), py::arg("repeats"),
      "The seconds of each of `repeats` device-resident calls with forward's arguments (data uploaded once, one "
      "warm-up call first): forward inference, or with training forward then backward with dy, dh_n, dc_n. "
      "Numpy arrays are copied to the device; x, h0, c0, dy, dh_n, dc_n may be CUDA arrays with __dlpack__.");
}
