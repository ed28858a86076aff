// The CUDA backend: the same cell, forward and backward, on an NVIDIA GPU (built only when
// LSTM_NATIVE_WITH_CUDA is 1; see config.hpp). This header names no CUDA type, so it compiles without a
// CUDA toolkit; a stream is passed as `void*` (a cudaStream_t; nullptr is the default stream).
//
// The calls mirror forward.hpp and backward.hpp exactly: the same CellConfig, Weights<T>, SequenceInput<T>,
// SequenceOutput<T>, Workspace<T>, OutputGradients<T>, Gradients<T> and Regularization, the same shapes,
// the same conventions (gradients overwritten, optional arguments empty views, shapes checked first with
// std::invalid_argument), with one difference: EVERY data pointer (x, weights, mask, outputs, workspace,
// gradients) is DEVICE memory of the current device. The size of the training workspace is
// training_workspace_size(), as on the CPU (its layout is the CPU's, on the device).
//
// Calls are asynchronous with respect to the host: they enqueue their work on `stream` and return; synchronize
// the stream before reading the outputs on the host. Scratch memory comes from the stream-ordered allocator
// (cudaMallocAsync). CUDA and cuBLAS failures throw std::runtime_error naming the call.
//
// Regularization masks are drawn on the device from the same Philox4x32-10 streams with the same element
// indexing as the CPU (regularization.hpp), so a seeded run draws the same masks on both.
//
// Every variant of the CPU backend is supported: the peephole kinds, the output peephole's source, masks,
// zero_output_for_mask, h0/c0, every regularizer, and a projection (CellConfig::projection_size > 0).
#pragma once

#include <cstddef>

#include "lstm_native/backward.hpp"
#include "lstm_native/cell.hpp"
#include "lstm_native/forward.hpp"
#include "lstm_native/regularization.hpp"

namespace lstm_native::cuda {

// Number of CUDA devices usable: 0 without a driver or a device (never throws).
int device_count();

// Device memory and copies for callers that hold host arrays (the Python binding): thin wrappers over
// cudaMalloc, cudaFree, cudaMemcpy (synchronous, on the default stream) and cudaStreamSynchronize;
// std::runtime_error on failure. device_free(nullptr) does nothing.
void* device_malloc(std::size_t bytes);
void device_free(void* pointer) noexcept;
void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes);
void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes);
void synchronize(void* stream = nullptr);

// As lstm_native::forward_inference, on the device.
template <class T>
void forward_inference(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                       const SequenceOutput<T>& out, const Regularization& regularization = {},
                       void* stream = nullptr);

// As lstm_native::forward_training, on the device; `workspace` is device memory of at least
// training_workspace_size(config, B, T, regularization) elements.
template <class T>
void forward_training(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                      const SequenceOutput<T>& out, const Workspace<T>& workspace,
                      const Regularization& regularization = {}, void* stream = nullptr);

// As lstm_native::backward, on the device, after cuda::forward_training (the workspace is the GPU's).
template <class T>
void backward(const CellConfig& config, const Weights<T>& weights, Tensor<const std::uint8_t> mask,
              std::int64_t batch, std::int64_t time, const OutputGradients<T>& grad_out,
              const Workspace<T>& workspace, const Gradients<T>& grads, const Regularization& regularization = {},
              void* stream = nullptr);

}  // namespace lstm_native::cuda
