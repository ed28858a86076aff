// Forward passes: a whole sequence (inference or training) and a single step.
#pragma once

#include <cstdint>
#include <vector>

#include "lstm_native/cell.hpp"
#include "lstm_native/regularization.hpp"
#include "lstm_native/tensor.hpp"

namespace lstm_native {

// Throws std::invalid_argument unless every rate lies in [0, 1) and the regularization goes with the config:
// zoneout mixes h_t with h_{t-1} where a projection would have to come first, so it is not defined with one.
void validate(const CellConfig& config, const Regularization& regularization);

// The batch size B and sequence length T of a call.
struct SequenceDims {
  std::int64_t batch = 0, time = 0;
};

// B and T of an input x of shape x_shape, which must be [B,T,I] with B, T >= 1 and I = config.input_size
// (std::invalid_argument naming x otherwise).
SequenceDims sequence_dims(const CellConfig& config, const std::vector<std::int64_t>& x_shape);

// What a forward pass reads besides the weights. All owned by the caller, read-only.
template <class T>
struct SequenceInput {
  Tensor<const T> x;                // [B,T,I]
  Tensor<const T> h0;               // [B,Ho] optional initial hidden state (empty: zeros); Ho = output_size(config)
  Tensor<const T> c0;               // [B,H]  optional initial cell state (empty: zeros)
  Tensor<const std::uint8_t> mask;  // [B,T]  optional; nonzero = valid step (empty: all valid)
};

// What a forward pass writes. All owned by the caller; every element is overwritten.
template <class T>
struct SequenceOutput {
  Tensor<T> y;    // [B,T,Ho] h_t of every step (the carried h, or 0, at masked steps); Ho = output_size(config).
                  // The CPU's sequence calls take it empty when only the final states are wanted (the CUDA
                  // backend needs it).
  Tensor<T> h_n;  // [B,Ho]   optional: the final hidden state (the last valid step's, with a mask)
  Tensor<T> c_n;  // [B,H]    optional: the final cell state
};

// The training workspace: memory the caller owns, sized by training_workspace_size(). forward_training
// fills it with what backward needs; backward consumes it (overwrites its contents), so it supports
// exactly one backward per forward_training. Its layout is private to the library.
template <class T>
struct Workspace {
  T* data = nullptr;
  std::int64_t size = 0;  // in elements of T
};

// Number of elements of T the training workspace needs for a batch of B sequences of T steps (more with
// zoneout, whose pre-zoneout cell states backward needs). Throws std::invalid_argument if it overflows.
std::int64_t training_workspace_size(const CellConfig& config, std::int64_t batch, std::int64_t time,
                                     const Regularization& regularization = {});

// Inference: runs the whole sequence and writes `out`. Allocates its own scratch memory. Of
// `regularization` only the zoneout rates act (as their expectation); see regularization.hpp.
template <class T>
void forward_inference(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                       const SequenceOutput<T>& out, const Regularization& regularization = {});

// Training: as forward_inference, and fills `workspace` (size >= training_workspace_size(config, B, T,
// regularization))
// for a later call to backward() with the same config, weights, batch, time, mask and regularization,
// whose masks it draws (regularization.hpp).
template <class T>
void forward_training(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                      const SequenceOutput<T>& out, const Workspace<T>& workspace,
                      const Regularization& regularization = {});

// One time step (inference):
//   x [B,I], h_prev [B,Ho], c_prev [B,H] (both required)  ->  h [B,Ho], c [B,H]  (Ho = output_size(config)).
// Same cell as the sequence calls with T = 1; h and c must not alias h_prev and c_prev. It packs the weights
// for this one step: a stream of steps belongs to a StepCell (lstm_native/step.hpp), which packs them once.
template <class T>
void forward_step(const CellConfig& config, const Weights<T>& weights, Tensor<const T> x,
                  Tensor<const T> h_prev, Tensor<const T> c_prev, Tensor<T> h, Tensor<T> c,
                  const Regularization& regularization = {});

// The activations of every step of a forward_training pass, read back from its workspace (call it before
// backward, which consumes the workspace): each [B,T,H] (h: [B,T,Ho]), batch-first, every element overwritten. i, f, g, o
// are the gates; c and h the states after the step (after zoneout, when it is on). At a masked step the
// gates are 0 (no update ran) and c, h hold the carried states. `mask` and `regularization` are the
// forward pass's.
template <class T>
struct Trace {
  Tensor<T> i, f, g, o, c, h;
};

template <class T>
void read_trace(const CellConfig& config, std::int64_t batch, std::int64_t time, Tensor<const std::uint8_t> mask,
                const Workspace<T>& workspace, const Trace<T>& trace, const Regularization& regularization = {});

}  // namespace lstm_native
