// Regularization masks from a counter-based generator: Philox4x32-10 (Salmon, Moraes, Dror and Shaw,
// "Parallel random numbers: as easy as 1, 2, 3", SC 2011). One call maps (counter, key) to 128 random
// bits; here the key is the caller's seed and the counter (block, stream), and each call yields eight
// 16-bit uniforms, for elements 8·block .. 8·block+7 of the stream.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include "lstm_native/regularization.hpp"

namespace lstm_native::detail {

// One stream per kind of mask, so that no two regularizers share random numbers.
enum class MaskStream : std::uint32_t {
  kInputDropout = 1,
  kRecurrentDropout = 2,
  kZoneoutH = 3,
  kZoneoutC = 4,
  kWeightDrop = 5,
};

inline std::array<std::uint32_t, 4> philox4x32_10(std::array<std::uint32_t, 4> counter,
                                                  std::array<std::uint32_t, 2> key) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t(kMul0) * counter[0], p1 = std::uint64_t(kMul1) * counter[2];
    counter = {std::uint32_t(p1 >> 32) ^ counter[1] ^ key[0], std::uint32_t(p1), std::uint32_t(p0 >> 32) ^ counter[3] ^ key[1],
               std::uint32_t(p0)};
    key = {key[0] + kWeyl0, key[1] + kWeyl1};
  }
  return counter;
}

// The threshold of a rate: an element's 16-bit uniform u falls under it with probability rate.
inline std::uint32_t rate_threshold(double rate) { return static_cast<std::uint32_t>(rate * 65536.0 + 0.5); }

// Philox for kLanes consecutive blocks at once, written lane-parallel so that the compiler vectorizes it
// (the same arithmetic as philox4x32_10, lane by lane): words[w][l] = word w of block first_block + l.
// 32 lanes (256 elements) let GCC vectorize the rounds even in the portable build: 0.65 ns per element
// against 1.4 with 8 lanes (measured on the 2-core Xeon of bench/README.md).
constexpr int kLanes = 32;
inline void philox_blocks(std::uint64_t first_block, std::uint32_t stream, std::array<std::uint32_t, 2> key,
                          std::uint32_t (&words)[4][kLanes]) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  std::uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const std::uint64_t block = first_block + std::uint64_t(l);
    c0[l] = std::uint32_t(block), c1[l] = std::uint32_t(block >> 32), c2[l] = stream, c3[l] = 0u;
  }
  std::uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    for (int l = 0; l < kLanes; ++l) {
      const std::uint64_t p0 = std::uint64_t(kMul0) * c0[l], p1 = std::uint64_t(kMul1) * c2[l];
      const std::uint32_t n0 = std::uint32_t(p1 >> 32) ^ c1[l] ^ k0, n2 = std::uint32_t(p0 >> 32) ^ c3[l] ^ k1;
      c1[l] = std::uint32_t(p1), c3[l] = std::uint32_t(p0), c0[l] = n0, c2[l] = n2;
    }
    k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
  }
  for (int l = 0; l < kLanes; ++l) words[0][l] = c0[l], words[1][l] = c1[l], words[2][l] = c2[l], words[3][l] = c3[l];
}

// out[k] = (u(first + k) < threshold ? hit : miss) for k in [0, count): element e's uniform u(e) is
// 16-bit lane e mod 8 of Philox(counter = (e / 8, stream), key = seed), i.e. half e mod 2 of word (e mod 8) / 2.
template <class T>
void fill_mask(std::uint64_t seed, MaskStream stream, std::uint64_t first, std::int64_t count, std::uint32_t threshold,
               T hit, T miss, T* out) {
  const std::array<std::uint32_t, 2> key = {std::uint32_t(seed), std::uint32_t(seed >> 32)};
  std::uint32_t words[4][kLanes];
  const std::uint64_t end = first + std::uint64_t(count);
  for (std::uint64_t batch = first / 8 / kLanes * kLanes; batch * 8 < end; batch += kLanes) {
    philox_blocks(batch, std::uint32_t(stream), key, words);
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
      const std::uint32_t u = (words[lane / 2][block] >> (16 * (lane % 2))) & 0xFFFFu;
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
