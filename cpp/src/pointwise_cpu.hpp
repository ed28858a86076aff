// The fused elementwise work of one time step for one batch row, forward and backward (docs/DESIGN.md §1).
// Each function handles one row of H units; the callers loop over the batch rows in parallel.
//
// A gate row holds 4H values in blocks [i, f, g, o]. Forward turns the pre-activations z into the
// activated gates in place; backward turns the activated gates into dz (the gradient w.r.t. z) in place.
// kDiagonal selects the elementwise peepholes p_k ⊙ c; for Peephole::Full the caller adds c P_k to z
// (forward) or dz_k P_kᵀ to dc (backward) with GEMMs, and kDiagonal is false.
//
// Determinism: Eigen vectorizes a dynamic-size expression from the first address aligned for its packets,
// computing the elements before it with scalar code, and its scalar and packet tanh/exp differ in the
// last bits; so a row's results would depend on where the allocator put it. Here every row is cut into
// fixed-size blocks of one packet (then single elements for the tail) by its length alone: each unit j
// is computed the same way wherever the row lies in memory.
#pragma once

#include <cstdint>
#include <type_traits>

#include <Eigen/Core>

namespace lstm_native::detail {

// Blocks of a gate row, and of the peephole vector [p_i, p_f, p_o].
enum Gate : std::int64_t { kI = 0, kF = 1, kG = 2, kO = 3 };
enum PeepholeGate : std::int64_t { kPeepI = 0, kPeepF = 1, kPeepO = 2 };
// The gate block each peephole feeds.
constexpr std::int64_t kPeepholeGate[3] = {kI, kF, kO};

// Calls block(std::integral_constant<int, N>{}, j) over [0, H): blocks of N = one packet of T, then N = 1.
template <class T, class Block>
void for_each_block(std::int64_t H, const Block& block) {
  constexpr int kPacket = Eigen::internal::packet_traits<T>::size;
  std::int64_t j = 0;
  for (; j + kPacket <= H; j += kPacket) block(std::integral_constant<int, kPacket>{}, j);
  for (; j < H; ++j) block(std::integral_constant<int, 1>{}, j);
}

// N values at ptr (unaligned), as an Eigen array.
template <int N, class T>
auto at(T* ptr) {
  return Eigen::Map<std::conditional_t<std::is_const_v<T>, const Eigen::Array<std::remove_const_t<T>, N, 1>,
                                       Eigen::Array<T, N, 1>>>(ptr);
}

// Forward, first half: i, f, g and c_t = f ⊙ c_{t-1} + i ⊙ g  (i, f peek at c_{t-1}).
template <class T, bool kDiagonal>
void cell_forward_row(T* gates, const T* c_prev_row, const T* p, T* c_row, std::int64_t H) {
  for_each_block<T>(H, [&](auto n, std::int64_t j) {
    constexpr int N = decltype(n)::value;
    using A = Eigen::Array<T, N, 1>;
    const A c_prev = at<N>(c_prev_row + j);
    auto zi = at<N>(gates + kI * H + j), zf = at<N>(gates + kF * H + j), zg = at<N>(gates + kG * H + j);
    if constexpr (kDiagonal) {
      zi += at<N>(p + kPeepI * H + j) * c_prev;
      zf += at<N>(p + kPeepF * H + j) * c_prev;
    }
    zi = zi.logistic();
    zf = zf.logistic();
    zg = zg.tanh();
    at<N>(c_row + j) = zf * c_prev + zi * zg;
  });
}

// Zoneout weights of one row: d_h, d_c (H values each; 1 keeps the previous value, 0 takes the new one,
// the rate itself at inference), with the row's previous states (regularization.hpp).
template <class T>
struct ZoneoutRow {
  const T* d_h;
  const T* d_c;
  const T* h_prev;
  const T* c_prev;
  T* c_new;  // where c̃_t is kept for backward (training), or nullptr
};

// Forward, second half: o_t = σ(z_o + p_o ⊙ c_src) and h̃_t = o_t ⊙ tanh(c̃_t), c_src being c̃_t or c_{t-1};
// c_row holds c̃_t. With zoneout, then h_t = d_h ⊙ h_{t-1} + (1-d_h) ⊙ h̃_t and c_t likewise (in c_row);
// without, h_t = h̃_t.
template <class T, bool kDiagonal, bool kZoneout>
void output_forward_row(T* gates, const T* c_src_row, T* c_row, const T* p, T* h_row, const ZoneoutRow<T>& zoneout,
                        std::int64_t H) {
  for_each_block<T>(H, [&](auto n, std::int64_t j) {
    constexpr int N = decltype(n)::value;
    using A = Eigen::Array<T, N, 1>;
    auto zo = at<N>(gates + kO * H + j);
    if constexpr (kDiagonal) zo += at<N>(p + kPeepO * H + j) * at<N>(c_src_row + j);
    zo = zo.logistic();
    const A c_new = at<N>(c_row + j), h_new = zo * c_new.tanh();
    if constexpr (kZoneout) {
      const A d_h = at<N>(zoneout.d_h + j), d_c = at<N>(zoneout.d_c + j);
      if (zoneout.c_new) at<N>(zoneout.c_new + j) = c_new;
      at<N>(h_row + j) = d_h * at<N>(zoneout.h_prev + j) + (T(1) - d_h) * h_new;
      at<N>(c_row + j) = d_c * at<N>(zoneout.c_prev + j) + (T(1) - d_c) * c_new;
    } else {
      at<N>(h_row + j) = h_new;
    }
  });
}

// Backward, first half, from dh = ∂L/∂h_t and dc = ∂L/∂c_t along the carried state (in: from step t+1;
// out: ∂L/∂c̃_t, the total through the cell's new value):
//   dh̃ = (1-d_h) ⊙ dh                               [zoneout; else dh̃ = dh]
//   dz_o = dh̃ ⊙ tanh(c̃_t) ⊙ o(1-o)
//   dc̃  = (1-d_c) ⊙ dc + dh̃ ⊙ o ⊙ (1 - tanh²(c̃_t))  [+ dz_o ⊙ p_o when o peeks at c̃_t]
// With zoneout c̃_t comes from the row's zoneout.c_new (c_row holds the mixed c_t), and the parts that skip
// the cell, d_h ⊙ dh and d_c ⊙ dc, go to carry_h and carry_c.
template <class T, bool kDiagonalCurrent, bool kZoneout>
void output_backward_row(T* gates, const T* c_row, const T* dh_row, T* dc_row, const T* p, const ZoneoutRow<T>& zoneout,
                         T* carry_h, T* carry_c, std::int64_t H) {
  for_each_block<T>(H, [&](auto n, std::int64_t j) {
    constexpr int N = decltype(n)::value;
    using A = Eigen::Array<T, N, 1>;
    auto dc = at<N>(dc_row + j);
    auto o = at<N>(gates + kO * H + j);
    A dh = at<N>(dh_row + j), c_new;
    if constexpr (kZoneout) {
      const A d_h = at<N>(zoneout.d_h + j), d_c = at<N>(zoneout.d_c + j);
      c_new = at<N>(static_cast<const T*>(zoneout.c_new) + j);
      at<N>(carry_h + j) = d_h * dh;
      at<N>(carry_c + j) = d_c * dc;
      dh = (T(1) - d_h) * dh;
      dc = (T(1) - d_c) * dc;
    } else {
      c_new = at<N>(c_row + j);
    }
    const A tanh_c = c_new.tanh();
    dc += dh * o * (T(1) - tanh_c.square());
    o = dh * tanh_c * o * (T(1) - o);  // o becomes dz_o
    if constexpr (kDiagonalCurrent) dc += o * at<N>(p + kPeepO * H + j);
  });
}

// Backward, second half, from dc = ∂L/∂c̃_t (in) to ∂L/∂c_{t-1} (out, in place):
//   dz_i = dc ⊙ g ⊙ i(1-i),  dz_f = dc ⊙ c_{t-1} ⊙ f(1-f),  dz_g = dc ⊙ i ⊙ (1-g²)
//   dc_{t-1} = dc ⊙ f  [+ dz_i ⊙ p_i + dz_f ⊙ p_f]  [+ dz_o ⊙ p_o when o peeks at c_{t-1}]  [+ carry_c]
template <class T, bool kDiagonal, bool kDiagonalPrevious, bool kZoneout>
void cell_backward_row(T* gates, const T* c_prev_row, T* dc_row, const T* p, const T* carry_c, std::int64_t H) {
  for_each_block<T>(H, [&](auto n, std::int64_t j) {
    constexpr int N = decltype(n)::value;
    using A = Eigen::Array<T, N, 1>;
    auto i = at<N>(gates + kI * H + j), f = at<N>(gates + kF * H + j), g = at<N>(gates + kG * H + j);
    auto dc = at<N>(dc_row + j);
    const A dc_t = dc, i_t = i, f_t = f;
    i = dc_t * g * i_t * (T(1) - i_t);                               // dz_i
    g = dc_t * i_t * (T(1) - g.square());                            // dz_g
    f = dc_t * at<N>(c_prev_row + j) * f_t * (T(1) - f_t);           // dz_f
    dc = dc_t * f_t;
    if constexpr (kDiagonal) dc += i * at<N>(p + kPeepI * H + j) + f * at<N>(p + kPeepF * H + j);
    if constexpr (kDiagonalPrevious) dc += at<N>(gates + kO * H + j) * at<N>(p + kPeepO * H + j);
    if constexpr (kZoneout) dc += at<N>(carry_c + j);
  });
}

}  // namespace lstm_native::detail
