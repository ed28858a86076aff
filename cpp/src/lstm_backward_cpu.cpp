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

// Reverse-time sweep over batch rows [first, last): turns the stored gates into dz for every step and leaves
// ∂L/∂h_0, ∂L/∂c_0 of those rows in dh, dc (which come in holding ∂L/∂h_T, ∂L/∂c_T). dh_total is a [B,H]
// buffer of the caller's.
template <class T, class V>
void backward_rows(const CellConfig& config, const Weights<T>& weights, const std::uint8_t* mask, std::int64_t B,
                   std::int64_t time, const T* dy, const WorkspaceLayout<T>& ws, T* dh, T* dc, T* dh_total,
                   std::int64_t first, std::int64_t last) {
  const std::int64_t H = config.hidden_size, G = 4 * H, BH = B * H, rows = last - first;
  const T* p = weights.peephole.data;
  const auto U = matrix(weights.U.data, H, G);
  auto peephole_matrix = [&](std::int64_t k) { return matrix(p + k * H * H, H, H); };
  auto dC = matrix(dc + first * H, rows, H);

  for (std::int64_t t = time - 1; t >= 0; --t) {
    T* gates = ws.gates + t * B * G;
    const T* c_prev = ws.c + t * BH;
    const T* c_cur = ws.c + (t + 1) * BH;
    const auto dZ = matrix(static_cast<const T*>(gates) + first * G, rows, G);
    // dh_total = ∂L/∂h_t: from step t+1 (dh) plus dy_t where the output is the state.
    auto output = [&](std::int64_t b) {
      const bool valid = valid_step(mask, b, t, time);
      T* dh_row = dh_total + b * H;
      std::copy(dh + b * H, dh + (b + 1) * H, dh_row);
      if (dy != nullptr && (valid || !config.zero_output_for_mask)) {
        const T* dy_row = dy + (b * time + t) * H;
        for (std::int64_t j = 0; j < H; ++j) dh_row[j] += dy_row[j];
      }
      if (valid)
        output_backward_row<T, V::diagonal && V::current>(gates + b * G, c_cur + b * H, dh_row, dc + b * H, p, H);
      else
        std::fill(gates + b * G, gates + (b + 1) * G, T(0));  // a carried state has no dz
    };
    auto cell = [&](std::int64_t b) {
      if (valid_step(mask, b, t, time))
        cell_backward_row<T, V::diagonal, V::diagonal && !V::current>(gates + b * G, c_prev + b * H, dc + b * H, p, H);
    };
    if constexpr (V::split_pass) {
      for (std::int64_t b = first; b < last; ++b) output(b);
      dC.noalias() += dZ.rightCols(H) * peephole_matrix(kPeepO).transpose();
      for (std::int64_t b = first; b < last; ++b) cell(b);
    } else {
      for (std::int64_t b = first; b < last; ++b) {
        output(b);
        cell(b);
      }
    }
    if constexpr (V::full) {  // ∂L/∂c_{t-1} += dz_k P_kᵀ for the gates that peek at c_{t-1}
      dC.noalias() += dZ.leftCols(H) * peephole_matrix(kPeepI).transpose();
      dC.noalias() += dZ.middleCols(H, H) * peephole_matrix(kPeepF).transpose();
      if constexpr (!V::current) dC.noalias() += dZ.rightCols(H) * peephole_matrix(kPeepO).transpose();
    }
    // ∂L/∂h_{t-1} = dz_t Uᵀ; a masked row carried h_{t-1} unchanged, so its gradient passes straight through.
    matrix(dh + first * H, rows, H).noalias() = dZ * U.transpose();
    for (std::int64_t b = first; b < last; ++b)
      if (!valid_step(mask, b, t, time)) std::copy(dh_total + b * H, dh_total + (b + 1) * H, dh + b * H);
  }
}

