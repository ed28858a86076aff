// Small-batch inference in ONE kernel launch for the whole sequence (a persistent, cooperative kernel): the
// per-step path (lstm_forward_cuda.cu) costs a cuBLAS GEMM and a kernel launch per step, ~17 µs at B <= 8,
// which is latency, not work. Here every block keeps its slice of U in shared memory for the whole call and
// owns a few hidden units j (all four gate columns of each, so the cell update needs nothing from other
// blocks); the blocks meet once per step at a grid barrier, after which every block reads the new h_t of
// all units from global memory (L2).
//
// Step t in block k (units j0 .. j0+u-1), DESIGN.md §1:
//   z[b, q·u + jj] = (x W + b)[b, t, q·H + j0 + jj] + Σ_k h_{t-1}[b, k] U[k, q·H + j0 + jj]     q = i, f, g, o
//   then the cell update of (b, j) by one thread, which keeps c[b, j] in a register across steps.
// The matrix-vector product splits k over S = 256 / C thread slices (C = 4u columns); their partial sums
// meet in shared memory.
//
// Applies to: float32/float64 inference, B <= 16, peephole None or Diagonal (either output source), masks,
// zero_output_for_mask, h0/c0, zoneout's inference-time expectation; no projection. Elsewhere, or where the
// device cannot hold the blocks co-resident (cooperative launch), the caller takes the per-step path.
// LSTM_NATIVE_CUDA_PERSISTENT=0 in the environment turns it off (for comparisons, bench/gpu.py).
#include <cooperative_groups.h>

#include <cstdlib>
#include <cstring>

#include "persistent_inference_cuda.cuh"

