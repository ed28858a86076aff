// Backward pass over a whole sequence, after forward_training.
#pragma once

#include <cstdint>

#include "lstm_native/cell.hpp"
#include "lstm_native/forward.hpp"
#include "lstm_native/tensor.hpp"

namespace lstm_native {

// The gradients of the loss with respect to the forward pass's outputs. Owned by the caller, read-only;
// each is optional (empty: zero).
template <class T>
struct OutputGradients {
  Tensor<const T> dy;    // [B,T,Ho] w.r.t. y (Ho = output_size(config)) (at masked steps it flows to the carried h, or nowhere
                         //          when zero_output_for_mask)
  Tensor<const T> dh_n;  // [B,Ho]   w.r.t. the final hidden state
  Tensor<const T> dc_n;  // [B,H]    w.r.t. the final cell state
};

// The gradients backward() writes. Owned by the caller; each is optional (empty: not computed) and
// every present one is OVERWRITTEN.
template <class T>
struct Gradients {
  Tensor<T> dx;         // [B,T,I]
  Tensor<T> dh0;        // [B,Ho]
  Tensor<T> dc0;        // [B,H]
  Tensor<T> dW;         // [I,4H]
  Tensor<T> dU;         // [Ho,4H]
  Tensor<T> db;         // [4H]
  Tensor<T> dpeephole;  // shape of the peephole weights ([3,H] or [3,H,H]); must be empty for None
  Tensor<T> dprojection;  // [H,P] w.r.t. W_hr; must be empty without a projection
};

// Backpropagation through time over the sequence that forward_training stored in `workspace`.
// `mask` is the forward pass's mask (empty if it had none); `batch` and `time` are its B and T;
// `regularization` is the forward pass's (same rates and seed: backward redraws its masks).
// Consumes the workspace: its contents are overwritten, so call backward once per forward_training.
template <class T>
void backward(const CellConfig& config, const Weights<T>& weights, Tensor<const std::uint8_t> mask,
              std::int64_t batch, std::int64_t time, const OutputGradients<T>& grad_out,
              const Workspace<T>& workspace, const Gradients<T>& grads, const Regularization& regularization = {});

}  // namespace lstm_native
