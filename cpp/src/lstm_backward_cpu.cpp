// Backward pass on the CPU (docs/DESIGN.md §3): the steps in reverse, each one fused elementwise pass (two
// around a GEMM for full peepholes) plus one GEMM dz_t Uᵀ for ∂L/∂h_{t-1} (and with a projection one GEMM
// dh_t W_hrᵀ for ∂L/∂m_t); then dW, dU, db, the peephole and projection gradients and dx as large
// reductions over all steps at once.
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "lstm_native/backward.hpp"
#include "packed_gemm_cpu.hpp"
#include "pointwise_cpu.hpp"
#include "regularization_cpu.hpp"
#include "sequence_cpu.hpp"

namespace lstm_native {
namespace detail {
namespace {

// Per-row buffers of the reverse sweep, [B,Ho] or [B,H] each so that chunks never share: dh_total =
// ∂L/∂h_t of the step at hand; with zoneout, the gradients that skip the cell (carry_h, carry_c) and the
// rows' zoneout weights (d_h, d_c). With a projection, dh_all [T,B,P] keeps every step's dh_total for
// ∂L/∂W_hr = Σ_t m_tᵀ dh_t.
template <class T>
struct SweepBuffers {
  std::vector<T> dh_total, carry_h, carry_c, d_h, d_c, dh_all;
};

// Reverse-time sweep over the chunk's steps for batch rows [first, last): turns the stored gates into dz for
// every step and leaves ∂L/∂h, ∂L/∂c of the state before the chunk in dh, dc (which come in holding those of
// the chunk's last state: ∂L/∂h_T, ∂L/∂c_T for the last chunk).
template <class T, class V>
void backward_rows(const CellConfig& config, const Weights<T>& weights, const std::uint8_t* mask, std::int64_t B,
                   std::int64_t time, const T* dy, const WorkspaceLayout<T>& ws, const Regularization& reg,
                   const CallMasks<T>& masks, const PackedLhsGemm<T, Eigen::RowMajor>& recurrent, T* dh, T* dc,
                   SweepBuffers<T>& sweep, StepChunk steps, std::int64_t first, std::int64_t last) {
  const std::int64_t H = config.hidden_size, G = 4 * H, BH = B * H, Ho = output_size(config), rows = last - first;
  const bool projected = config.projection_size > 0;
  const T* p = weights.peephole.data;
  auto peephole_matrix = [&](std::int64_t k) { return matrix(p + k * H * H, H, H); };
  auto dC = matrix(dc + first * H, rows, H);
  T* dh_total = sweep.dh_total.data();
  std::vector<T> dm(projected ? rows * H : 0);  // ∂L/∂m_t = dh_t W_hrᵀ of the chunk's rows
  std::vector<std::int64_t> active;  // with a mask: the rows whose step t is valid, as offsets from first
  std::vector<T> dz_gathered, dh_gathered;

  for (std::int64_t t = steps.end - 1; t >= steps.begin; --t) {
    T* gates = ws.gates + t * B * G;
    const T* c_prev = ws.c + t * BH;
    const T* c_cur = ws.c + (t + 1) * BH;
    const auto dZ = matrix(static_cast<const T*>(gates) + first * G, rows, G);
    // dh_total = ∂L/∂h_t: from step t+1 (dh) plus dy_t where the output is the state.
    for (std::int64_t b = first; b < last; ++b) {
      T* dh_row = dh_total + b * Ho;
      std::copy(dh + b * Ho, dh + (b + 1) * Ho, dh_row);
      if (dy != nullptr && (valid_step(mask, b, t, time) || !config.zero_output_for_mask)) {
        const T* dy_row = dy + (b * time + t) * Ho;
        for (std::int64_t j = 0; j < Ho; ++j) dh_row[j] += dy_row[j];
      }
    }
    if (projected) {  // h_t = m_t W_hr: ∂L/∂m_t = dh_t W_hrᵀ; dh_t is kept for ∂L/∂W_hr
      const auto dH_rows = matrix(static_cast<const T*>(dh_total) + first * Ho, rows, Ho);
      matrix(dm.data(), rows, H).noalias() = dH_rows * matrix(weights.projection.data, H, Ho).transpose();
      matrix(sweep.dh_all.data() + (t * B + first) * Ho, rows, Ho) = dH_rows;
    }
    if constexpr (V::zoneout)
      zoneout_weights(reg, true, t, first, rows, B, H, sweep.d_h.data() + first * H, sweep.d_c.data() + first * H);
    auto output = [&](std::int64_t b) {
      if (!valid_step(mask, b, t, time)) {  // a carried state has no dz; only the full peepholes' products read it
        if constexpr (V::full) std::fill(gates + b * G, gates + (b + 1) * G, T(0));
        return;
      }
      const T* dh_row = projected ? dm.data() + (b - first) * H : dh_total + b * H;
      T* c_new = ws.c_new ? ws.c_new + (t * B + b) * H : nullptr;
      const ZoneoutRow<T> zoneout{sweep.d_h.data() + b * H, sweep.d_c.data() + b * H, nullptr, c_prev + b * H, c_new};
      output_backward_row<T, V::diagonal && V::current, V::zoneout>(
          gates + b * G, c_cur + b * H, dh_row, dc + b * H, p, zoneout, sweep.carry_h.data() + b * H,
          sweep.carry_c.data() + b * H, H);
    };
    auto cell = [&](std::int64_t b) {
      if (valid_step(mask, b, t, time))
        cell_backward_row<T, V::diagonal, V::diagonal && !V::current, V::zoneout>(
            gates + b * G, c_prev + b * H, dc + b * H, p, sweep.carry_c.data() + b * H, H);
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
    // ∂L/∂h_{t-1} = (dz_t Uᵀ) ⊙ m_h [+ the zoneout carry]; a masked row carried h_{t-1} unchanged, so its
    // gradient passes straight through.
    std::fill(dh + first * Ho, dh + last * Ho, T(0));
    if (mask == nullptr) {
      recurrent.multiply_add(gates + first * G, G, rows, dh + first * Ho, Ho);  // dh_{t-1} = dz_t Uᵀ
    } else {  // a masked row's dz_t is 0 and its dh_{t-1} is set below
      active_rows(mask, t, time, first, last, active);
      recurrent.multiply_add_columns(gates + first * G, G, rows, dh + first * Ho, Ho, active.data(),
                                     std::int64_t(active.size()), dz_gathered, dh_gathered);
    }
    for (std::int64_t b = first; b < last; ++b) {
      T* dh_row = dh + b * Ho;
      if (!valid_step(mask, b, t, time)) {
        std::copy(dh_total + b * Ho, dh_total + (b + 1) * Ho, dh_row);
        continue;
      }
      if (!masks.recurrent.empty())
        for (std::int64_t j = 0; j < Ho; ++j) dh_row[j] *= masks.recurrent[b * Ho + j];
      if constexpr (V::zoneout)
        for (std::int64_t j = 0; j < H; ++j) dh_row[j] += sweep.carry_h[b * H + j];
    }
  }
}

// The reverse sweep over all batch rows for the config's variant: chunk of steps after chunk of steps from
// the last (see steps_per_chunk), each spread over the threads by batch rows.
template <class T>
void backward_steps(const CellConfig& config, const Weights<T>& weights, const std::uint8_t* mask, std::int64_t B,
                    std::int64_t time, const OutputGradients<T>& grad_out, const WorkspaceLayout<T>& ws,
                    const Regularization& reg, const CallMasks<T>& masks, std::vector<T>& dh, std::vector<T>& dc,
                    SweepBuffers<T>& sweep) {
  const std::int64_t H = config.hidden_size, Ho = output_size(config), BH = B * H;
  if (!grad_out.dh_n.empty()) std::copy(grad_out.dh_n.data, grad_out.dh_n.data + B * Ho, dh.begin());
  if (!grad_out.dc_n.empty()) std::copy(grad_out.dc_n.data, grad_out.dc_n.data + BH, dc.begin());
  dispatch_variant(config, reg.zoneout(), [&](auto variant) {
    using V = decltype(variant);
    const double step_work = double(Ho + 12) * double(4 * H) + (config.projection_size > 0 ? double(2 * H * Ho) : 0.0);
    const std::int64_t rows = recurrence_chunk_rows(B, H);
    const PackedLhsGemm<T, Eigen::RowMajor> recurrent(masks.recurrent_kernel(weights.U.data), 4 * H, Ho, 4 * H,
                                                      std::min(rows, B));
    const std::int64_t steps = steps_per_chunk(B, time, step_work, H);
    for (std::int64_t end = time; end > 0; end -= steps) {
      const StepChunk chunk{std::max<std::int64_t>(0, end - steps), end, 0};
      const auto bounds = recurrence_row_bounds(mask, B, time, rows, chunk.begin, end);
      parallel_ranges(bounds, double(B * (end - chunk.begin)) * step_work, [&](std::int64_t first, std::int64_t last) {
        backward_rows<T, V>(config, weights, mask, B, time, grad_out.dy.data, ws, reg, masks, recurrent, dh.data(),
                            dc.data(), sweep, chunk, first, last);
      });
      throw_if_cancelled();
    }
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

// Rows `valid.rows` of src [.., width] one after another at dst (which may be src, see gather_rows); src itself
// where every row is valid, or src is null (a gradient not asked for).
template <class T>
const T* compact_rows(const T* src, std::int64_t width, const ValidRows& valid, T* dst) {
  if (valid.all || src == nullptr) return src;
  gather_rows(src, width, valid.rows.data(), std::int64_t(valid.rows.size()), dst);
  return dst;
}

// The gradients that are sums over all steps, from dz of every step (rows t*B + b of dZ [T*B,4H]) and the
// stored states, summed over the rows of valid steps only (a masked step's dz is 0, its m_t too: with masked
// steps the spent workspace's buffers are compacted in place, and the products over all rows run over the
// valid rows at their front): dW = x_tmᵀ dZ, dU = h_prevᵀ dZ, db = Σ dZ (by chunks of columns), dp_k = Σ dz_k ⊙ c
// (diagonal) or cᵀ dz_k (full) (by chunks of units), and dx = dZ Wᵀ (by chunks of rows), computed
// time-major into the spent x_tm buffer and transposed to batch-first.
// With regularization: h_prev is the recurrent-dropped h (masked in place: the workspace is spent), dU is
// taken w.r.t. U before weight-drop (⊙ M_U/(1-p)), and dx passes back through the input mask.
// With a projection also dW_hr = Σ_t m_tᵀ dh_t (by chunks of columns), dh_t from the sweep's dh_all.
template <class T>
void sequence_gradients(const CellConfig& config, const Weights<T>& weights, const std::uint8_t* mask, std::int64_t B,
                        std::int64_t time, const WorkspaceLayout<T>& ws, const CallMasks<T>& masks,
                        std::vector<T>& dh_all, const Gradients<T>& grads) {
  const std::int64_t I = config.input_size, H = config.hidden_size, G = 4 * H, Ho = output_size(config);
  const std::int64_t all_rows = time * B;
  if (!masks.recurrent.empty()) apply_sequence_mask(ws.h, all_rows, B, Ho, masks.recurrent.data());
  const ValidRows valid = time_major_valid_rows(mask, B, time);
  const std::int64_t rows = valid.all ? all_rows : std::int64_t(valid.rows.size());
  auto valid_rows_in_place = [&](T* data, std::int64_t width) {
    return matrix(compact_rows(static_cast<const T*>(data), width, valid, data), rows, width);
  };
  const auto dZ = valid_rows_in_place(ws.gates, G);
  const auto X_tm = valid_rows_in_place(grads.dW.empty() ? nullptr : ws.x_tm, I);
  const auto H_prev = valid_rows_in_place(grads.dU.empty() ? nullptr : ws.h, Ho);  // h_{t-1} of each row

  parallel_chunks(G, reduction_chunk_columns(G), double(rows * (I + Ho + 1)), [&](std::int64_t first, std::int64_t last) {
    const std::int64_t n = last - first;
    const auto dZ_cols = dZ.middleCols(first, n);
    if (!grads.dW.empty()) matrix(grads.dW.data, I, G).middleCols(first, n).noalias() = X_tm.transpose() * dZ_cols;
    if (!grads.dU.empty()) {
      auto dU = matrix(grads.dU.data, Ho, G).middleCols(first, n);
      dU.noalias() = H_prev.transpose() * dZ_cols;
      if (!masks.weight.empty()) dU.array() *= matrix(masks.weight.data(), Ho, G).middleCols(first, n).array();
    }
    if (!grads.db.empty())
      matrix(grads.db.data, 1, G).middleCols(first, n) = sum_of_rows<T>(rows, n, [&](std::int64_t r) { return dZ_cols.row(r).array(); });
  });
  if (!grads.dpeephole.empty()) {
    // The c the output gate peeks at: c_t (before zoneout mixes it), or c_{t-1}. c_t overlaps c_{t-1} in ws.c:
    // the valid rows of c are copied out (c_prev_rows, c_out_rows) for the full peepholes' products, and read
    // where they lie for the diagonal ones' sums (row_of: a compact row's place in ws.c).
    const bool current = config.output_peephole_source == OutputPeepholeSource::Current;
    const T* c_out = current ? (ws.c_new ? ws.c_new : ws.c + B * H) : ws.c;
    const bool diagonal = config.peephole == Peephole::Diagonal;
    std::vector<T> c_prev_rows(diagonal ? 0 : rows * H), c_out_rows(diagonal ? 0 : rows * H);
    auto valid_rows_of_c = [&](const T* c, std::vector<T>& storage) {
      return diagonal ? matrix(c, all_rows, H) : matrix(compact_rows(c, H, valid, storage.data()), rows, H);
    };
    const auto C_prev = valid_rows_of_c(ws.c, c_prev_rows);
    const auto C_out = current ? valid_rows_of_c(c_out, c_out_rows) : C_prev;
    auto row_of = [&](std::int64_t r) { return diagonal && !valid.all ? valid.rows[r] : r; };
    T* dp = grads.dpeephole.data;
    parallel_chunks(H, reduction_chunk_columns(H), double(rows * 3 * (config.peephole == Peephole::Full ? H : 1)), [&](std::int64_t first, std::int64_t last) {
      const std::int64_t n = last - first;
      for (std::int64_t k : {kPeepI, kPeepF, kPeepO}) {
        const auto& C = k == kPeepO ? C_out : C_prev;
        const auto dZ_k = dZ.middleCols(kPeepholeGate[k] * H + first, n);  // units [first, last) of gate k
        const auto C_k = C.middleCols(first, n);
        if (diagonal)
          matrix(dp + k * H, 1, H).middleCols(first, n) =
              sum_of_rows<T>(rows, n, [&](std::int64_t r) { return dZ_k.row(r).array() * C_k.row(row_of(r)).array(); });
        else
          matrix(dp + k * H * H, H, H).middleCols(first, n).noalias() = C.transpose() * dZ_k;
      }
    });
  }
  if (!grads.dprojection.empty()) {
    const auto M = valid_rows_in_place(ws.m, H);
    const auto dH = valid_rows_in_place(dh_all.data(), Ho);
    parallel_chunks(Ho, reduction_chunk_columns(Ho), double(rows * H), [&](std::int64_t first, std::int64_t last) {
      matrix(grads.dprojection.data, H, Ho).middleCols(first, last - first).noalias() =
          M.transpose() * dH.middleCols(first, last - first);
    });
  }
  if (!grads.dx.empty()) {
    // dx = dZ Wᵀ into x_tm, which is spent (dW is done); dx of a masked step is 0. Wᵀ's transpose, the packed
    // factor, is W itself: row-major, leading dimension 4H.
    RowsProduct<T, Eigen::RowMajor>(weights.W.data, G, G, I, nullptr)(dZ.data(), all_rows, valid, ws.x_tm, true);
    if (!masks.input.empty()) apply_sequence_mask(ws.x_tm, all_rows, B, I, masks.input.data());
    swap_leading_axes(static_cast<const T*>(ws.x_tm), time, B, I, grads.dx.data);
  }
}

}  // namespace
}  // namespace detail

template <class T>
void backward(const CellConfig& config, const Weights<T>& weights, Tensor<const std::uint8_t> mask,
              std::int64_t batch, std::int64_t time, const OutputGradients<T>& grad_out,
              const Workspace<T>& workspace, const Gradients<T>& grads, const Regularization& regularization) {
  using namespace detail;
  const WorkspaceLayout<T> ws = workspace_layout(config, batch, time, regularization, workspace);
  validate_backward(config, weights, mask, batch, time, grad_out, grads);
  const std::int64_t BH = batch * config.hidden_size, BHo = batch * output_size(config);
  const CallMasks<T> masks = draw_call_masks(regularization, config, batch, weights.U.data);
  std::vector<T> dh(BHo, T(0)), dc(BH, T(0));
  const std::size_t zoneout_size = regularization.zoneout() ? BH : 0;
  SweepBuffers<T> sweep{std::vector<T>(BHo), std::vector<T>(zoneout_size), std::vector<T>(zoneout_size),
                        std::vector<T>(zoneout_size), std::vector<T>(zoneout_size),
                        std::vector<T>(config.projection_size > 0 ? time * BHo : 0)};
  backward_steps(config, weights, mask.data, batch, time, grad_out, ws, regularization, masks, dh, dc, sweep);
  if (!grads.dh0.empty()) std::copy(dh.begin(), dh.end(), grads.dh0.data);
  if (!grads.dc0.empty()) std::copy(dc.begin(), dc.end(), grads.dc0.data);
  sequence_gradients(config, weights, mask.data, batch, time, ws, masks, sweep.dh_all, grads);
}

template void backward<float>(const CellConfig&, const Weights<float>&, Tensor<const std::uint8_t>, std::int64_t,
                              std::int64_t, const OutputGradients<float>&, const Workspace<float>&,
                              const Gradients<float>&, const Regularization&);
template void backward<double>(const CellConfig&, const Weights<double>&, Tensor<const std::uint8_t>, std::int64_t,
                               std::int64_t, const OutputGradients<double>&, const Workspace<double>&,
                               const Gradients<double>&, const Regularization&);

}  // namespace lstm_native
