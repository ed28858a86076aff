// What both backends (the CPU's in cpp/src/, the CUDA one in cpp/cuda/) share about a sequence call: the
// training workspace's layout, where a forward pass's per-step buffers live, and the checks of a call's
// arguments (sequence_checks.cpp, in the lstm_native_common library that both link). No Eigen and no CUDA in here.
#pragma once

#include <cstdint>

#include "lstm_native/backward.hpp"
#include "lstm_native/forward.hpp"

namespace lstm_native::detail {

// The training workspace, time-major (step t's B rows are contiguous); Ho = output_size(config):
//   x_tm   [T,B,I]     x transposed to time-major (backward reuses it for dx)
//   gates  [T,B,4H]    activated gates [i, f, g, o] of each step (backward turns them into dz)
//   h      [T+1,B,Ho]  h_0 .. h_T, the carried states (h_0 = h0)
//   c      [T+1,B,H]   c_0 .. c_T
//   c_new  [T,B,H]     with zoneout only: c̃_1 .. c̃_T, each step's cell value before zoneout mixes it
//   m      [T,B,H]     with a projection only: m_t = o_t ⊙ tanh(c_t), which h_t = m_t W_hr projects
template <class T>
struct WorkspaceLayout {
  T* x_tm;
  T* gates;
  T* h;
  T* c;
  T* c_new;  // nullptr without zoneout
  T* m;      // nullptr without a projection
};

// Where a forward pass's per-step buffers live. Row b of step t's gates starts at gates + t*gate_step +
// b*gate_row. State k (k = 0 is the initial state) lives at h + slot(k)*B*Ho and c + slot(k)*B*H; inference
// keeps only two slots. With a projection, training keeps m_t of row b at m + (t*B + b)*H; inference
// (m = nullptr) keeps the current m_t in a scratch buffer of its own.
template <class T>
struct ForwardBuffers {
  T* gates;
  std::int64_t gate_step, gate_row;
  T* h;
  T* c;
  T* m;
  bool rolling_states;

  std::int64_t slot(std::int64_t k) const { return rolling_states ? k % 2 : k; }
};

// Throws std::invalid_argument("<what> must be >= 1, got <value>") unless value >= 1.
void require_positive(const char* what, std::int64_t value);

// Element count of each part, and their sum; throws std::invalid_argument on overflow.
struct WorkspaceSizes {
  std::int64_t x_tm, gates, h, c, c_new, m, total;
};
WorkspaceSizes workspace_sizes(const CellConfig& config, std::int64_t batch, std::int64_t time,
                               const Regularization& regularization);

template <class T>
WorkspaceLayout<T> workspace_layout(const CellConfig& config, std::int64_t batch, std::int64_t time,
                                    const Regularization& regularization, const Workspace<T>& workspace);

// Whether a forward call's output sequence y must be given: the CPU backend may leave it out (empty), and
// then computes only the final states.
enum class SequenceOutputs { Required, Optional };

// B and T of a forward call, after checking every argument's shape against the config.
template <class T>
SequenceDims validate_forward(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                              const SequenceOutput<T>& out, SequenceOutputs y = SequenceOutputs::Required);

// The checks of a backward call's arguments against the config (the workspace is checked by workspace_layout).
template <class T>
void validate_backward(const CellConfig& config, const Weights<T>& weights, const Tensor<const std::uint8_t>& mask,
                       std::int64_t B, std::int64_t time, const OutputGradients<T>& grad_out, const Gradients<T>& grads);

}  // namespace lstm_native::detail
