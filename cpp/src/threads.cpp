#include "lstm_native/threads.hpp"

#include <stdexcept>
#include <string>

#include <Eigen/Core>

#include "lstm_native/config.hpp"
#if LSTM_NATIVE_WITH_OPENMP
#include <omp.h>
#endif

namespace lstm_native {

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("n: expected a thread count >= 1, got " + std::to_string(n));
#if LSTM_NATIVE_WITH_OPENMP
  // Eigen's setting is process-wide, unlike omp_set_num_threads' per-thread one, so it also holds for
  // calls made from other threads (the library reads it back in get_num_threads).
  Eigen::setNbThreads(n);
#endif
}

int get_num_threads() { return Eigen::nbThreads(); }

}  // namespace lstm_native
