// Forward pass on the GPU (docs/DESIGN.md §3, §8), the CPU's algorithm (cpp/src/lstm_forward_cpu.cpp): one cuBLAS
// GEMM x W over all steps (+ b), then per step one GEMM h_{t-1} U (plus c P_k for Peephole::Full) and one
// fused elementwise kernel (peepholes, activations, state update, zoneout, masks, y).
// With a projection (P >= 1) the kernel writes m_t = o ⊙ tanh(c_t), then one GEMM h_t = m_t W_hr and a small
// kernel for masked rows and y. Inference at small batches takes one persistent kernel for all steps instead
// (persistent_inference_cuda.cu) where it applies.
#include "common_cuda.cuh"
#include "persistent_inference_cuda.cuh"

namespace lstm_native::cuda {
namespace detail {
namespace {

// Where step t's buffers are. Row b of the step's gates starts at gates + b*gate_row.
template <class T>
struct StepArgs {
  T* gates;
  std::int64_t gate_row;
  const T* p;  // diagonal peepholes [3,H], or nullptr
  const T* h_prev;
  const T* c_prev;
  T* h_cur;
  T* c_cur;
  T* y;  // y + t*H; row b at y + b*time*H (unused with a projection)
  T* c_new;  // [B,H] of step t (training with zoneout), or nullptr
  T* m;      // with a projection: m_t [B,H], the cell output that h_t = m_t W_hr projects; else nullptr
  const std::uint8_t* mask;
  std::int64_t t, time, B, H;
  bool zero_output;
  ZoneoutArgs zoneout;
};

// The fused elementwise work of step t for element (b, j) (docs/DESIGN.md §1; pointwise_cpu.hpp's cell_forward_row
// then output_forward_row). kPart 0: both halves; 1: the cell half (c̃_t into c_cur), 2: the output half,
// for Peephole::Full with the output gate on c_t, whose c_t P_o GEMM runs between them.
template <class T, bool kDiagonal, bool kCurrent, bool kZoneout, int kPart>
__global__ void forward_step_kernel(const StepArgs<T> a) {
  const std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (k >= a.B * a.H) return;
  const std::int64_t b = k / a.H, j = k % a.H, H = a.H, s = b * H + j;
  T* g = a.gates + b * a.gate_row;
  const T c_prev = a.c_prev[s];
  const bool valid = a.mask == nullptr || a.mask[b * a.time + a.t] != 0;
  if (!valid) {  // the state is carried; y is the carried h or 0
    if (kPart != 2) a.c_cur[s] = c_prev;
    if (kPart == 1) return;
    if (a.m) {  // no m_t (nothing for ∂L/∂W_hr to gather); h and y: project_emit_kernel
      a.m[s] = T(0);
      return;
    }
    const T h_prev = a.h_prev[s];
    a.h_cur[s] = h_prev;
    a.y[b * a.time * H + j] = a.zero_output ? T(0) : h_prev;
    if (a.c_new) a.c_new[s] = c_prev;
    return;
  }
  T c;
  if constexpr (kPart != 2) {
    // i, f peek at c_{t-1}; c̃_t = f ⊙ c_{t-1} + i ⊙ g
    T zi = g[j], zf = g[H + j];
    if constexpr (kDiagonal) {
      zi += a.p[j] * c_prev;
      zf += a.p[H + j] * c_prev;
    }
    const T i = sigmoid(zi), f = sigmoid(zf), gg = tanh_(g[2 * H + j]);
    g[j] = i, g[H + j] = f, g[2 * H + j] = gg;
    c = f * c_prev + i * gg;
    if constexpr (kPart == 1) {
      a.c_cur[s] = c;
      return;
    }
  } else {
    c = a.c_cur[s];
  }
  // o = σ(z_o + p_o ⊙ c_src), h̃ = o ⊙ tanh(c̃); zoneout mixes h and c with the previous ones
  T zo = g[3 * H + j];
  if constexpr (kDiagonal) zo += a.p[2 * H + j] * (kCurrent ? c : c_prev);
  const T o = sigmoid(zo);
  g[3 * H + j] = o;
  T h = o * tanh_(c);
  if constexpr (kZoneout) {
    T d_h, d_c;
    zoneout_weights(a.zoneout, a.t, a.B, H, b, j, d_h, d_c);
    if (a.c_new) a.c_new[s] = c;
    h = d_h * a.h_prev[s] + (T(1) - d_h) * h;
    c = d_c * c_prev + (T(1) - d_c) * c;
  }
  a.c_cur[s] = c;
  if (a.m) {  // zoneout is not defined with a projection: h is m_t here
    a.m[s] = h;
    return;
  }
  a.h_cur[s] = h;
  a.y[b * a.time * H + j] = h;
}

// With a projection, after h_t = m_t W_hr for every row: a masked row carries h_{t-1}; y_t is h_t (or 0 at a
// masked step with zero_output_for_mask). Over B*Ho elements.
template <class T>
__global__ void project_emit_kernel(const T* h_prev, T* h_cur, T* y, const std::uint8_t* mask, std::int64_t t,
                                    std::int64_t time, std::int64_t B, std::int64_t Ho, bool zero_output) {
  const std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (k >= B * Ho) return;
  const std::int64_t b = k / Ho, j = k % Ho;
  T* y_at = y + b * time * Ho + j;
  if (mask == nullptr || mask[b * time + t] != 0) {
    *y_at = h_cur[k];
    return;
  }
  h_cur[k] = h_prev[k];
  *y_at = zero_output ? T(0) : h_prev[k];
}

template <class T>
void launch_step(bool diagonal, bool current, bool zoneout, int part, const StepArgs<T>& args, cudaStream_t stream) {
  const unsigned blocks = unsigned((args.B * args.H + kThreads - 1) / kThreads);
  dispatch_step(diagonal, current, zoneout, part, [&](auto d, auto c, auto z, auto p) {
    forward_step_kernel<T, decltype(d)::value, decltype(c)::value, decltype(z)::value, decltype(p)::value>
        <<<blocks, kThreads, 0, stream>>>(args);
  });
  LSTM_NATIVE_CUDA_LAUNCHED();
}

// rows [count, G] += b (broadcast over rows)
template <class T>
__global__ void add_bias_kernel(T* rows, std::int64_t count, std::int64_t G, const T* b) {
  const std::int64_t n = count * G;
  for (std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; k < n;
       k += std::int64_t(gridDim.x) * blockDim.x)
    rows[k] += b[k % G];
}

// c_new: in training with zoneout, where step t's c̃_t goes (c_new + t*B*H; the workspace's), else nullptr.
template <class T>
void run_steps(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
               const SequenceOutput<T>& out, SequenceDims dims, const ForwardBuffers<T>& buf, T* c_new,
               const Regularization& reg, bool training, const T* U, const T* recurrent_mask, cudaStream_t stream) {
  const std::int64_t B = dims.batch, time = dims.time, H = config.hidden_size, G = 4 * H, Ho = output_size(config);
  const bool projected = config.projection_size > 0;
  cublasHandle_t handle = cublas_handle(stream);
  const bool diagonal = config.peephole == Peephole::Diagonal, full = config.peephole == Peephole::Full;
  const bool current = config.output_peephole_source == OutputPeepholeSource::Current;
  const bool split = full && current;
  const T* p = weights.peephole.data;
  Scratch<T> h_dropped(recurrent_mask ? B * Ho : 0, stream);
  Scratch<T> m_scratch(projected && buf.m == nullptr ? B * H : 0, stream);  // inference's m_t
  copy_or_zero(buf.h, in.h0.data, B * Ho, stream);
  copy_or_zero(buf.c, in.c0.data, B * H, stream);
  for (std::int64_t t = 0; t < time; ++t) {
    T* gates = buf.gates + t * buf.gate_step;
    const T* h_prev = buf.h + buf.slot(t) * B * Ho;
    const T* c_prev = buf.c + buf.slot(t) * B * H;
    T* h_cur = buf.h + buf.slot(t + 1) * B * Ho;
    T* c_cur = buf.c + buf.slot(t + 1) * B * H;
    const T* h_in = h_prev;
    if (recurrent_mask) {  // (h_{t-1} ⊙ m_h) U
      multiply(h_prev, recurrent_mask, h_dropped.get(), B * Ho, stream);
      h_in = h_dropped.get();
    }
    gemm(handle, false, false, B, G, Ho, T(1), h_in, Ho, U, G, T(1), gates, buf.gate_row);  // z_t += h_{t-1} U
    if (full) {  // z_k += c_{t-1} P_k for the gates that peek at c_{t-1}
      gemm(handle, false, false, B, H, H, T(1), c_prev, H, p, H, T(1), gates, buf.gate_row);
      gemm(handle, false, false, B, H, H, T(1), c_prev, H, p + H * H, H, T(1), gates + H, buf.gate_row);
      if (!current) gemm(handle, false, false, B, H, H, T(1), c_prev, H, p + 2 * H * H, H, T(1), gates + 3 * H, buf.gate_row);
    }
    const StepArgs<T> args{gates, buf.gate_row, diagonal ? p : nullptr, h_prev, c_prev, h_cur, c_cur,
                           out.y.data + t * H, c_new ? c_new + t * B * H : nullptr,
                           projected ? (buf.m ? buf.m + t * B * H : m_scratch.get()) : nullptr, in.mask.data, t,
                           time, B, H, config.zero_output_for_mask, zoneout_args(reg, training)};
    if (split) {
      launch_step(false, true, reg.zoneout(), 1, args, stream);
      // z_o += c̃_t P_o (rows of masked steps hold the carried c: their z_o is never used)
      gemm(handle, false, false, B, H, H, T(1), c_cur, H, p + 2 * H * H, H, T(1), gates + 3 * H, buf.gate_row);
      launch_step(false, true, reg.zoneout(), 2, args, stream);
    } else {
      launch_step(diagonal, current, reg.zoneout(), 0, args, stream);
    }
    if (projected) {  // h_t = m_t W_hr, then the masked rows and y
      gemm(handle, false, false, B, Ho, H, T(1), args.m, H, weights.projection.data, Ho, T(0), h_cur, Ho);
      project_emit_kernel<T><<<unsigned((B * Ho + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
          h_prev, h_cur, out.y.data + t * Ho, in.mask.data, t, time, B, Ho, config.zero_output_for_mask);
      LSTM_NATIVE_CUDA_LAUNCHED();
    }
  }
  if (!out.h_n.empty())
    LSTM_NATIVE_CUDA_CHECK(cudaMemcpyAsync(out.h_n.data, buf.h + buf.slot(time) * B * Ho, sizeof(T) * B * Ho,
                                           cudaMemcpyDeviceToDevice, stream));
  if (!out.c_n.empty())
    LSTM_NATIVE_CUDA_CHECK(cudaMemcpyAsync(out.c_n.data, buf.c + buf.slot(time) * B * H, sizeof(T) * B * H,
                                           cudaMemcpyDeviceToDevice, stream));
}

// gates [rows,4H] = x [rows,I] W + b
template <class T>
void input_projection(const T* x, std::int64_t rows, const CellConfig& config, const Weights<T>& weights, T* gates,
                      cudaStream_t stream) {
  const std::int64_t I = config.input_size, G = 4 * config.hidden_size;
  gemm(cublas_handle(stream), false, false, rows, G, I, T(1), x, I, weights.W.data, G, T(0), gates, G);
  if (!weights.b.empty()) {
    add_bias_kernel<T><<<blocks_for(rows * G), kThreads, 0, stream>>>(gates, rows, G, weights.b.data);
    LSTM_NATIVE_CUDA_LAUNCHED();
  }
}

}  // namespace
}  // namespace detail

template <class T>
void forward_inference(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                       const SequenceOutput<T>& out, const Regularization& regularization, void* stream_ptr) {
  using namespace detail;
  validate(config, regularization);
  const SequenceDims dims = validate_forward(config, weights, in, out);
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const std::int64_t B = dims.batch, time = dims.time, H = config.hidden_size;
  // Batch-first gates: row b of step t at (b*T + t)*4H, so x W needs no transpose.
  Scratch<T> gates(B * time * 4 * H, stream);
  input_projection(in.x.data, B * time, config, weights, gates.get(), stream);
  if (persistent_forward_inference(config, weights, in, out, dims, static_cast<const T*>(gates.get()), regularization,
                                   stream))
    return;
  Scratch<T> h(2 * B * output_size(config), stream), c(2 * B * H, stream);
  const ForwardBuffers<T> buf{gates.get(), 4 * H, time * 4 * H, h.get(), c.get(), nullptr, true};
  run_steps<T>(config, weights, in, out, dims, buf, nullptr, regularization, false, weights.U.data, nullptr, stream);
}

template <class T>
void forward_training(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                      const SequenceOutput<T>& out, const Workspace<T>& workspace, const Regularization& regularization,
                      void* stream_ptr) {
  using namespace detail;
  validate(config, regularization);
  const SequenceDims dims = validate_forward(config, weights, in, out);
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const std::int64_t B = dims.batch, time = dims.time, H = config.hidden_size, I = config.input_size;
  const WorkspaceLayout<T> ws = workspace_layout(config, B, time, regularization, workspace);
  const CallMasks<T> masks(regularization, config, B, weights.U.data, stream);
  // x_tm [T,B,I] = x transposed to time-major, ⊙ the input dropout mask m_x [B,I]
  swap_leading_axes(in.x.data, B, time, I, ws.x_tm, static_cast<const T*>(masks.input.get()), 0, stream);
  input_projection(static_cast<const T*>(ws.x_tm), time * B, config, weights, ws.gates, stream);
  const ForwardBuffers<T> buf{ws.gates, B * 4 * H, 4 * H, ws.h, ws.c, ws.m, false};
  run_steps<T>(config, weights, in, out, dims, buf, ws.c_new, regularization, true,
               masks.recurrent_kernel(weights.U.data), static_cast<const T*>(masks.recurrent.get()), stream);
}

#define LSTM_NATIVE_INSTANTIATE_CUDA_FORWARD(T)                                                                    \
  template void forward_inference<T>(const CellConfig&, const Weights<T>&, const SequenceInput<T>&,               \
                                     const SequenceOutput<T>&, const Regularization&, void*);                      \
  template void forward_training<T>(const CellConfig&, const Weights<T>&, const SequenceInput<T>&,                \
                                    const SequenceOutput<T>&, const Workspace<T>&, const Regularization&, void*);
LSTM_NATIVE_INSTANTIATE_CUDA_FORWARD(float)
LSTM_NATIVE_INSTANTIATE_CUDA_FORWARD(double)

}  // namespace lstm_native::cuda
