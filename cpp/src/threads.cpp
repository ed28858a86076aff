#include "lstm_native/threads.hpp"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "lstm_native/config.hpp"
#if LSTM_NATIVE_WITH_OPENMP
#include <omp.h>
#endif

namespace lstm_native {
namespace {

// 0 until set: then OpenMP's default (OMP_NUM_THREADS, or the number of cores). Process-wide, unlike
// omp_set_num_threads, so it also holds for calls made from other threads.
std::atomic<int> g_num_threads{0};

// The innermost CancellationScope of this thread, or nullptr.
thread_local const CancellationScope* t_cancellation = nullptr;

}  // namespace

int max_num_threads() {
  constexpr int kThreadsPerCpu = 4, kAtLeast = 16;
  return std::max<int>(kAtLeast, kThreadsPerCpu * static_cast<int>(std::thread::hardware_concurrency()));
}

void set_num_threads(std::int64_t n) {
  const int most = max_num_threads();
  if (n < 1 || n > most)
    throw std::invalid_argument("n: expected a thread count in [1, " + std::to_string(most) + "] (4 per CPU), got " +
                                std::to_string(n));
  g_num_threads = static_cast<int>(n);
}

int get_num_threads() {
#if LSTM_NATIVE_WITH_OPENMP
  const int n = g_num_threads;
  return n > 0 ? n : omp_get_max_threads();
#else
  return 1;
#endif
}

CancellationScope::CancellationScope(std::function<bool()> stop) : stop_(std::move(stop)), outer_(t_cancellation) {
  t_cancellation = this;
}

CancellationScope::~CancellationScope() { t_cancellation = outer_; }

namespace detail {

void throw_if_cancelled() {
  if (t_cancellation != nullptr && t_cancellation->stop_requested()) throw Cancelled("the call was cancelled");
}

}  // namespace detail
}  // namespace lstm_native
