#include "lstm_native/threads.hpp"

#include <atomic>
#include <stdexcept>
#include <string>

#include "lstm_native/config.hpp"
#if LSTM_NATIVE_WITH_OPENMP
#include <omp.h>
#endif

namespace lstm_native {
namespace {

// 0 until set: then OpenMP's default (OMP_NUM_THREADS, or the number of cores). Process-wide, unlike
// omp_set_num_threads, so it also holds for calls made from other threads.
std::atomic<int> g_num_threads{0};

}  // namespace

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("n: expected a thread count >= 1, got " + std::to_string(n));
  g_num_threads = n;
}

int get_num_threads() {
#if LSTM_NATIVE_WITH_OPENMP
  const int n = g_num_threads;
  return n > 0 ? n : omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace lstm_native
