// Threading. The library runs its GEMMs and elementwise passes on OpenMP threads (when built with it), in
// chunks that it cuts itself (Eigen runs single-threaded); the count is this setting, OpenMP's default
// (OMP_NUM_THREADS, or the cores) until it is set. Results do not depend on it (docs/DESIGN.md §4).
// Cancellation: a CancellationScope lets a caller stop a long call from outside (Ctrl-C, a deadline).
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>

namespace lstm_native {

// Sets the number of threads used by subsequent calls: n in [1, max_num_threads()], std::invalid_argument
// otherwise. A build without OpenMP runs on one thread whatever n is.
void set_num_threads(std::int64_t n);

// The number of threads subsequent calls will use.
int get_num_threads();

// The largest count set_num_threads accepts: 4 threads per CPU the machine reports, at least 16. More threads
// than cores never speed up this compute-bound work, and the OpenMP runtime allocates a stack and state per
// thread: 10^9 made it try to allocate 224 GB and abort the process, 10^5 crashed under a memory limit.
int max_num_threads();

// Thrown by a call that a CancellationScope stopped. Its outputs (and a training workspace it was writing)
// hold partial results; everything else is as before the call.
class Cancelled : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// While a scope lives, the sequence calls its thread makes (forward_inference, forward_training, backward)
// call `stop` between chunks of steps, on that thread and outside their parallel regions, and throw
// Cancelled when it returns true. `stop` runs every few milliseconds of work, so it must be cheap. Scopes
// nest (the innermost one is polled).
class CancellationScope {
 public:
  explicit CancellationScope(std::function<bool()> stop);
  ~CancellationScope();
  CancellationScope(const CancellationScope&) = delete;
  CancellationScope& operator=(const CancellationScope&) = delete;

  bool stop_requested() const { return stop_(); }

 private:
  std::function<bool()> stop_;
  const CancellationScope* outer_;
};

namespace detail {
// Throws Cancelled if this thread's innermost CancellationScope asks to stop.
void throw_if_cancelled();
}  // namespace detail

}  // namespace lstm_native
