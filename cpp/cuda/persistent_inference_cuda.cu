// Small-batch inference in ONE kernel launch for the whole sequence (a persistent, cooperative kernel): the
// per-step path (lstm_forward_cuda.cu) costs a cuBLAS GEMM and a kernel launch per step, ~17 µs at B <= 8,
// which is latency, not work. Here every block keeps its slice of U in shared memory for the whole call and
// owns a few hidden units j (all four gate columns of each, so the cell update needs nothing from other
// blocks); the blocks meet once per step at a grid barrier, after which every block reads the new h_t of
// all units from global memory (L2).
//
// Step t in block k (units j0 .. j0+u-1), docs/DESIGN.md §1:
//   z[b, q·u + jj] = (x W + b)[b, t, q·H + j0 + jj] + Σ_k h_{t-1}[b, k] U[k, q·H + j0 + jj]     q = i, f, g, o
//   then the cell update of (b, j) by one thread, which keeps c[b, j] in a register across steps.
// The matrix-vector product gives each of the C = 4u columns a group of 256 / C lanes of one warp, which
// sums its share of k and then the group's partial sums by warp shuffles.
//
// Applies to: float32/float64 inference, B <= 16, peephole None or Diagonal (either output source), masks,
// zero_output_for_mask, h0/c0, zoneout's inference-time expectation; no projection; where a block's work per
// step stays small (kMaxBlockWorkPerStep). Elsewhere, or where the device cannot hold the blocks co-resident
// (cooperative launch), the caller takes the per-step path.
// LSTM_NATIVE_CUDA_PERSISTENT=0 in the environment turns it off (for comparisons, bench/gpu.py); see
// units_requested_by_environment() for its other values.
#include <cooperative_groups.h>

#include <cstdlib>

#include "persistent_inference_cuda.cuh"