namespace lstm_native::cuda::detail {
namespace {

constexpr int kPersistentThreads = 256;
constexpr int kMaxUnitsPerBlock = kPersistentThreads / 4;  // C = 4u columns must divide the block's threads

template <class T>
struct PersistentArgs {
  const T* gates;  // [B, T, 4H]: x W + b, batch-first
  const T* U;      // [H, 4H]
  const T* p;      // diagonal peepholes [3, H], or nullptr
  const T* h0;     // [B, H] or nullptr (zeros)
  const T* c0;     // [B, H] or nullptr (zeros)
  const std::uint8_t* mask;  // [B, T] or nullptr
  T* h_slots;      // [2, B, H]: h_{t-1} and h_t, alternating
  T* y;            // [B, T, H]
  T* h_n;          // [B, H] or nullptr
  T* c_n;          // [B, H] or nullptr
  int B, time, H, units;
  bool current, zero_output, zoneout;
  T zoneout_h, zoneout_c;  // inference: zoneout acts as its expectation
};

// Shared memory of a block, in elements of T: U's slice [H, C], h_{t-1} [kMaxB, H], partial sums [S, kMaxB, C].
template <int kMaxB>
std::int64_t shared_elements(std::int64_t H, std::int64_t units) {
  return H * 4 * units + kMaxB * H + std::int64_t(kPersistentThreads) * kMaxB;
}

template <class T, int kMaxB>
__global__ void __launch_bounds__(kPersistentThreads) persistent_inference_kernel(const PersistentArgs<T> a) {
  extern __shared__ unsigned char shared_bytes[];
  const int H = a.H, u = a.units, C = 4 * u, S = kPersistentThreads / C, B = a.B;
  T* U_s = reinterpret_cast<T*>(shared_bytes);  // [H, C], column q·u + jj = gate q of unit j0 + jj
  T* h_s = U_s + std::int64_t(H) * C;          // [B, H]
  T* partial = h_s + std::int64_t(kMaxB) * H;   // [S, kMaxB, C]
  const int tid = threadIdx.x, j0 = blockIdx.x * u;
  cooperative_groups::grid_group grid = cooperative_groups::this_grid();

  for (std::int64_t e = tid; e < std::int64_t(H) * C; e += kPersistentThreads) {
    const int k = int(e / C), col = int(e % C), q = col / u, j = j0 + col % u;
    U_s[e] = j < H ? a.U[std::int64_t(k) * 4 * H + q * H + j] : T(0);
  }
  // The cell threads: (b, j) for tid < B·u; each keeps c[b, j] (and its latest h) in registers.
  const int b = tid / u, j = j0 + tid % u;
  const bool owner = tid < B * u && j < H;
  T c = T(0), h = T(0);
  if (owner) {
    c = a.c0 ? a.c0[b * H + j] : T(0);
    h = a.h0 ? a.h0[b * H + j] : T(0);
    a.h_slots[b * H + j] = h;
  }
  grid.sync();

  const int col = tid % C, slice = tid / C;
  const std::int64_t G = 4 * std::int64_t(H);
  for (int t = 0; t < a.time; ++t) {
    const T* h_prev = a.h_slots + std::int64_t(t % 2) * B * H;
    T* h_next = a.h_slots + std::int64_t((t + 1) % 2) * B * H;
    T zx[4];  // issued before the product so that their latency overlaps it
    if (owner) {
      const T* row = a.gates + (std::int64_t(b) * a.time + t) * G + j;
      for (int q = 0; q < 4; ++q) zx[q] = row[q * H];
    }
    // h_{t-1} of every unit, written by other blocks before the barrier: read through L2 (__ldcg), never
    // from a possibly stale L1 line of two steps ago.
    for (int e = tid; e < B * H; e += kPersistentThreads) h_s[e] = __ldcg(h_prev + e);
    __syncthreads();
    T acc[kMaxB];
#pragma unroll
    for (int r = 0; r < kMaxB; ++r) acc[r] = T(0);
    for (int k = slice; k < H; k += S) {
      const T w = U_s[k * C + col];
#pragma unroll
      for (int r = 0; r < kMaxB; ++r)
        if (r < B) acc[r] += h_s[r * H + k] * w;
    }
#pragma unroll
    for (int r = 0; r < kMaxB; ++r)
      if (r < B) partial[(slice * kMaxB + r) * C + col] = acc[r];
    __syncthreads();
    if (owner) {
      T z[4];
      for (int q = 0; q < 4; ++q) {
        T sum = zx[q];
        for (int s = 0; s < S; ++s) sum += partial[(s * kMaxB + b) * C + q * u + (j - j0)];
        z[q] = sum;
      }
      const T h_carried = h_s[b * H + j];
      T* y_at = a.y + (std::int64_t(b) * a.time + t) * H + j;
      if (a.mask && a.mask[std::int64_t(b) * a.time + t] == 0) {  // the state is carried; y is h or 0
        h = h_carried;
        *y_at = a.zero_output ? T(0) : h;
      } else {
        // i, f peek at c_{t-1}; c̃_t = f ⊙ c_{t-1} + i ⊙ g; o peeks at c̃_t (or c_{t-1}); h̃_t = o ⊙ tanh(c̃_t)
        const T zi = z[0] + (a.p ? a.p[j] * c : T(0)), zf = z[1] + (a.p ? a.p[H + j] * c : T(0));
        const T i = sigmoid(zi), f = sigmoid(zf), g = tanh_(z[2]);
        const T c_new = f * c + i * g;
        const T o = sigmoid(z[3] + (a.p ? a.p[2 * H + j] * (a.current ? c_new : c) : T(0)));
        h = o * tanh_(c_new);
        if (a.zoneout) {
          h = a.zoneout_h * h_carried + (T(1) - a.zoneout_h) * h;
          c = a.zoneout_c * c + (T(1) - a.zoneout_c) * c_new;
        } else {
          c = c_new;
        }
        *y_at = h;
      }
      h_next[b * H + j] = h;
    }
    grid.sync();  // h_t complete (and h_s free to be overwritten)
  }
  if (owner) {
    if (a.h_n) a.h_n[b * H + j] = h;
    if (a.c_n) a.c_n[b * H + j] = c;
  }
}

bool turned_off_by_environment() {
  const char* value = std::getenv("LSTM_NATIVE_CUDA_PERSISTENT");
  return value && std::strcmp(value, "0") == 0;
}

// Launches with the fewest units per block (the most blocks) that the device holds co-resident with their
// shared memory; false where none fits.
template <class T, int kMaxB>
bool launch(PersistentArgs<T> args, cudaStream_t stream) {
  int device = 0, cooperative = 0, sms = 0, max_shared = 0;
  LSTM_NATIVE_CUDA_CHECK(cudaGetDevice(&device));
  LSTM_NATIVE_CUDA_CHECK(cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device));
  LSTM_NATIVE_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  LSTM_NATIVE_CUDA_CHECK(cudaDeviceGetAttribute(&max_shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (!cooperative) return false;
  const auto kernel = persistent_inference_kernel<T, kMaxB>;
  for (int units = 1; units <= kMaxUnitsPerBlock; units *= 2) {
    const std::int64_t bytes = shared_elements<kMaxB>(args.H, units) * std::int64_t(sizeof(T));
    if (bytes > max_shared) return false;  // more units per block only needs more
    LSTM_NATIVE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
    int per_sm = 0;
    LSTM_NATIVE_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kPersistentThreads, bytes));
    const std::int64_t blocks = (args.H + units - 1) / units;
    if (blocks > std::int64_t(per_sm) * sms) continue;
    args.units = units;
    void* params[] = {&args};
    LSTM_NATIVE_CUDA_CHECK(cudaLaunchCooperativeKernel(reinterpret_cast<const void*>(kernel), dim3(unsigned(blocks)),
                                                       dim3(kPersistentThreads), params, std::size_t(bytes), stream));
    return true;
  }
  return false;
}

}  // namespace

