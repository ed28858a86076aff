// The masks of a call's regularizers (regularization.hpp), drawn the same way by forward and backward.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "lstm_native/cell.hpp"
#include "lstm_native/regularization.hpp"
#include "masks_cpu.hpp"

namespace lstm_native::detail {

// The masks drawn once per training call; an empty vector means that regularizer is off.
template <class T>
struct CallMasks {
  std::vector<T> input;      // [B,I]  m_x / (1-p), one per sequence and input feature
  std::vector<T> recurrent;  // [B,Ho] m_h / (1-p), one per sequence and unit of h (Ho = output_size)
  std::vector<T> weight;     // [Ho,4H] M_U / (1-p)
  std::vector<T> U;          // [Ho,4H] U ⊙ M_U / (1-p)

  const T* recurrent_kernel(const T* U_given) const { return U.empty() ? U_given : U.data(); }
};

template <class T>
CallMasks<T> draw_call_masks(const Regularization& reg, const CellConfig& config, std::int64_t batch, const T* U) {
  const std::int64_t I = config.input_size, H = config.hidden_size, Ho = output_size(config);
  CallMasks<T> masks;
  if (reg.dropout > 0) {
    masks.input.resize(batch * I);
    fill_dropout_mask(reg.seed, MaskStream::kInputDropout, 0, batch * I, reg.dropout, masks.input.data());
  }
  if (reg.recurrent_dropout > 0) {
    masks.recurrent.resize(batch * Ho);
    fill_dropout_mask(reg.seed, MaskStream::kRecurrentDropout, 0, batch * Ho, reg.recurrent_dropout,
                      masks.recurrent.data());
  }
  if (reg.weight_drop > 0) {
    const std::int64_t count = Ho * 4 * H;
    masks.weight.resize(count);
    fill_dropout_mask(reg.seed, MaskStream::kWeightDrop, 0, count, reg.weight_drop, masks.weight.data());
    masks.U.resize(count);
    for (std::int64_t k = 0; k < count; ++k) masks.U[k] = masks.weight[k] * U[k];
  }
  return masks;
}

// Zoneout weights d_h, d_c ([rows,H] each) of batch rows [first, first + rows) at step t: in training 1 with
// probability z (keep the previous value) else 0, drawn per step, row and unit (one call for the rows, whose
// elements are consecutive in the stream); at inference the expectation z.
template <class T>
void zoneout_weights(const Regularization& reg, bool training, std::int64_t t, std::int64_t first, std::int64_t rows,
                     std::int64_t batch, std::int64_t H, T* d_h, T* d_c) {
  if (!training) {
    std::fill(d_h, d_h + rows * H, T(reg.zoneout_h));
    std::fill(d_c, d_c + rows * H, T(reg.zoneout_c));
    return;
  }
  const std::uint64_t element = std::uint64_t((t * batch + first) * H);
  fill_mask(reg.seed, MaskStream::kZoneoutH, element, rows * H, rate_threshold(reg.zoneout_h), T(1), T(0), d_h);
  fill_mask(reg.seed, MaskStream::kZoneoutC, element, rows * H, rate_threshold(reg.zoneout_c), T(1), T(0), d_c);
}

// rows [count, width] ⊙= the per-sequence mask [B, width], rows being time-major (row = t*B + b).
template <class T>
void apply_sequence_mask(T* rows, std::int64_t count, std::int64_t batch, std::int64_t width, const T* mask) {
  for (std::int64_t r = 0; r < count; ++r) {
    const T* m = mask + (r % batch) * width;
    T* row = rows + r * width;
    for (std::int64_t k = 0; k < width; ++k) row[k] *= m[k];
  }
}

}  // namespace lstm_native::detail
