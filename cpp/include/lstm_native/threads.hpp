// Threading. The library uses OpenMP (when built with it) for its elementwise passes and Eigen's own
// OpenMP-parallel GEMMs; both follow this setting, which also follows OMP_NUM_THREADS at start-up.
#pragma once

namespace lstm_native {

// Sets the number of threads used by subsequent calls (n >= 1; throws std::invalid_argument otherwise).
// A build without OpenMP runs on one thread whatever n is.
void set_num_threads(int n);

// The number of threads subsequent calls will use.
int get_num_threads();

}  // namespace lstm_native
