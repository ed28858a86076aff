// The table of this build's CPU entry points (cpp/src/kernels_cpu.hpp), compiled once per instruction set
// with LSTM_NATIVE_KERNELS_ISA=generic, avx2 or avx512.
#include "kernels_cpu.hpp"

#ifndef LSTM_NATIVE_KERNELS_ISA
#error "LSTM_NATIVE_KERNELS_ISA must name the instruction set this file is compiled for"
#endif

#define LSTM_NATIVE_JOIN_(a, b) a##b
#define LSTM_NATIVE_JOIN(a, b) LSTM_NATIVE_JOIN_(a, b)
#define LSTM_NATIVE_STRING_(a) #a
#define LSTM_NATIVE_STRING(a) LSTM_NATIVE_STRING_(a)

namespace {

template <class T>
constexpr lstm_native::detail::CpuKernelsOf<T> kernels_of() {
  return {&lstm_native::forward_inference<T>, &lstm_native::forward_training<T>, &lstm_native::forward_step<T>,
          &lstm_native::detail::make_step_kernel<T>, &lstm_native::read_trace<T>, &lstm_native::backward<T>};
}

}  // namespace

extern "C" const lstm_native::detail::CpuKernels LSTM_NATIVE_JOIN(lstm_native_cpu_kernels_, LSTM_NATIVE_KERNELS_ISA) = {
    LSTM_NATIVE_STRING(LSTM_NATIVE_KERNELS_ISA), kernels_of<float>(), kernels_of<double>()};