template <class T>
bool persistent_forward_inference(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                                  const SequenceOutput<T>& out, SequenceDims dims, const T* gates,
                                  const Regularization& regularization, cudaStream_t stream) {
  const std::int64_t B = dims.batch, H = config.hidden_size;
  if (B > 16 || config.projection_size > 0 || config.peephole == Peephole::Full || turned_off_by_environment())
    return false;
  if (H > INT32_MAX / 4 || dims.time > INT32_MAX) return false;
  Scratch<T> h_slots(2 * B * H, stream);
  const PersistentArgs<T> args{gates, weights.U.data,
                               config.peephole == Peephole::Diagonal ? weights.peephole.data : nullptr,
                               in.h0.data, in.c0.data, in.mask.data, h_slots.get(), out.y.data,
                               out.h_n.empty() ? nullptr : out.h_n.data, out.c_n.empty() ? nullptr : out.c_n.data,
                               int(B), int(dims.time), int(H), 0,
                               config.output_peephole_source == OutputPeepholeSource::Current,
                               config.zero_output_for_mask, regularization.zoneout(), T(regularization.zoneout_h),
                               T(regularization.zoneout_c)};
  if (B <= 1) return launch<T, 1>(args, stream);
  if (B <= 2) return launch<T, 2>(args, stream);
  if (B <= 4) return launch<T, 4>(args, stream);
  if (B <= 8) return launch<T, 8>(args, stream);
  return launch<T, 16>(args, stream);
}

template bool persistent_forward_inference<float>(const CellConfig&, const Weights<float>&,
                                                  const SequenceInput<float>&, const SequenceOutput<float>&,
                                                  SequenceDims, const float*, const Regularization&, cudaStream_t);
template bool persistent_forward_inference<double>(const CellConfig&, const Weights<double>&,
                                                   const SequenceInput<double>&, const SequenceOutput<double>&,
                                                   SequenceDims, const double*, const Regularization&, cudaStream_t);

}  // namespace lstm_native::cuda::detail