// The reverse sweep over all batch rows, chunk by chunk in parallel, for the config's variant.
template <class T>
void backward_steps(const CellConfig& config, const Weights<T>& weights, const std::uint8_t* mask, std::int64_t B,
                    std::int64_t time, const OutputGradients<T>& grad_out, const WorkspaceLayout<T>& ws,
                    std::vector<T>& dh, std::vector<T>& dc) {
  const std::int64_t BH = B * config.hidden_size;
  if (!grad_out.dh_n.empty()) std::copy(grad_out.dh_n.data, grad_out.dh_n.data + BH, dh.begin());
  if (!grad_out.dc_n.empty()) std::copy(grad_out.dc_n.data, grad_out.dc_n.data + BH, dc.begin());
  std::vector<T> dh_total(BH);
  dispatch_variant(config, [&](auto variant) {
    using V = decltype(variant);
    parallel_chunks(B, recurrence_chunk_rows(config.hidden_size), [&](std::int64_t first, std::int64_t last) {
      backward_rows<T, V>(config, weights, mask, B, time, grad_out.dy.data, ws, dh.data(), dc.data(),
                          dh_total.data(), first, last);
    });
  });
}

// Σ_r row(r) over rows [0, count) of n columns, accumulated one row after another in a buffer Eigen aligns
// itself: column sums straight into the caller's array would be vectorized from its first aligned element,
// with a differently ordered scalar sum before it, so the result would depend on the allocator.
template <class T, class Row>
Eigen::Array<T, 1, Eigen::Dynamic> sum_of_rows(std::int64_t count, std::int64_t n, const Row& row) {
  Eigen::Array<T, 1, Eigen::Dynamic> sum = Eigen::Array<T, 1, Eigen::Dynamic>::Zero(n);
  for (std::int64_t r = 0; r < count; ++r) sum += row(r);
  return sum;
}

// The gradients that are sums over all steps, from dz of every step (rows t*B + b of dZ [T*B,4H]) and the
// stored states: dW = x_tmᵀ dZ, dU = h_prevᵀ dZ, db = Σ dZ (by chunks of columns), dp_k = Σ dz_k ⊙ c
// (diagonal) or cᵀ dz_k (full) (by chunks of units), and dx = dZ Wᵀ (by chunks of rows), computed
// time-major into the spent x_tm buffer and transposed to batch-first.
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

  parallel_chunks(G, kReductionChunkColumns, [&](std::int64_t first, std::int64_t last) {
    const std::int64_t n = last - first;
    const auto dZ_cols = dZ.middleCols(first, n);
    if (!grads.dW.empty()) matrix(grads.dW.data, I, G).middleCols(first, n).noalias() = X_tm.transpose() * dZ_cols;
    if (!grads.dU.empty()) matrix(grads.dU.data, H, G).middleCols(first, n).noalias() = H_prev.transpose() * dZ_cols;
    if (!grads.db.empty())
      matrix(grads.db.data, 1, G).middleCols(first, n) = sum_of_rows<T>(rows, n, [&](std::int64_t r) { return dZ_cols.row(r).array(); });
  });
  if (!grads.dpeephole.empty()) {
    T* dp = grads.dpeephole.data;
    parallel_chunks(H, kReductionChunkColumns, [&](std::int64_t first, std::int64_t last) {
      const std::int64_t n = last - first;
      for (std::int64_t k : {kPeepI, kPeepF, kPeepO}) {
        const auto& C = k == kPeepO ? C_out : C_prev;
        const auto dZ_k = dZ.middleCols(kPeepholeGate[k] * H + first, n);  // units [first, last) of gate k
        const auto C_k = C.middleCols(first, n);
        if (config.peephole == Peephole::Diagonal)
          matrix(dp + k * H, 1, H).middleCols(first, n) =
              sum_of_rows<T>(rows, n, [&](std::int64_t r) { return dZ_k.row(r).array() * C_k.row(r).array(); });
        else
          matrix(dp + k * H * H, H, H).middleCols(first, n).noalias() = C.transpose() * dZ_k;
      }
    });
  }
  if (!grads.dx.empty()) {
    auto dX_tm = matrix(ws.x_tm, rows, I);  // x_tm is spent: dW is done
    const auto W = matrix(weights.W.data, I, G);
    parallel_chunks(rows, kGemmChunkRows, [&](std::int64_t first, std::int64_t last) {
      dX_tm.middleRows(first, last - first).noalias() = dZ.middleRows(first, last - first) * W.transpose();
    });
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
  backward_steps(config, weights, mask.data, batch, time, grad_out, ws, dh, dc);
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
