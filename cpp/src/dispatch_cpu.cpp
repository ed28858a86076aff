// The public CPU functions: each calls the same function of the instruction-set build chosen at first use
// (lstm_native/cpu.hpp). The builds' own definitions of these names are local to their objects in the library
// (cmake/LstmNativeLibraries.cmake); where the platform's tools cannot make them so (LSTM_NATIVE_CPU_DISPATCH
// 0: not ELF), the library holds the generic build alone, whose definitions are the public ones.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels_cpu.hpp"
#include "lstm_native/cpu.hpp"

namespace lstm_native {
namespace {

using detail::CpuKernels;

// The builds in this library, fastest first (CMake defines LSTM_NATIVE_KERNELS_<ISA> for those it built).
const CpuKernels* const kBuilds[] = {
#if LSTM_NATIVE_KERNELS_AVX512
    &lstm_native_cpu_kernels_avx512,
#endif
#if LSTM_NATIVE_KERNELS_AVX2
    &lstm_native_cpu_kernels_avx2,
#endif
    &lstm_native_cpu_kernels_generic};

bool cpu_runs(const std::string& isa) { return isa == "generic" || cpu_supports(isa); }

// The build LSTM_NATIVE_ISA asks for, or the fastest this CPU runs; the messages are the Python package's.
const CpuKernels& select_kernels() {
  const char* value = std::getenv("LSTM_NATIVE_ISA");
  const std::string requested = value != nullptr ? value : "auto";
  if (requested != "auto" && requested != "generic" && requested != "avx2" && requested != "avx512")
    throw std::runtime_error("LSTM_NATIVE_ISA: expected 'auto', 'generic', 'avx2' or 'avx512', got '" + requested + "'");
  if (requested != "auto" && !cpu_runs(requested))
    throw std::runtime_error("LSTM_NATIVE_ISA=" + requested + ": this CPU lacks its instructions");
  for (const CpuKernels* build : kBuilds)
    if (requested == build->isa || (requested == "auto" && cpu_runs(build->isa))) return *build;
  throw std::runtime_error("LSTM_NATIVE_ISA=" + requested + ": this build of lstm_native has no code for it");
}

// Chosen once; a failed choice (the exception above) is tried again, and fails again, at the next call.
const CpuKernels& kernels() {
  static const CpuKernels& chosen = select_kernels();
  return chosen;
}

}  // namespace

const char* active_isa() { return kernels().isa; }

#if LSTM_NATIVE_CPU_DISPATCH

template <class T>
void forward_inference(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                       const SequenceOutput<T>& out, const Regularization& regularization) {
  kernels().of<T>().inference(config, weights, in, out, regularization);
}

template <class T>
void forward_training(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                      const SequenceOutput<T>& out, const Workspace<T>& workspace, const Regularization& regularization) {
  kernels().of<T>().training(config, weights, in, out, workspace, regularization);
}

template <class T>
void forward_step(const CellConfig& config, const Weights<T>& weights, Tensor<const T> x, Tensor<const T> h_prev,
                  Tensor<const T> c_prev, Tensor<T> h, Tensor<T> c, const Regularization& regularization) {
  kernels().of<T>().step(config, weights, x, h_prev, c_prev, h, c, regularization);
}

template <class T>
std::unique_ptr<detail::StepKernel<T>> detail::make_step_kernel(const CellConfig& config, const Weights<T>& weights,
                                                                std::int64_t batch, const Regularization& regularization) {
  return kernels().of<T>().step_kernel(config, weights, batch, regularization);
}

template <class T>
void read_trace(const CellConfig& config, std::int64_t batch, std::int64_t time, Tensor<const std::uint8_t> mask,
                const Workspace<T>& workspace, const Trace<T>& trace, const Regularization& regularization) {
  kernels().of<T>().trace(config, batch, time, mask, workspace, trace, regularization);
}

template <class T>
void backward(const CellConfig& config, const Weights<T>& weights, Tensor<const std::uint8_t> mask, std::int64_t batch,
              std::int64_t time, const OutputGradients<T>& grad_out, const Workspace<T>& workspace,
              const Gradients<T>& grads, const Regularization& regularization) {
  kernels().of<T>().backward_pass(config, weights, mask, batch, time, grad_out, workspace, grads, regularization);
}

// for float and double, with the signatures the headers declare
#define LSTM_NATIVE_INSTANTIATE(T)                                       \
  template decltype(forward_inference<T>) forward_inference<T>;         \
  template decltype(forward_training<T>) forward_training<T>;           \
  template decltype(forward_step<T>) forward_step<T>;                   \
  template decltype(detail::make_step_kernel<T>) detail::make_step_kernel<T>; \
  template decltype(read_trace<T>) read_trace<T>;                       \
  template decltype(backward<T>) backward<T>;
LSTM_NATIVE_INSTANTIATE(float)
LSTM_NATIVE_INSTANTIATE(double)
#undef LSTM_NATIVE_INSTANTIATE

#endif  // LSTM_NATIVE_CPU_DISPATCH

}  // namespace lstm_native