namespace lstm_native::cuda::detail {
namespace {

constexpr int kPersistentThreads = 256;
constexpr int kMinUnitsPerBlock = 2;  // G = 256 / 4u lanes per column, at most a warp

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

// A block's layout: C = 4u columns (unit j0 + jj's gate q is column q·u + jj), each reduced by a group of
// G = 256 / C lanes of one warp (u >= 2, so G <= 32). U's slice is stored column-major with row stride ld
// (≡ G mod 32 for G < 32: the groups of a warp then read distinct banks).
struct BlockShape {
  int units, columns, group, ld;
  __host__ __device__ explicit BlockShape(int H, int units_per_block)
      : units(units_per_block), columns(4 * units_per_block), group(kPersistentThreads / columns),
        ld((H + 31) / 32 * 32 + (group < 32 ? group : 0)) {}
};

// Shared memory of a block, in elements of T: U's slice [C, ld], h_{t-1} [kMaxB, H], the sums z [kMaxB, C].
template <int kMaxB>
std::int64_t shared_elements(std::int64_t H, const BlockShape& shape) {
  return std::int64_t(shape.columns) * shape.ld + kMaxB * H + kMaxB * shape.columns;
}

template <class T, int kMaxB>
__global__ void __launch_bounds__(kPersistentThreads) persistent_inference_kernel(const PersistentArgs<T> a) {
  extern __shared__ unsigned char shared_bytes[];
  const int H = a.H, B = a.B;
  const BlockShape shape(H, a.units);
  const int u = shape.units, C = shape.columns, G = shape.group, ld = shape.ld;
  T* U_s = reinterpret_cast<T*>(shared_bytes);  // [C, ld]
  T* h_s = U_s + std::int64_t(C) * ld;          // [B, H]
  T* z_s = h_s + std::int64_t(kMaxB) * H;       // [B, C]
  const int tid = threadIdx.x, j0 = blockIdx.x * u;
  cooperative_groups::grid_group grid = cooperative_groups::this_grid();

  for (int col = tid / G; col < C; col += kPersistentThreads / G) {  // each group copies its own column
    const int q = col / u, j = j0 + col % u;
    for (int k = tid % G; k < H; k += G) U_s[col * ld + k] = j < H ? a.U[std::int64_t(k) * 4 * H + q * H + j] : T(0);
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

  const int col = tid / G, lane = tid % G;
  const T* U_col = U_s + col * ld;
  const std::int64_t gate_row = 4 * std::int64_t(H);
  for (int t = 0; t < a.time; ++t) {
    const T* h_prev = a.h_slots + std::int64_t(t % 2) * B * H;
    T* h_next = a.h_slots + std::int64_t((t + 1) % 2) * B * H;
    T zx[4];  // issued before the product so that their latency overlaps it
    if (owner) {
      const T* row = a.gates + (std::int64_t(b) * a.time + t) * gate_row + j;
      for (int q = 0; q < 4; ++q) zx[q] = row[q * H];
    }
    // h_{t-1} of every unit, written by other blocks before the barrier: read through L2 (__ldcg), never
    // from a possibly stale L1 line of two steps ago.
    for (int e = tid; e < B * H; e += kPersistentThreads) h_s[e] = __ldcg(h_prev + e);
    __syncthreads();
    T acc[kMaxB];
#pragma unroll
    for (int r = 0; r < kMaxB; ++r) acc[r] = T(0);
    for (int k = lane; k < H; k += G) {
      const T w = U_col[k];
#pragma unroll
      for (int r = 0; r < kMaxB; ++r)
        if (r < B) acc[r] += h_s[r * H + k] * w;
    }
#pragma unroll
    for (int r = 0; r < kMaxB; ++r) {  // the group's sum (a butterfly within the group's lanes of one warp)
      if (r < B) {
        for (int offset = G / 2; offset > 0; offset /= 2) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], offset);
        if (lane == 0) z_s[r * C + col] = acc[r];
      }
    }
    __syncthreads();
    if (owner) {
      T z[4];
      for (int q = 0; q < 4; ++q) z[q] = zx[q] + z_s[b * C + q * u + (j - j0)];
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
    grid.sync();  // h_t complete (and h_s, z_s free to be overwritten)
  }
  if (owner) {
    if (a.h_n) a.h_n[b * H + j] = h;
    if (a.c_n) a.c_n[b * H + j] = c;
  }
}

// LSTM_NATIVE_CUDA_PERSISTENT: "0" turns the kernel off; unset (or "1") lets launch() choose the units per
// block; N in {2, 4, ..., 64} asks for N units per block, whatever the work (for tuning; the call falls back
// to the per-step path where that does not fit).
int units_requested_by_environment() {
  const char* value = std::getenv("LSTM_NATIVE_CUDA_PERSISTENT");
  return value ? std::atoi(value) : 1;
}

// The units per block tried, best first (measured on an H200, T=100, I=H=512 and 1024, B=1..16: four units
// per block beat two and eight by 3-10% where they fit; bench/gpu.py).
constexpr int kUnitsPreference[] = {4, 2, 8, 16, 32, 64};
// Above this many multiply-adds per step and block (B·H·4u), the per-step path's cuBLAS GEMM is faster (at
// H=1024, B=16 the kernel took 3.2 ms against 2.4 ms per step; at B·H·4u <= 2^18 it won everywhere measured).
constexpr std::int64_t kMaxBlockWorkPerStep = std::int64_t(1) << 18;

// Launches with the first units per block of kUnitsPreference (or `requested` units, >= 2) whose blocks the
// device holds co-resident with their shared memory; false where none fits.
template <class T, int kMaxB>
bool launch(PersistentArgs<T> args, int requested, cudaStream_t stream) {
  int device = 0, cooperative = 0, sms = 0, max_shared = 0;
  LSTM_NATIVE_CUDA_CHECK(cudaGetDevice(&device));
  LSTM_NATIVE_CUDA_CHECK(cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device));
  LSTM_NATIVE_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  LSTM_NATIVE_CUDA_CHECK(cudaDeviceGetAttribute(&max_shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (!cooperative) return false;
  const auto kernel = persistent_inference_kernel<T, kMaxB>;
  const bool forced = requested >= kMinUnitsPerBlock;
  for (const int units : kUnitsPreference) {
    if (forced ? units != requested : std::int64_t(args.B) * args.H * 4 * units > kMaxBlockWorkPerStep) continue;
    const std::int64_t bytes = shared_elements<kMaxB>(args.H, BlockShape(args.H, units)) * std::int64_t(sizeof(T));
    if (bytes > max_shared) continue;
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
  const int requested = units_requested_by_environment();
  if (B > 16 || config.projection_size > 0 || config.peephole == Peephole::Full || requested == 0) return false;
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
  if (B <= 1) return launch<T, 1>(args, requested, stream);
  if (B <= 2) return launch<T, 2>(args, requested, stream);
  if (B <= 4) return launch<T, 4>(args, requested, stream);
  if (B <= 8) return launch<T, 8>(args, requested, stream);
  return launch<T, 16>(args, requested, stream);
}

template bool persistent_forward_inference<float>(const CellConfig&, const Weights<float>&,
                                                  const SequenceInput<float>&, const SequenceOutput<float>&,
                                                  SequenceDims, const float*, const Regularization&, cudaStream_t);
template bool persistent_forward_inference<double>(const CellConfig&, const Weights<double>&,
                                                   const SequenceInput<double>&, const SequenceOutput<double>&,
                                                   SequenceDims, const double*, const Regularization&, cudaStream_t);

}  // namespace lstm_native::cuda::detail
