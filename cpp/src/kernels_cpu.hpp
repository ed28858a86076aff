// The CPU backend's entry points as a table of function pointers, one table per instruction-set build
// ("generic", "avx2", "avx512"). Each build compiles cpp/src/kernels_cpu.cpp with LSTM_NATIVE_KERNELS_ISA set
// to its name, which defines its table as lstm_native_cpu_kernels_<isa>; cpp/src/dispatch_cpu.cpp defines
// the public functions, which call through the table chosen at first use.
#pragma once

#include <type_traits>

#include "lstm_native/backward.hpp"
#include "lstm_native/forward.hpp"
#include "lstm_native/step.hpp"

namespace lstm_native::detail {

template <class T>
struct CpuKernelsOf {
  decltype(&lstm_native::forward_inference<T>) inference;
  decltype(&lstm_native::forward_training<T>) training;
  decltype(&lstm_native::forward_step<T>) step;
  decltype(&lstm_native::detail::make_step_kernel<T>) step_kernel;
  decltype(&lstm_native::read_trace<T>) trace;
  decltype(&lstm_native::backward<T>) backward_pass;
};

struct CpuKernels {
  const char* isa;  // "generic", "avx2" or "avx512"
  CpuKernelsOf<float> f32;
  CpuKernelsOf<double> f64;

  template <class T>
  const CpuKernelsOf<T>& of() const {
    if constexpr (std::is_same_v<T, float>) {
      return f32;
    } else {
      return f64;
    }
  }
};

}  // namespace lstm_native::detail

// The tables (C names: the one symbol of each build that stays global in the library, see
// cmake/LstmNativeLibraries.cmake).
extern "C" {
extern const lstm_native::detail::CpuKernels lstm_native_cpu_kernels_generic;
extern const lstm_native::detail::CpuKernels lstm_native_cpu_kernels_avx2;
extern const lstm_native::detail::CpuKernels lstm_native_cpu_kernels_avx512;
}
