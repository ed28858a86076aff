// Streaming inference: one LSTM layer run one time step at a time for a batch of B independent streams, the
// state (h, c) kept by the caller between steps.
//
//   lstm_native::StepCell<float> cell(config, weights, B);  // copies and packs the weights, sizes its scratch
//   std::vector<float> h(B * output_size(config)), c(B * config.hidden_size);  // the state: zeros to start
//   for (...) cell.step(x_t, nullptr, h.data(), c.data(), nullptr);          // x_t [B,I] -> h, c in place
//
// A step computes what forward_inference computes for that step (same cell, same masks and zoneout
// expectation; sums in another order, so equal to float rounding, not bit for bit). It runs on the calling
// thread, allocates nothing and throws nothing: what a real-time thread (an audio callback) may call. Its
// weights are the cell's own copy, packed once for the products of every step. A StepCell is not shared
// between threads while it steps (its scratch is its own); give each stream (thread) its own.
#pragma once

#include <cstdint>
#include <memory>

#include "lstm_native/cell.hpp"
#include "lstm_native/regularization.hpp"

namespace lstm_native {

namespace detail {
// One instruction-set build's implementation of StepCell (cpp/src/lstm_step_cpu.cpp).
template <class T>
class StepKernel {
 public:
  virtual ~StepKernel() = default;
  virtual void step(const T* x, const std::uint8_t* mask, T* h, T* c, T* y) noexcept = 0;
};

// Validates config, weights and regularization (std::invalid_argument) and builds the kernel of the build the
// library runs (lstm_native/cpu.hpp).
template <class T>
std::unique_ptr<StepKernel<T>> make_step_kernel(const CellConfig& config, const Weights<T>& weights,
                                                std::int64_t batch, const Regularization& regularization);
}  // namespace detail

template <class T>
class StepCell {
 public:
  // batch >= 1 streams. Of `regularization` only zoneout acts, as its expectation (inference). Throws
  // std::invalid_argument for weights that do not fit the config, a bad rate or batch.
  StepCell(const CellConfig& config, const Weights<T>& weights, std::int64_t batch,
           const Regularization& regularization = {})
      : config_(config), batch_(batch), kernel_(detail::make_step_kernel(config, weights, batch, regularization)) {}

  // One step: x [B,I]; the state h [B,Ho] and c [B,H] (Ho = output_size(config)) is read and updated in place.
  // mask: B bytes, nonzero where the stream's step is valid, or nullptr (all valid); a masked row keeps its
  // state. y [B,Ho] (or nullptr): the step's output, h, or 0 at a masked step with zero_output_for_mask.
  void step(const T* x, const std::uint8_t* mask, T* h, T* c, T* y = nullptr) noexcept {
    kernel_->step(x, mask, h, c, y);
  }

  const CellConfig& config() const { return config_; }
  std::int64_t batch() const { return batch_; }

 private:
  CellConfig config_;
  std::int64_t batch_;
  std::unique_ptr<detail::StepKernel<T>> kernel_;
};

}  // namespace lstm_native
