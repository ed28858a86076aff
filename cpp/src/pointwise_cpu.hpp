// The fused elementwise work of one time step for one batch row, forward and backward (DESIGN.md §1).
// Each function handles one row of H units; the callers loop over the batch rows in parallel.
//
// A gate row holds 4H values in blocks [i, f, g, o]. Forward turns the pre-activations z into the
// activated gates in place; backward turns the activated gates into dz (the gradient w.r.t. z) in place.
// kDiagonal selects the elementwise peepholes p_k ⊙ c; for Peephole::Full the caller adds c P_k to z
// (forward) or dz_k P_kᵀ to dc (backward) with GEMMs, and kDiagonal is false.
#pragma once

#include <cstdint>

#include <Eigen/Core>

namespace lstm_native::detail {

template <class T>
using RowArray = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstRowArray = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// Blocks of a gate row, and of the peephole vector [p_i, p_f, p_o].
enum Gate : std::int64_t { kI = 0, kF = 1, kG = 2, kO = 3 };
enum PeepholeGate : std::int64_t { kPeepI = 0, kPeepF = 1, kPeepO = 2 };
// The gate block each peephole feeds.
constexpr std::int64_t kPeepholeGate[3] = {kI, kF, kO};

template <class T>
RowArray<T> block(T* row, std::int64_t k, std::int64_t H) {
  return RowArray<T>(row + k * H, H);
}
template <class T>
ConstRowArray<T> block(const T* row, std::int64_t k, std::int64_t H) {
  return ConstRowArray<T>(row + k * H, H);
}

// Forward, first half: i, f, g and c_t = f ⊙ c_{t-1} + i ⊙ g  (i, f peek at c_{t-1}).
template <class T, bool kDiagonal>
void cell_forward_row(T* gates, const T* c_prev_row, const T* p, T* c_row, std::int64_t H) {
  const ConstRowArray<T> c_prev(c_prev_row, H);
  auto zi = block(gates, kI, H), zf = block(gates, kF, H), zg = block(gates, kG, H);
  if constexpr (kDiagonal) {
    zi += block(p, kPeepI, H) * c_prev;
    zf += block(p, kPeepF, H) * c_prev;
  }
  zi = zi.logistic();
  zf = zf.logistic();
  zg = zg.tanh();
  RowArray<T>(c_row, H) = zf * c_prev + zi * zg;
}

// Forward, second half: o_t = σ(z_o + p_o ⊙ c_src) and h_t = o_t ⊙ tanh(c_t); c_src is c_t or c_{t-1}.
template <class T, bool kDiagonal>
void output_forward_row(T* gates, const T* c_src_row, const T* c_row, const T* p, T* h_row, std::int64_t H) {
  auto zo = block(gates, kO, H);
  if constexpr (kDiagonal) zo += block(p, kPeepO, H) * ConstRowArray<T>(c_src_row, H);
  zo = zo.logistic();
  RowArray<T>(h_row, H) = zo * ConstRowArray<T>(c_row, H).tanh();
}

// Backward, first half, from dh = ∂L/∂h_t and dc = ∂L/∂c_t along the carried state (in: from step t+1;
// out: the total ∂L/∂c_t). `scratch` is H values of the caller's.
//   dz_o = dh ⊙ tanh(c_t) ⊙ o(1-o)
//   dc  += dh ⊙ o ⊙ (1 - tanh²(c_t))  [+ dz_o ⊙ p_o when o peeks at c_t]
template <class T, bool kDiagonalCurrent>
void output_backward_row(T* gates, const T* c_row, const T* dh_row, T* dc_row, const T* p, T* scratch,
                         std::int64_t H) {
  const ConstRowArray<T> dh(dh_row, H);
  RowArray<T> dc(dc_row, H), tanh_c(scratch, H);
  auto o = block(gates, kO, H);
  tanh_c = ConstRowArray<T>(c_row, H).tanh();
  dc += dh * o * (T(1) - tanh_c.square());
  o = dh * tanh_c * o * (T(1) - o);  // o becomes dz_o
  if constexpr (kDiagonalCurrent) dc += o * block(p, kPeepO, H);
}

// Backward, second half, from the total dc = ∂L/∂c_t (in) to ∂L/∂c_{t-1} (out, in place):
//   dz_i = dc ⊙ g ⊙ i(1-i),  dz_f = dc ⊙ c_{t-1} ⊙ f(1-f),  dz_g = dc ⊙ i ⊙ (1-g²)
//   dc_{t-1} = dc ⊙ f  [+ dz_i ⊙ p_i + dz_f ⊙ p_f]  [+ dz_o ⊙ p_o when o peeks at c_{t-1}]
// `scratch` is H values of the caller's.
template <class T, bool kDiagonal, bool kDiagonalPrevious>
void cell_backward_row(T* gates, const T* c_prev_row, T* dc_row, const T* p, T* scratch, std::int64_t H) {
  RowArray<T> dc(dc_row, H), saved(scratch, H);
  auto i = block(gates, kI, H), f = block(gates, kF, H), g = block(gates, kG, H);
  saved = g;
  g = dc * i * (T(1) - g.square());        // g becomes dz_g
  i = dc * saved * i * (T(1) - i);         // i becomes dz_i
  saved = f;
  f = dc * ConstRowArray<T>(c_prev_row, H) * f * (T(1) - f);  // f becomes dz_f
  dc *= saved;
  if constexpr (kDiagonal) dc += i * block(p, kPeepI, H) + f * block(p, kPeepF, H);
  if constexpr (kDiagonalPrevious) dc += block(static_cast<const T*>(gates), kO, H) * block(p, kPeepO, H);
}

}  // namespace lstm_native::detail
