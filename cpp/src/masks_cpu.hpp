// Regularization masks on the CPU: the generator of cpp/common/masks.hpp, many blocks at once.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include "../common/masks.hpp"

namespace lstm_native::detail {

// Philox for kLanes consecutive blocks at once, written lane-parallel so that the compiler vectorizes it
// (the same arithmetic as philox4x32_10, lane by lane): words[w][l] = word w of block first_block + l.
// 32 lanes (256 elements) let GCC vectorize the rounds even in the portable build: 0.65 ns per element
// against 1.4 with 8 lanes (measured on the 2-core Xeon of bench/README.md).
constexpr int kLanes = 32;
inline void philox_blocks(std::uint64_t first_block, MaskStream stream, std::array<std::uint32_t, 2> key,
                          std::uint32_t (&words)[4][kLanes]) {
  std::uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const PhiloxBlock counter = mask_counter(first_block + std::uint64_t(l), stream);
    c0[l] = counter.word[0], c1[l] = counter.word[1], c2[l] = counter.word[2], c3[l] = counter.word[3];
  }
  std::uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < kPhiloxRounds; ++round) {
    for (int l = 0; l < kLanes; ++l) philox_round(c0[l], c1[l], c2[l], c3[l], k0, k1);
    philox_next_key(k0, k1);
  }
  for (int l = 0; l < kLanes; ++l) words[0][l] = c0[l], words[1][l] = c1[l], words[2][l] = c2[l], words[3][l] = c3[l];
}

// out[k] = (u(first + k) < threshold ? hit : miss) for k in [0, count), u(e) = philox_uniform16(seed, stream, e).
template <class T>
void fill_mask(std::uint64_t seed, MaskStream stream, std::uint64_t first, std::int64_t count, std::uint32_t threshold,
               T hit, T miss, T* out) {
  const std::array<std::uint32_t, 2> key = {std::uint32_t(seed), std::uint32_t(seed >> 32)};
  std::uint32_t words[4][kLanes];
  const std::uint64_t end = first + std::uint64_t(count);
  for (std::uint64_t batch = first / 8 / kLanes * kLanes; batch * 8 < end; batch += kLanes) {
    philox_blocks(batch, stream, key, words);
    const std::uint64_t lo = std::max(first, batch * 8), hi = std::min(end, (batch + kLanes) * 8);
    if (hi - lo == 8 * kLanes) {  // the whole batch: branch-free, without index arithmetic per element
      std::uint32_t below[8][kLanes];  // below[k][l]: element 8l + k falls under the threshold
      for (int w = 0; w < 4; ++w)
        for (int l = 0; l < kLanes; ++l) {
          below[2 * w][l] = (words[w][l] & 0xFFFFu) < threshold;
          below[2 * w + 1][l] = (words[w][l] >> 16) < threshold;
        }
      const T values[2] = {miss, hit};
      T* o = out + (lo - first);
      for (int l = 0; l < kLanes; ++l)
        for (int k = 0; k < 8; ++k) o[8 * l + k] = values[below[k][l]];
      continue;
    }
    for (std::uint64_t element = lo; element < hi; ++element) {
      const std::uint64_t block = element / 8 - batch, lane = element % 8;
      const std::uint32_t u = mask_lane(words[lane / 2][block], unsigned(lane));
      out[element - first] = u < threshold ? hit : miss;
    }
  }
}

// Inverted dropout: out[k] = 0 with probability rate, else 1/(1-rate).
template <class T>
void fill_dropout_mask(std::uint64_t seed, MaskStream stream, std::uint64_t first, std::int64_t count, double rate,
                       T* out) {
  fill_mask<T>(seed, stream, first, count, rate_threshold(rate), T(0), T(1.0 / (1.0 - rate)), out);
}

}  // namespace lstm_native::detail
