// The instruction sets of the CPU code. On x86-64 the library holds three builds of it: "generic" (the
// baseline any x86-64 runs), "avx2" (AVX2 + FMA) and "avx512" (AVX-512 F, DQ, VL, BW); elsewhere "generic"
// alone. The first call that computes picks the fastest build this CPU runs, once per process, or the one
// the environment variable LSTM_NATIVE_ISA names (generic, avx2, avx512; auto: the default). The builds
// compute the same cell; their results differ by rounding only (FMA contracts a*b+c, wider packets sum in
// another order).
#pragma once

#include <string>

namespace lstm_native {

// Whether this CPU runs the build for `isa`: "avx2" or "avx512" (std::invalid_argument for another name).
// False on a CPU other than x86-64.
bool cpu_supports(const std::string& isa);

// The build the CPU functions run: "generic", "avx2" or "avx512". Chosen at the first call of this or of a
// CPU function (thread-safe); std::runtime_error, naming LSTM_NATIVE_ISA and its value, where that value is
// unknown or names a build this CPU cannot run (every CPU function then throws it too).
const char* active_isa();

}  // namespace lstm_native
