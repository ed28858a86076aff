// Internals shared by the CUDA forward and backward passes: error checks, the cuBLAS handle, row-major GEMMs,
// the mask kernels (the generator of cpp/common/masks.hpp, as the CPU's) and small elementwise kernels.
#pragma once

#include <cuda_runtime.h>
#include <cublas_v2.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "lstm_native/backward.hpp"
#include "lstm_native/cuda.hpp"
#include "lstm_native/forward.hpp"
#include "../common/masks.hpp"
#include "../common/sequence_checks.hpp"

namespace lstm_native::cuda::detail {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("lstm_native CUDA: ") + what + ": " + cudaGetErrorString(status));
}
inline void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("lstm_native cuBLAS: ") + what + ": status " + std::to_string(int(status)));
}
#define LSTM_NATIVE_CUDA_CHECK(call) ::lstm_native::cuda::detail::check((call), #call)
#define LSTM_NATIVE_CUDA_LAUNCHED() ::lstm_native::cuda::detail::check(cudaGetLastError(), "kernel launch")

// A cuBLAS handle per host thread and device (creating one costs milliseconds), bound to `stream`.
cublasHandle_t cublas_handle(cudaStream_t stream);

// Row-major C [M,N] = alpha op(A) op(B) + beta C, A, B, C with row strides lda, ldb, ldc (cuBLAS is
// column-major: a row-major X is a column-major Xᵀ, so this computes Cᵀ = op(B)ᵀ op(A)ᵀ).
// T: float or double.
template <class T>
void gemm(cublasHandle_t handle, bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, T alpha,
          const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc);

// Stream-ordered scratch memory of `count` elements of T, freed (stream-ordered) when it goes out of scope.
template <class T>
class Scratch {
 public:
  Scratch(std::int64_t count, cudaStream_t stream) : stream_(stream) {
    if (count > 0) LSTM_NATIVE_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&data_), sizeof(T) * count, stream));
  }
  ~Scratch() {
    if (data_) cudaFreeAsync(data_, stream_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return data_; }

 private:
  T* data_ = nullptr;
  cudaStream_t stream_;
};

// ---- regularization masks (cpp/common/masks.hpp) ----

using lstm_native::detail::MaskStream;
using lstm_native::detail::philox_uniform16;
using lstm_native::detail::rate_threshold;

// out[k] = (u(first + k) < threshold ? hit : miss), k in [0, count).
template <class T>
__global__ void fill_mask_kernel(std::uint64_t seed, MaskStream stream, std::uint64_t first, std::int64_t count,
                                 std::uint32_t threshold, T hit, T miss, T* out) {
  for (std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; k < count;
       k += std::int64_t(gridDim.x) * blockDim.x)
    out[k] = philox_uniform16(seed, stream, first + std::uint64_t(k)) < threshold ? hit : miss;
}

constexpr int kThreads = 256;

// Calls launch(diagonal, current, zoneout, part), each a std::integral_constant, for a step kernel's
// compile-time variant: diagonal peepholes, the output gate peeking at c_t, zoneout, and the part of a
// split step (0: whole; 1, 2: before and after a full peephole's GEMM). Without diagonal peepholes the
// output peephole's source does not matter.
template <class Launch>
void dispatch_step(bool diagonal, bool current, bool zoneout, int part, const Launch& launch) {
  using std::integral_constant;
  auto with_part = [&](auto d, auto c, auto z) {
    if (part == 0) launch(d, c, z, integral_constant<int, 0>{});
    else if (part == 1) launch(d, c, z, integral_constant<int, 1>{});
    else launch(d, c, z, integral_constant<int, 2>{});
  };
  auto with_zoneout = [&](auto d, auto c) {
    zoneout ? with_part(d, c, std::true_type{}) : with_part(d, c, std::false_type{});
  };
  if (!diagonal) return with_zoneout(std::false_type{}, std::true_type{});
  current ? with_zoneout(std::true_type{}, std::true_type{}) : with_zoneout(std::true_type{}, std::false_type{});
}
inline unsigned blocks_for(std::int64_t count) {
  const std::int64_t b = (count + kThreads - 1) / kThreads;
  return unsigned(b < 1 ? 1 : (b > 65535 * 16 ? 65535 * 16 : b));
}

// Inverted dropout mask of count elements: 0 with probability rate, else 1/(1-rate) (as the CPU's).
template <class T>
void fill_dropout_mask(std::uint64_t seed, MaskStream stream, std::int64_t count, double rate, T* out,
                       cudaStream_t cuda_stream) {
  fill_mask_kernel<T><<<blocks_for(count), kThreads, 0, cuda_stream>>>(
      seed, stream, 0, count, rate_threshold(rate), T(0), T(1.0 / (1.0 - rate)), out);
  LSTM_NATIVE_CUDA_LAUNCHED();
}

// ---- small elementwise kernels ----

// dst [d1,d0,width] = src [d0,d1,width] with the two leading axes swapped, optionally ⊙ a per-sequence mask
// [B,width] indexed by the batch axis (axis `batch_axis` of src: 0 or 1).
template <class T>
__global__ void swap_leading_axes_kernel(const T* src, std::int64_t d0, std::int64_t d1, std::int64_t width, T* dst,
                                         const T* mask, int batch_axis) {
  const std::int64_t count = d0 * d1 * width;
  for (std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; k < count;
       k += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t w = k % width, i1 = (k / width) % d1, i0 = k / (width * d1);
    T v = src[k];
    if (mask) v *= mask[(batch_axis == 0 ? i0 : i1) * width + w];
    dst[(i1 * d0 + i0) * width + w] = v;
  }
}

