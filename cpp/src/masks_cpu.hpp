// Regularization masks from a counter-based generator: Philox4x32-10 (Salmon, Moraes, Dror and Shaw,
// "Parallel random numbers: as easy as 1, 2, 3", SC 2011). One call maps (counter, key) to 128 random
// bits; here the key is the caller's seed and the counter (block, stream), and each call yields eight
// 16-bit uniforms, for elements 8·block .. 8·block+7 of the stream.
#pragma once

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

// out[k] = (u(first + k) < threshold ? hit : miss) for k in [0, count): element e's uniform u(e) is
// 16-bit lane e mod 8 of Philox(counter = (e / 8, stream), key = seed).
template <class T>
void fill_mask(std::uint64_t seed, MaskStream stream, std::uint64_t first, std::int64_t count, std::uint32_t threshold,
               T hit, T miss, T* out) {
  const std::array<std::uint32_t, 2> key = {std::uint32_t(seed), std::uint32_t(seed >> 32)};
  std::uint64_t block = first / 8;
  std::array<std::uint32_t, 4> bits = {};
  for (std::int64_t k = 0; k < count; ++k) {
    const std::uint64_t element = first + std::uint64_t(k);
    if (k == 0 || element % 8 == 0) {
      block = element / 8;
      bits = philox4x32_10({std::uint32_t(block), std::uint32_t(block >> 32), std::uint32_t(stream), 0u}, key);
    }
    const std::uint32_t lane = element % 8;
    const std::uint32_t u = (bits[lane / 2] >> (16 * (lane % 2))) & 0xFFFFu;
    out[k] = u < threshold ? hit : miss;
  }
}

// Inverted dropout: out[k] = 0 with probability rate, else 1/(1-rate).
template <class T>
void fill_dropout_mask(std::uint64_t seed, MaskStream stream, std::uint64_t first, std::int64_t count, double rate,
                       T* out) {
  fill_mask<T>(seed, stream, first, count, rate_threshold(rate), T(0), T(1.0 / (1.0 - rate)), out);
}

}  // namespace lstm_native::detail
