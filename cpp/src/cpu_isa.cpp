#include <stdexcept>
#include <string>

#include "lstm_native/cpu.hpp"

namespace lstm_native {

bool cpu_supports(const std::string& isa) {
  if (isa != "avx2" && isa != "avx512") throw std::invalid_argument("isa: expected \"avx2\" or \"avx512\", got \"" + isa + "\"");
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx2") return avx2;
  return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
#else
  return false;
#endif
}

}  // namespace lstm_native