template <class T>
void swap_leading_axes(const T* src, std::int64_t d0, std::int64_t d1, std::int64_t width, T* dst, const T* mask,
                       int batch_axis, cudaStream_t stream) {
  swap_leading_axes_kernel<T><<<blocks_for(d0 * d1 * width), kThreads, 0, stream>>>(src, d0, d1, width, dst, mask,
                                                                                     batch_axis);
  LSTM_NATIVE_CUDA_LAUNCHED();
}

// rows [count, width] ⊙= mask [B, width], row r using mask row r mod B (time-major rows).
template <class T>
__global__ void apply_sequence_mask_kernel(T* rows, std::int64_t count, std::int64_t batch, std::int64_t width,
                                           const T* mask) {
  const std::int64_t n = count * width;
  for (std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; k < n;
       k += std::int64_t(gridDim.x) * blockDim.x)
    rows[k] *= mask[((k / width) % batch) * width + k % width];
}

template <class T>
void apply_sequence_mask(T* rows, std::int64_t count, std::int64_t batch, std::int64_t width, const T* mask,
                         cudaStream_t stream) {
  apply_sequence_mask_kernel<T><<<blocks_for(count * width), kThreads, 0, stream>>>(rows, count, batch, width, mask);
  LSTM_NATIVE_CUDA_LAUNCHED();
}

// out[k] = a[k] * b[k]
template <class T>
__global__ void multiply_kernel(const T* a, const T* b, T* out, std::int64_t count) {
  for (std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; k < count;
       k += std::int64_t(gridDim.x) * blockDim.x)
    out[k] = a[k] * b[k];
}

template <class T>
void multiply(const T* a, const T* b, T* out, std::int64_t count, cudaStream_t stream) {
  multiply_kernel<T><<<blocks_for(count), kThreads, 0, stream>>>(a, b, out, count);
  LSTM_NATIVE_CUDA_LAUNCHED();
}

// dst = src (count elements), or zeros when src is nullptr.
template <class T>
void copy_or_zero(T* dst, const T* src, std::int64_t count, cudaStream_t stream) {
  if (src)
    LSTM_NATIVE_CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(T) * count, cudaMemcpyDeviceToDevice, stream));
  else
    LSTM_NATIVE_CUDA_CHECK(cudaMemsetAsync(dst, 0, sizeof(T) * count, stream));
}

// The training workspace's layout, the forward buffers and the argument checks are both backends'
// (cpp/common/sequence_checks.hpp).
using lstm_native::detail::ForwardBuffers;
using lstm_native::detail::validate_backward;
using lstm_native::detail::validate_forward;
using lstm_native::detail::workspace_layout;
using lstm_native::detail::WorkspaceLayout;

// Sigmoid and tanh at full precision (no fast-math: results match the CPU to float rounding).
__device__ inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ inline double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
__device__ inline float tanh_(float x) { return tanhf(x); }
__device__ inline double tanh_(double x) { return tanh(x); }

// Zoneout weights of element (t, b, j): in training 1 with probability z (keep the previous value) else 0,
// from the CPU's streams and indices ((t·B+b)·H+j); at inference the rate itself.
struct ZoneoutArgs {
  bool training;
  std::uint64_t seed;
  std::uint32_t threshold_h, threshold_c;
  double rate_h, rate_c;
};

template <class T>
__device__ inline void zoneout_weights(const ZoneoutArgs& z, std::int64_t t, std::int64_t B, std::int64_t H,
                                       std::int64_t b, std::int64_t j, T& d_h, T& d_c) {
  if (!z.training) {
    d_h = T(z.rate_h), d_c = T(z.rate_c);
    return;
  }
  const std::uint64_t e = std::uint64_t((t * B + b) * H + j);
  d_h = philox_uniform16(z.seed, MaskStream::kZoneoutH, e) < z.threshold_h ? T(1) : T(0);
  d_c = philox_uniform16(z.seed, MaskStream::kZoneoutC, e) < z.threshold_c ? T(1) : T(0);
}

inline ZoneoutArgs zoneout_args(const Regularization& reg, bool training) {
  return {training, reg.seed, rate_threshold(reg.zoneout_h), rate_threshold(reg.zoneout_c), reg.zoneout_h,
          reg.zoneout_c};
}

// The masks drawn once per training call (regularization_cpu.hpp's CallMasks), on the device; nullptr = off.
template <class T>
struct CallMasks {
  Scratch<T> input, recurrent, weight, U;
  const T* recurrent_kernel(const T* U_given) const { return U.get() ? U.get() : U_given; }

  CallMasks(const Regularization& reg, const CellConfig& config, std::int64_t B, const T* U_given, cudaStream_t stream)
      : input(reg.dropout > 0 ? B * config.input_size : 0, stream),
        recurrent(reg.recurrent_dropout > 0 ? B * output_size(config) : 0, stream),
        weight(reg.weight_drop > 0 ? output_size(config) * 4 * config.hidden_size : 0, stream),
        U(reg.weight_drop > 0 ? output_size(config) * 4 * config.hidden_size : 0, stream) {
    const std::int64_t I = config.input_size, H = config.hidden_size, Ho = output_size(config);
    if (input.get()) fill_dropout_mask(reg.seed, MaskStream::kInputDropout, B * I, reg.dropout, input.get(), stream);
    if (recurrent.get())
      fill_dropout_mask(reg.seed, MaskStream::kRecurrentDropout, B * Ho, reg.recurrent_dropout, recurrent.get(), stream);
    if (weight.get()) {
      fill_dropout_mask(reg.seed, MaskStream::kWeightDrop, Ho * 4 * H, reg.weight_drop, weight.get(), stream);
      multiply(static_cast<const T*>(weight.get()), U_given, U.get(), Ho * 4 * H, stream);
    }
  }
};

}  // namespace lstm_native::cuda::detail
