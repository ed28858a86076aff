// lstm_native._core's CUDA functions (a CUDA build only): the GPU path, with the CPU functions' surface
// (cuda_forward takes forward's arguments, cuda_backward backward's). Numpy arrays are copied to the device and
// the results back once per call. x, h0, c0, dy, dh_n and dc_n may instead be arrays that already live on the
// current CUDA device, given as any object with __dlpack__ (CuPy arrays, PyTorch CUDA tensors): they are read
// in place. All device work runs on the legacy default stream, with the GIL released.
#include "bindings.hpp"

#if LSTM_NATIVE_WITH_CUDA
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "cuda_device.hpp"

namespace lstm_native::bindings {
namespace {

// cuda_forward(training=True)'s workspace (Python: CudaWorkspace): the training workspace in device memory, with
// the configuration, regularization and dims of the forward pass that filled it, which cuda_backward checks its
// own arguments against. One cuda_backward consumes it.
class CudaWorkspace {
 public:
  virtual ~CudaWorkspace() = default;
};

template <class T>
class CudaWorkspaceOf final : public CudaWorkspace {
 public:
  CudaWorkspaceOf(const CellArguments& a, SequenceDims dims)
      : config_(a.config), regularization_(a.regularization), dims_(dims), memory_(std::make_unique<DeviceArrays>()) {
    const std::int64_t size = training_workspace_size(config_, dims.batch, dims.time, regularization_);
    workspace_ = {memory_->template allocate<T>({size}).data, size};
  }

  const Workspace<T>& workspace() const { return workspace_; }

  // The device memory, which leaves this object (call it with the GIL held: of two racing calls one gets it);
  // ValueError if it is gone, or if `a` are not the arguments of the forward pass that filled it.
  std::unique_ptr<DeviceArrays> take(const BackwardArguments& a) {
    if (!memory_) throw py::value_error("workspace: already consumed by an earlier cuda_backward call");
    check_made_for(a);
    return std::move(memory_);
  }

  // Gives back what take() took, when the backward pass refused its arguments before touching it.
  void give_back(std::unique_ptr<DeviceArrays> memory) { memory_ = std::move(memory); }

 private:
  void check_made_for(const BackwardArguments& a) const {
    const CellConfig& c = a.config;
    const Regularization& r = a.regularization;
    const auto check = [](const char* name, const auto& made, const auto& given) {
      const auto text = [](const auto& value) { return std::string(py::str(py::cast(value))); };
      if (made != given)
        throw py::value_error(std::string(name) + ": " + text(given) +
                              ", but the workspace was made by a cuda_forward with " + text(made));
    };
    check("batch", dims_.batch, a.batch);
    check("time", dims_.time, a.time);
    check("W (input size)", config_.input_size, c.input_size);
    check("U (hidden size)", config_.hidden_size, c.hidden_size);
    check("W_hr (projection size)", config_.projection_size, c.projection_size);
    check("peephole", std::string(to_string(config_.peephole)), std::string(to_string(c.peephole)));
    check("output_peephole_source", std::string(to_string(config_.output_peephole_source)),
          std::string(to_string(c.output_peephole_source)));
    check("zero_output_for_mask", config_.zero_output_for_mask, c.zero_output_for_mask);
    check("dropout", regularization_.dropout, r.dropout);
    check("recurrent_dropout", regularization_.recurrent_dropout, r.recurrent_dropout);
    check("zoneout_h", regularization_.zoneout_h, r.zoneout_h);
    check("zoneout_c", regularization_.zoneout_c, r.zoneout_c);
    check("weight_drop", regularization_.weight_drop, r.weight_drop);
    check("seed", regularization_.seed, r.seed);
  }

