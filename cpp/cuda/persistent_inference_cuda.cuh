// The persistent small-batch inference kernel (persistent_inference_cuda.cu), used by forward_inference.
#pragma once

#include "common_cuda.cuh"

namespace lstm_native::cuda::detail {

// Runs the whole sequence's recurrence in one cooperative kernel, from gates = x W + b [B,T,4H] (batch-first),
// and returns true; returns false, having enqueued nothing, where it does not apply (see the .cu file): the
// caller then takes the per-step path.
template <class T>
bool persistent_forward_inference(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                                  const SequenceOutput<T>& out, SequenceDims dims, const T* gates,
                                  const Regularization& regularization, cudaStream_t stream);

}  // namespace lstm_native::cuda::detail
