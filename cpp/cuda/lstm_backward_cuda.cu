// Backward pass on the GPU, the CPU's algorithm (cpp/src/lstm_backward_cpu.cpp): the steps in reverse, each
// one fused elementwise kernel (two around a GEMM for a full output peephole on c_t) plus one cuBLAS GEMM
// dz_t Uᵀ for ∂L/∂h_{t-1} and a small kernel for the masks; then dW, dU, db, the peephole gradients and dx
// as large GEMMs (and one reduction kernel) over all steps at once.
// With a projection (P >= 1): per step also dh_t (a small kernel) and ∂L/∂m_t = dh_t W_hrᵀ (a GEMM), and
// ∂L/∂W_hr = Σ_t m_tᵀ dh_t at the end. Not done yet: CUDA graphs (or a persistent kernel) for the per-step loop.
#include "common_cuda.cuh"

namespace lstm_native::cuda {
namespace detail {
namespace {

template <class T>
struct StepArgs {
  T* gates;          // [B,4H] of step t: activated gates in, dz out
  const T* p;        // diagonal peepholes [3,H], or nullptr
  const T* c_prev;   // c_{t-1} [B,H]
  const T* c_cur;    // c_t [B,H] (with zoneout the mixed one; c̃_t is in c_new)
  const T* c_new;    // c̃_t [B,H] with zoneout, else nullptr
  const T* dh;       // ∂L/∂h_t from step t+1 [B,H]; with a projection ∂L/∂m_t (dy is then already in it)
  const T* dy;       // dy + t*H (row b at b*time*H), or nullptr; nullptr with a projection
  T* dh_total;       // out: ∂L/∂h_t [B,H]; nullptr with a projection (projected_dh_kernel wrote it)
  T* dc;             // in: ∂L/∂c_t, out: ∂L/∂c_{t-1} [B,H]
  T* carry_h;        // zoneout: d_h ⊙ dh_t [B,H]
  T* carry_c;        // zoneout: d_c ⊙ dc_t [B,H] (kept between the split pass's halves)
  const std::uint8_t* mask;
  std::int64_t t, time, B, H;
  bool zero_output;
  ZoneoutArgs zoneout;
};

// The fused elementwise work of step t for element (b, j), pointwise_cpu.hpp's output_backward_row then
// cell_backward_row. kPart 0: both halves; 1: the output half (dz_o, ∂L/∂c̃_t into dc); 2: the cell half,
// for Peephole::Full with the output gate on c_t, whose dz_o P_oᵀ GEMM runs between them.
template <class T, bool kDiagonal, bool kCurrent, bool kZoneout, int kPart>
__global__ void backward_step_kernel(const StepArgs<T> a) {
  const std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (k >= a.B * a.H) return;
  const std::int64_t b = k / a.H, j = k % a.H, H = a.H, s = b * H + j;
  T* g = a.gates + b * 4 * H;
  const bool valid = a.mask == nullptr || a.mask[b * a.time + a.t] != 0;
  T dc, carry_c = T(0);
  if constexpr (kPart != 2) {
    // dh_total = ∂L/∂h_t: from step t+1 plus dy_t where the output is the state
    T dh = a.dh[s];
    if (a.dy && (valid || !a.zero_output)) dh += a.dy[b * a.time * H + j];
    if (a.dh_total) a.dh_total[s] = dh;
    if (!valid) {  // a carried state has no dz; dc passes through unchanged
      g[j] = T(0), g[H + j] = T(0), g[2 * H + j] = T(0), g[3 * H + j] = T(0);
      return;
    }
    dc = a.dc[s];
    T c_new;
    if constexpr (kZoneout) {
      T d_h, d_c;
      zoneout_weights(a.zoneout, a.t, a.B, H, b, j, d_h, d_c);
      c_new = a.c_new[s];
      a.carry_h[s] = d_h * dh;
      carry_c = d_c * dc;
      dh = (T(1) - d_h) * dh;
      dc = (T(1) - d_c) * dc;
    } else {
      c_new = a.c_cur[s];
    }
    const T o = g[3 * H + j], tanh_c = tanh_(c_new);
    dc += dh * o * (T(1) - tanh_c * tanh_c);
    const T dz_o = dh * tanh_c * o * (T(1) - o);
    g[3 * H + j] = dz_o;
    if constexpr (kDiagonal && kCurrent) dc += dz_o * a.p[2 * H + j];
    if constexpr (kPart == 1) {
      a.dc[s] = dc;
      if constexpr (kZoneout) a.carry_c[s] = carry_c;
      return;
    }
  } else {
    if (!valid) return;
    dc = a.dc[s];
    if constexpr (kZoneout) carry_c = a.carry_c[s];
  }
  // dz_i = dc ⊙ g ⊙ i(1-i), dz_f = dc ⊙ c_{t-1} ⊙ f(1-f), dz_g = dc ⊙ i ⊙ (1-g²); dc_{t-1} = dc ⊙ f + ...
  const T i = g[j], f = g[H + j], gg = g[2 * H + j];
  const T dz_i = dc * gg * i * (T(1) - i), dz_g = dc * i * (T(1) - gg * gg);
  const T dz_f = dc * a.c_prev[s] * f * (T(1) - f);
  g[j] = dz_i, g[H + j] = dz_f, g[2 * H + j] = dz_g;
  T dc_prev = dc * f;
  if constexpr (kDiagonal) dc_prev += dz_i * a.p[j] + dz_f * a.p[H + j];
  if constexpr (kDiagonal && !kCurrent) dc_prev += g[3 * H + j] * a.p[2 * H + j];
  if constexpr (kZoneout) dc_prev += carry_c;
  a.dc[s] = dc_prev;
}

template <class T>
void launch_step(bool diagonal, bool current, bool zoneout, int part, const StepArgs<T>& args, cudaStream_t stream) {
  const unsigned blocks = unsigned((args.B * args.H + kThreads - 1) / kThreads);
  dispatch_step(diagonal, current, zoneout, part, [&](auto d, auto c, auto z, auto p) {
    backward_step_kernel<T, decltype(d)::value, decltype(c)::value, decltype(z)::value, decltype(p)::value>
        <<<blocks, kThreads, 0, stream>>>(args);
  });
  LSTM_NATIVE_CUDA_LAUNCHED();
}

// With a projection: dh_total = ∂L/∂h_t = dh (from step t+1) + dy_t where the output is the state, over B*Ho.
template <class T>
__global__ void projected_dh_kernel(const T* dh, const T* dy, T* dh_total, const std::uint8_t* mask, std::int64_t t,
                                    std::int64_t time, std::int64_t B, std::int64_t Ho, bool zero_output) {
  const std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (k >= B * Ho) return;
  const std::int64_t b = k / Ho, j = k % Ho;
  T v = dh[k];
  if (dy && (mask == nullptr || mask[b * time + t] != 0 || !zero_output)) v += dy[(b * time + t) * Ho + j];
  dh_total[k] = v;
}

// After dh = dz_t Uᵀ: ∂L/∂h_{t-1} = dh ⊙ m_h [+ the zoneout carry]; a masked row carried h_{t-1} unchanged,
// so its gradient is dh_total.
template <class T>
__global__ void recurrent_gradient_kernel(T* dh, const T* dh_total, const T* recurrent_mask, const T* carry_h,
                                          const std::uint8_t* mask, std::int64_t t, std::int64_t time, std::int64_t B,
                                          std::int64_t H) {  // H: the width of h (Ho)
  const std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (k >= B * H) return;
  const std::int64_t b = k / H;
  if (mask && mask[b * time + t] == 0) {
    dh[k] = dh_total[k];
    return;
  }
  T v = dh[k];
  if (recurrent_mask) v *= recurrent_mask[k];
  if (carry_h) v += carry_h[k];
  dh[k] = v;
}

// products [rows,3H]: row r, block k (i, f, o) = dZ[r, gate(k)*H + j] ⊙ C_k[r, j], C_k = c_{t-1} for i and f and
// the c the output gate peeks at for o; the diagonal peephole gradients are their column sums.
template <class T>
__global__ void peephole_products_kernel(const T* dZ, const T* c_prev, const T* c_out, std::int64_t rows,
                                         std::int64_t H, T* products) {
  const std::int64_t n = rows * 3 * H;
  for (std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; k < n;
       k += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = k / (3 * H), which = (k / H) % 3, j = k % H, gate = which == 2 ? 3 : which;
    products[k] = dZ[r * 4 * H + gate * H + j] * (which == 2 ? c_out : c_prev)[r * H + j];
  }
}

template <class T>
__global__ void fill_kernel(T* out, std::int64_t count, T value) {
  for (std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; k < count;
       k += std::int64_t(gridDim.x) * blockDim.x)
    out[k] = value;
}

// The gradients that are sums over all steps (lstm_backward_cpu.cpp's sequence_gradients).
template <class T>
void sequence_gradients(const CellConfig& config, const Weights<T>& weights, std::int64_t B, std::int64_t time,
                        const WorkspaceLayout<T>& ws, const CallMasks<T>& masks, const T* dh_all,
                        const Gradients<T>& grads, cudaStream_t stream) {
  const std::int64_t I = config.input_size, H = config.hidden_size, G = 4 * H, rows = time * B;
  const std::int64_t Ho = output_size(config);
  cublasHandle_t handle = cublas_handle(stream);
  if (masks.recurrent.get()) apply_sequence_mask(ws.h, rows, B, Ho, static_cast<const T*>(masks.recurrent.get()), stream);
  const T* dZ = ws.gates;
  const T* C_prev = ws.c;
  const bool current = config.output_peephole_source == OutputPeepholeSource::Current;
  const T* C_out = current ? (ws.c_new ? ws.c_new : ws.c + B * H) : ws.c;
  if (!grads.dW.empty()) gemm(handle, true, false, I, G, rows, T(1), ws.x_tm, I, dZ, G, T(0), grads.dW.data, G);
  if (!grads.dU.empty()) {
    gemm(handle, true, false, Ho, G, rows, T(1), ws.h, Ho, dZ, G, T(0), grads.dU.data, G);
    if (masks.weight.get()) multiply(static_cast<const T*>(grads.dU.data), static_cast<const T*>(masks.weight.get()),
                                     grads.dU.data, Ho * G, stream);
  }
  // Column sums over all rows as GEMMs with a row of ones: db [1,4H] = 1ᵀ dZ, dp [1,3H] = 1ᵀ products.
  const bool diagonal_dp = !grads.dpeephole.empty() && config.peephole == Peephole::Diagonal;
  Scratch<T> ones(!grads.db.empty() || diagonal_dp ? rows : 0, stream);
  if (ones.get()) {
    fill_kernel<T><<<blocks_for(rows), kThreads, 0, stream>>>(ones.get(), rows, T(1));
    LSTM_NATIVE_CUDA_LAUNCHED();
  }
  if (!grads.db.empty()) gemm(handle, false, false, 1, G, rows, T(1), ones.get(), rows, dZ, G, T(0), grads.db.data, G);
  if (!grads.dpeephole.empty()) {
    if (diagonal_dp) {
      Scratch<T> products(rows * 3 * H, stream);
      peephole_products_kernel<T><<<blocks_for(rows * 3 * H), kThreads, 0, stream>>>(dZ, C_prev, C_out, rows, H,
                                                                                     products.get());
      LSTM_NATIVE_CUDA_LAUNCHED();
      gemm(handle, false, false, 1, 3 * H, rows, T(1), ones.get(), rows, products.get(), 3 * H, T(0),
           grads.dpeephole.data, 3 * H);
    } else {  // dP_k = C_kᵀ dZ_k
      const std::int64_t gate[3] = {0, 1, 3};
      for (int k = 0; k < 3; ++k)
        gemm(handle, true, false, H, H, rows, T(1), k == 2 ? C_out : C_prev, H, dZ + gate[k] * H, G, T(0),
             grads.dpeephole.data + k * H * H, H);
    }
  }
  if (!grads.dprojection.empty())  // dW_hr = Σ_t m_tᵀ dh_t
    gemm(handle, true, false, H, Ho, rows, T(1), ws.m, H, dh_all, Ho, T(0), grads.dprojection.data, Ho);
  if (!grads.dx.empty()) {  // dX_tm = dZ Wᵀ into the spent x_tm, ⊙ m_x, to batch-first
    gemm(handle, false, true, rows, I, G, T(1), dZ, G, weights.W.data, G, T(0), ws.x_tm, I);
    swap_leading_axes(static_cast<const T*>(ws.x_tm), time, B, I, grads.dx.data,
                      static_cast<const T*>(masks.input.get()), 1, stream);
  }
}

}  // namespace
}  // namespace detail

template <class T>
void backward(const CellConfig& config, const Weights<T>& weights, Tensor<const std::uint8_t> mask, std::int64_t batch,
              std::int64_t time, const OutputGradients<T>& grad_out, const Workspace<T>& workspace,
              const Gradients<T>& grads, const Regularization& regularization, void* stream_ptr) {
  using namespace detail;
  const WorkspaceLayout<T> ws = workspace_layout(config, batch, time, regularization, workspace);
  validate_backward(config, weights, mask, batch, time, grad_out, grads);
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  cublasHandle_t handle = cublas_handle(stream);
  const std::int64_t B = batch, H = config.hidden_size, G = 4 * H, Ho = output_size(config);
  const bool projected = config.projection_size > 0;
  const CallMasks<T> masks(regularization, config, B, weights.U.data, stream);
  const T* U = masks.recurrent_kernel(weights.U.data);
  const T* p = weights.peephole.data;
  const bool diagonal = config.peephole == Peephole::Diagonal, full = config.peephole == Peephole::Full;
  const bool current = config.output_peephole_source == OutputPeepholeSource::Current;
  const bool split = full && current, zoneout = regularization.zoneout();
  // With a projection dh_all [T,B,Ho] keeps every step's ∂L/∂h_t (for ∂L/∂W_hr) and dm holds ∂L/∂m_t.
  Scratch<T> dh(B * Ho, stream), dc(B * H, stream), dh_total(projected ? 0 : B * H, stream);
  Scratch<T> dh_all(projected ? time * B * Ho : 0, stream), dm(projected ? B * H : 0, stream);
  Scratch<T> carry_h(zoneout ? B * H : 0, stream), carry_c(zoneout ? B * H : 0, stream);
  copy_or_zero(dh.get(), grad_out.dh_n.data, B * Ho, stream);
  copy_or_zero(dc.get(), grad_out.dc_n.data, B * H, stream);
  for (std::int64_t t = time - 1; t >= 0; --t) {
    T* gates = ws.gates + t * B * G;
    T* dh_t = projected ? dh_all.get() + t * B * Ho : dh_total.get();  // ∂L/∂h_t of the step
    if (projected) {  // dh_t = dh + dy_t, then ∂L/∂m_t = dh_t W_hrᵀ
      projected_dh_kernel<T><<<unsigned((B * Ho + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
          dh.get(), grad_out.dy.data, dh_t, mask.data, t, time, B, Ho, config.zero_output_for_mask);
      LSTM_NATIVE_CUDA_LAUNCHED();
      gemm(handle, false, true, B, H, Ho, T(1), dh_t, Ho, weights.projection.data, Ho, T(0), dm.get(), H);
    }
    const StepArgs<T> args{gates, diagonal ? p : nullptr, ws.c + t * B * H, ws.c + (t + 1) * B * H,
                           ws.c_new ? ws.c_new + t * B * H : nullptr, projected ? dm.get() : dh.get(),
                           grad_out.dy.data && !projected ? grad_out.dy.data + t * H : nullptr,
                           projected ? nullptr : dh_total.get(), dc.get(), carry_h.get(), carry_c.get(), mask.data, t,
                           time, B, H, config.zero_output_for_mask, zoneout_args(regularization, true)};
    if (split) {
      launch_step(false, true, zoneout, 1, args, stream);
      gemm(handle, false, true, B, H, H, T(1), gates + 3 * H, G, p + 2 * H * H, H, T(1), dc.get(), H);  // dc += dz_o P_oᵀ
      launch_step(false, true, zoneout, 2, args, stream);
    } else {
      launch_step(diagonal, current, zoneout, 0, args, stream);
    }
    if (full) {  // ∂L/∂c_{t-1} += dz_k P_kᵀ for the gates that peek at c_{t-1}
      gemm(handle, false, true, B, H, H, T(1), gates, G, p, H, T(1), dc.get(), H);
      gemm(handle, false, true, B, H, H, T(1), gates + H, G, p + H * H, H, T(1), dc.get(), H);
      if (!current) gemm(handle, false, true, B, H, H, T(1), gates + 3 * H, G, p + 2 * H * H, H, T(1), dc.get(), H);
    }
    gemm(handle, false, true, B, Ho, G, T(1), gates, G, U, G, T(0), dh.get(), Ho);  // dh_{t-1} = dz_t Uᵀ
    if (mask.data || masks.recurrent.get() || zoneout) {  // else dz_t Uᵀ is ∂L/∂h_{t-1} already
      recurrent_gradient_kernel<T><<<unsigned((B * Ho + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
          dh.get(), dh_t, static_cast<const T*>(masks.recurrent.get()), carry_h.get(), mask.data, t, time, B, Ho);
      LSTM_NATIVE_CUDA_LAUNCHED();
    }
  }
  if (!grads.dh0.empty())
    LSTM_NATIVE_CUDA_CHECK(cudaMemcpyAsync(grads.dh0.data, dh.get(), sizeof(T) * B * Ho, cudaMemcpyDeviceToDevice, stream));
  if (!grads.dc0.empty())
    LSTM_NATIVE_CUDA_CHECK(cudaMemcpyAsync(grads.dc0.data, dc.get(), sizeof(T) * B * H, cudaMemcpyDeviceToDevice, stream));
  sequence_gradients(config, weights, B, time, ws, masks, static_cast<const T*>(dh_all.get()), grads, stream);
}

template void backward<float>(const CellConfig&, const Weights<float>&, Tensor<const std::uint8_t>, std::int64_t,
                              std::int64_t, const OutputGradients<float>&, const Workspace<float>&,
                              const Gradients<float>&, const Regularization&, void*);
template void backward<double>(const CellConfig&, const Weights<double>&, Tensor<const std::uint8_t>, std::int64_t,
                               std::int64_t, const OutputGradients<double>&, const Workspace<double>&,
                               const Gradients<double>&, const Regularization&, void*);

}  // namespace lstm_native::cuda