  CellConfig config_;
  Regularization regularization_;
  SequenceDims dims_;
  std::unique_ptr<DeviceArrays> memory_;  // owns the workspace; null once consumed
  Workspace<T> workspace_;
};

// Forward on the device -> (y or None, h_n, c_n, CudaWorkspace or None), y, h_n and c_n new host arrays.
template <class T>
py::tuple forward_on_device(const SequenceArguments& a, bool training, const py::object& workspace_in,
                            bool return_sequences) {
  if (!workspace_in.is_none())
    throw py::value_error("workspace: cuda_forward allocates its training workspace on the device; give None");
  DLPackImports imports;
  const HostForward<T> host(a, imports);
  const std::int64_t B = host.dims.batch, time = host.dims.time, Ho = output_size(a.config);
  auto [y, y_view] = return_sequences ? output<T>({B, time, Ho}) : std::pair{py::array_t<T>(), Tensor<T>()};
  auto [h, h_view] = output<T>({B, Ho});
  auto [c, c_view] = output<T>({B, a.config.hidden_size});
  std::unique_ptr<CudaWorkspaceOf<T>> workspace;
  {
    py::gil_scoped_release release;
    DeviceArrays scratch;
    const DeviceForward<T> d = host.upload(scratch, a.config);
    if (training) {
      workspace = std::make_unique<CudaWorkspaceOf<T>>(a, host.dims);
      cuda::forward_training(a.config, d.weights, d.in, d.out, workspace->workspace(), a.regularization);
    } else {
      cuda::forward_inference(a.config, d.weights, d.in, d.out, a.regularization);
    }
    cuda::synchronize();
    download(d.out.y, y_view), download(d.out.h_n, h_view), download(d.out.c_n, c_view);
  }
  return py::make_tuple(return_sequences ? py::object(y) : py::none(), h, c,
                        workspace ? py::cast(std::unique_ptr<CudaWorkspace>(std::move(workspace))) : py::none());
}

// The CudaWorkspace of a cuda_forward(training=True) of W's dtype; TypeError or ValueError for anything else.
template <class T>
CudaWorkspaceOf<T>& workspace_of(const py::object& obj) {
  if (!py::isinstance<CudaWorkspace>(obj))
    throw py::type_error("workspace: expected the CudaWorkspace of cuda_forward(training=True), got " + type_name(obj));
  auto* workspace = dynamic_cast<CudaWorkspaceOf<T>*>(&obj.cast<CudaWorkspace&>());
  if (!workspace)
    throw py::value_error(std::string("workspace: made by a cuda_forward of another dtype than W's (") +
                          (std::is_same_v<T, float> ? "float32" : "float64") + ")");
  return *workspace;
}

// Backward on the device -> (dx, dh0, dc0, dW, dU, db or None, dp or None, dW_hr or None), new host arrays.
template <class T>
py::tuple backward_on_device(const BackwardArguments& a) {
  CudaWorkspaceOf<T>& workspace = workspace_of<T>(a.workspace);
  const Weights<T> weights = a.weights<T>();
  validate(a.config, weights);
  DLPackImports imports;
  const Source<T> d_y = source<T>("dy", a.dy, imports), d_h = source<T>("dh_n", a.dh_n, imports),
                  d_c = source<T>("dc_n", a.dc_n, imports);
  const Tensor<const std::uint8_t> mask = mask_input(a.mask);
  training_workspace_size(a.config, a.batch, a.time, a.regularization);  // checks batch and time first
  auto [result, host_grads] = gradient_outputs<T>(a.config, weights, a.batch, a.time);
  // Taken with the GIL held and no Python code run since: a second or concurrent call finds none.
  std::unique_ptr<DeviceArrays> memory = workspace.take(a);
  try {
    py::gil_scoped_release release;
    DeviceArrays scratch;
    const OutputGradients<T> grad_out{scratch.upload(d_y), scratch.upload(d_h), scratch.upload(d_c)};
    const Gradients<T> grads = scratch.like(host_grads);
    cuda::backward(a.config, scratch.upload(weights), scratch.upload(mask), a.batch, a.time, grad_out,
                   workspace.workspace(), grads, a.regularization);
    cuda::synchronize();
    download(grads, host_grads);
  } catch (const std::invalid_argument&) {  // a bad argument, found before the workspace was touched
    workspace.give_back(std::move(memory));
    throw;
  }
  return result;
}

}  // namespace

void add_cuda_functions(py::module_& m) {
  m.def("cuda_device_count", []() { return cuda::device_count(); },
        "Number of CUDA devices usable (0 in a CPU-only build, or without a driver or device).");

  py::class_<CudaWorkspace>(  // module_local: every build's module registers it (see model_bindings.cpp)
      m, "CudaWorkspace", py::module_local(),
      "The training workspace of a cuda_forward(training=True), kept on the device, with the dims, configuration "
      "and regularization of that call. One cuda_backward with the same arguments consumes it; its device "
      "memory is freed then, or when it is garbage-collected.");

  def_forward(
      m, "cuda_forward",
      [](const SequenceArguments& a, bool training, const py::object& workspace, bool return_sequences) {
        return by_dtype(a.W, [&](auto scalar) {
          return forward_on_device<decltype(scalar)>(a, training, workspace, return_sequences);
        });
      },
      "forward on the GPU -> (y or None, h_n, c_n, CudaWorkspace or None): y, h_n, c_n new numpy arrays; with "
      "training a CudaWorkspace for one cuda_backward (workspace must be None: it is allocated on the device). "
      "Numpy arrays are copied to the device; x, h0, c0 may be CUDA arrays with __dlpack__ (read in place).");

  def_backward(
      m, "cuda_backward",
      [](const BackwardArguments& a) {
        return by_dtype(a.W, [&](auto scalar) { return backward_on_device<decltype(scalar)>(a); });
      },
      "backward on the GPU, after cuda_forward(training=True) with the same arguments -> (dx, dh0, dc0, dW, dU, "
      "db or None, dp or None, dW_hr or None), new numpy arrays. dy [B,T,Ho], dh_n [B,Ho], dc_n [B,H] are "
      "optional (zero when omitted): numpy arrays, or CUDA arrays with __dlpack__. Consumes the CudaWorkspace: "
      "a second call raises ValueError, as does one whose dims, configuration or regularization differ from "
      "the forward's.");
}

}  // namespace lstm_native::bindings
#endif
