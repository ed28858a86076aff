// Backward pass on the CPU (DESIGN.md §2): the steps in reverse, each one fused elementwise pass (two
// around a GEMM for full peepholes) plus one GEMM dz_t Uᵀ for ∂L/∂h_{t-1}; then dW, dU, db, the peephole
// gradients and dx as large reductions over all steps at once.
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "lstm_native/backward.hpp"
#include "pointwise_cpu.hpp"
#include "sequence_cpu.hpp"

namespace lstm_native {
namespace detail {
namespace {

template <class T>
void validate_backward(const CellConfig& config, const Weights<T>& weights, const Tensor<const std::uint8_t>& mask,
                       std::int64_t B, std::int64_t time, const OutputGradients<T>& grad_out,
                       const Gradients<T>& grads) {
  validate(config, weights);
  const std::int64_t I = config.input_size, H = config.hidden_size;
  require_shape_or_empty("mask", mask, {B, time});
  require_shape_or_empty("dy", grad_out.dy, {B, time, H});
  require_shape_or_empty("dh_n", grad_out.dh_n, {B, H});
  require_shape_or_empty("dc_n", grad_out.dc_n, {B, H});
  require_shape_or_empty("dx", grads.dx, {B, time, I});
  require_shape_or_empty("dh0", grads.dh0, {B, H});
  require_shape_or_empty("dc0", grads.dc0, {B, H});
  require_shape_or_empty("dW", grads.dW, {I, 4 * H});
  require_shape_or_empty("dU", grads.dU, {H, 4 * H});
  require_shape_or_empty("db", grads.db, {4 * H});
  if (!grads.dpeephole.empty() && grads.dpeephole.shape != peephole_shape(config))
    throw std::invalid_argument("dpeephole: expected shape " + shape_to_string(peephole_shape(config)) + ", got " +
                                shape_to_string(grads.dpeephole.shape));
}

// Reverse-time sweep: turns the stored gates into dz for every step and returns ∂L/∂h_0, ∂L/∂c_0 in dh, dc.
template <class T, Peephole kPeephole, OutputPeepholeSource kSource>
void backward_steps(const CellConfig& config, const Weights<T>& weights, const std::uint8_t* mask, std::int64_t B,
                    std::int64_t time, const OutputGradients<T>& grad_out, const WorkspaceLayout<T>& ws,
                    std::vector<T>& dh, std::vector<T>& dc) {
  constexpr bool kDiagonal = kPeephole == Peephole::Diagonal;
  constexpr bool kFull = kPeephole == Peephole::Full;
  constexpr bool kCurrent = kSource == OutputPeepholeSource::Current;
  constexpr bool kSplitPass = kFull && kCurrent;
  const std::int64_t H = config.hidden_size, G = 4 * H, BH = B * H;
  const T* p = weights.peephole.data;
  const T* dy = grad_out.dy.data;
  auto peephole_matrix = [&](std::int64_t k) { return matrix(p + k * H * H, H, H); };
  // dh_total: ∂L/∂h_t of the step at hand (carried from t+1 plus dy_t); dh: ∂L/∂h_{t-1} coming out of it.
  std::vector<T> dh_total(BH), scratch(BH);
  if (!grad_out.dh_n.empty()) std::copy(grad_out.dh_n.data, grad_out.dh_n.data + BH, dh.begin());
  if (!grad_out.dc_n.empty()) std::copy(grad_out.dc_n.data, grad_out.dc_n.data + BH, dc.begin());

  for (std::int64_t t = time - 1; t >= 0; --t) {
    T* gates = ws.gates + t * B * G;
    const T* c_prev = ws.c + t * BH;
    const T* c_cur = ws.c + (t + 1) * BH;
    auto dZ = matrix(gates, B, G);
    auto output = [&](std::int64_t b) {
      const bool valid = valid_step(mask, b, t, time);
      T* dh_row = dh_total.data() + b * H;
      const T* dy_row = dy + (b * time + t) * H;
      const bool output_is_state = valid || !config.zero_output_for_mask;
      for (std::int64_t j = 0; j < H; ++j)
        dh_row[j] = dh[b * H + j] + (dy != nullptr && output_is_state ? dy_row[j] : T(0));
      if (valid)
        output_backward_row<T, kDiagonal && kCurrent>(gates + b * G, c_cur + b * H, dh_row, dc.data() + b * H, p,
                                                      scratch.data() + b * H, H);
      else
        std::fill(gates + b * G, gates + (b + 1) * G, T(0));  // a carried state has no dz
    };
    auto cell = [&](std::int64_t b) {
      if (valid_step(mask, b, t, time))
        cell_backward_row<T, kDiagonal, kDiagonal && !kCurrent>(gates + b * G, c_prev + b * H, dc.data() + b * H, p,
                                                                scratch.data() + b * H, H);
    };
    if constexpr (kSplitPass) {
      parallel_rows(B, output);
      matrix(dc.data(), B, H).noalias() += dZ.rightCols(H) * peephole_matrix(2).transpose();
      parallel_rows(B, cell);
    } else {
      parallel_rows(B, [&](std::int64_t b) {
        output(b);
        cell(b);
      });
    }
    if constexpr (kFull) {  // ∂L/∂c_{t-1} += dz_k P_kᵀ for the gates that peek at c_{t-1}
      auto dC = matrix(dc.data(), B, H);
      dC.noalias() += dZ.leftCols(H) * peephole_matrix(0).transpose();
      dC.noalias() += dZ.middleCols(H, H) * peephole_matrix(1).transpose();
      if constexpr (!kCurrent) dC.noalias() += dZ.rightCols(H) * peephole_matrix(2).transpose();
    }
    // ∂L/∂h_{t-1} = dz_t Uᵀ; a masked row carried h_{t-1} unchanged, so its gradient passes straight through.
    matrix(dh.data(), B, H).noalias() = dZ * matrix(weights.U.data, H, G).transpose();
    if (mask != nullptr)
      parallel_rows(B, [&](std::int64_t b) {
        if (!valid_step(mask, b, t, time))
          std::copy(dh_total.data() + b * H, dh_total.data() + (b + 1) * H, dh.data() + b * H);
      });
  }
}

template <class T>
void dispatch_backward_steps(const CellConfig& config, const Weights<T>& weights, const std::uint8_t* mask,
                             std::int64_t B, std::int64_t time, const OutputGradients<T>& grad_out,
                             const WorkspaceLayout<T>& ws, std::vector<T>& dh, std::vector<T>& dc) {
  const bool current = config.output_peephole_source == OutputPeepholeSource::Current;
  constexpr auto kCur = OutputPeepholeSource::Current;
  constexpr auto kPrev = OutputPeepholeSource::Previous;
  switch (config.peephole) {
    case Peephole::None:
      return backward_steps<T, Peephole::None, kCur>(config, weights, mask, B, time, grad_out, ws, dh, dc);
    case Peephole::Diagonal:
      return current ? backward_steps<T, Peephole::Diagonal, kCur>(config, weights, mask, B, time, grad_out, ws, dh, dc)
                     : backward_steps<T, Peephole::Diagonal, kPrev>(config, weights, mask, B, time, grad_out, ws, dh, dc);
    case Peephole::Full:
      return current ? backward_steps<T, Peephole::Full, kCur>(config, weights, mask, B, time, grad_out, ws, dh, dc)
                     : backward_steps<T, Peephole::Full, kPrev>(config, weights, mask, B, time, grad_out, ws, dh, dc);
  }
}

// The gradients that are sums over all steps, from dz of every step (rows t*B + b of dZ [T*B,4H]) and the
// stored states: dW = x_tmᵀ dZ, dU = h_prevᵀ dZ, db = Σ dZ, dp_k = Σ dz_k ⊙ c (diagonal) or cᵀ dz_k (full),
// and dx = dZ Wᵀ, computed time-major into the spent x_tm buffer and transposed to batch-first.
template <class T>
void sequence_gradients(const CellConfig& config, const Weights<T>& weights, std::int64_t B, std::int64_t time,
                        const WorkspaceLayout<T>& ws, const Gradients<T>& grads) {
  const std::int64_t I = config.input_size, H = config.hidden_size, G = 4 * H, rows = time * B;
  const auto dZ = matrix(static_cast<const T*>(ws.gates), rows, G);
  const auto X_tm = matrix(static_cast<const T*>(ws.x_tm), rows, I);
  const auto H_prev = matrix(static_cast<const T*>(ws.h), rows, H);  // h_{t-1} of each row
  const auto C_prev = matrix(static_cast<const T*>(ws.c), rows, H);  // c_{t-1} of each row
  // The c the output gate peeks at: c_t, or c_{t-1}.
  const T* c_out = ws.c + (config.output_peephole_source == OutputPeepholeSource::Current ? B * H : 0);
  const auto C_out = matrix(c_out, rows, H);
  if (!grads.dW.empty()) matrix(grads.dW.data, I, G).noalias() = X_tm.transpose() * dZ;
  if (!grads.dU.empty()) matrix(grads.dU.data, H, G).noalias() = H_prev.transpose() * dZ;
  if (!grads.db.empty()) matrix(grads.db.data, 1, G) = dZ.colwise().sum();
  if (!grads.dpeephole.empty()) {
    T* dp = grads.dpeephole.data;
    const auto dZ_i = dZ.leftCols(H), dZ_f = dZ.middleCols(H, H), dZ_o = dZ.rightCols(H);
    if (config.peephole == Peephole::Diagonal) {
      auto dP = matrix(dp, 3, H);
      dP.row(kPeepI) = (dZ_i.array() * C_prev.array()).colwise().sum();
      dP.row(kPeepF) = (dZ_f.array() * C_prev.array()).colwise().sum();
      dP.row(kPeepO) = (dZ_o.array() * C_out.array()).colwise().sum();
    } else {
      matrix(dp + kPeepI * H * H, H, H).noalias() = C_prev.transpose() * dZ_i;
      matrix(dp + kPeepF * H * H, H, H).noalias() = C_prev.transpose() * dZ_f;
      matrix(dp + kPeepO * H * H, H, H).noalias() = C_out.transpose() * dZ_o;
    }
  }
  if (!grads.dx.empty()) {
    matrix(ws.x_tm, rows, I).noalias() = dZ * matrix(weights.W.data, I, G).transpose();
    swap_leading_axes(static_cast<const T*>(ws.x_tm), time, B, I, grads.dx.data);
  }
}

}  // namespace
}  // namespace detail

template <class T>
void backward(const CellConfig& config, const Weights<T>& weights, Tensor<const std::uint8_t> mask,
              std::int64_t batch, std::int64_t time, const OutputGradients<T>& grad_out,
              const Workspace<T>& workspace, const Gradients<T>& grads) {
  using namespace detail;
  const WorkspaceLayout<T> ws = workspace_layout(config, batch, time, workspace);
  validate_backward(config, weights, mask, batch, time, grad_out, grads);
  const std::int64_t H = config.hidden_size, BH = batch * H;
  std::vector<T> dh(BH, T(0)), dc(BH, T(0));
  dispatch_backward_steps(config, weights, mask.data, batch, time, grad_out, ws, dh, dc);
  if (!grads.dh0.empty()) std::copy(dh.begin(), dh.end(), grads.dh0.data);
  if (!grads.dc0.empty()) std::copy(dc.begin(), dc.end(), grads.dc0.data);
  sequence_gradients(config, weights, batch, time, ws, grads);
}

template void backward<float>(const CellConfig&, const Weights<float>&, Tensor<const std::uint8_t>, std::int64_t,
                              std::int64_t, const OutputGradients<float>&, const Workspace<float>&,
                              const Gradients<float>&);
template void backward<double>(const CellConfig&, const Weights<double>&, Tensor<const std::uint8_t>, std::int64_t,
                               std::int64_t, const OutputGradients<double>&, const Workspace<double>&,
                               const Gradients<double>&);

}  // namespace lstm_native
