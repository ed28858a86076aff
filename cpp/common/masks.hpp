// The regularization masks' generator, shared by both backends (the CPU's cpp/src/masks_cpu.hpp draws it
// lane-parallel, the CUDA kernels one element per thread): Philox4x32-10 (Salmon, Moraes, Dror and Shaw,
// "Parallel random numbers: as easy as 1, 2, 3", SC 2011). One call maps (counter, key) to 128 random bits;
// here the key is the caller's seed and the counter (block, stream), and each call yields eight 16-bit
// uniforms, for elements 8·block .. 8·block+7 of the stream. Compiles as host code, and under nvcc as host
// and device code.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define LSTM_NATIVE_HOST_DEVICE __host__ __device__
#else
#define LSTM_NATIVE_HOST_DEVICE
#endif

namespace lstm_native::detail {

// One stream per kind of mask, so that no two regularizers share random numbers.
enum class MaskStream : std::uint32_t {
  kInputDropout = 1,
  kRecurrentDropout = 2,
  kZoneoutH = 3,
  kZoneoutC = 4,
  kWeightDrop = 5,
};

constexpr int kPhiloxRounds = 10;

// One Philox4x32 round on the counter words c0..c3 under the key (k0, k1): two multiplications and the S-box.
LSTM_NATIVE_HOST_DEVICE inline void philox_round(std::uint32_t& c0, std::uint32_t& c1, std::uint32_t& c2,
                                                 std::uint32_t& c3, std::uint32_t k0, std::uint32_t k1) {
  const std::uint64_t p0 = std::uint64_t(0xD2511F53u) * c0, p1 = std::uint64_t(0xCD9E8D57u) * c2;
  const std::uint32_t n0 = std::uint32_t(p1 >> 32) ^ c1 ^ k0, n2 = std::uint32_t(p0 >> 32) ^ c3 ^ k1;
  c1 = std::uint32_t(p1), c3 = std::uint32_t(p0), c0 = n0, c2 = n2;
}

// The key schedule between rounds (a Weyl sequence).
LSTM_NATIVE_HOST_DEVICE inline void philox_next_key(std::uint32_t& k0, std::uint32_t& k1) {
  k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
}

// 128 bits: a Philox counter, or its output.
struct PhiloxBlock {
  std::uint32_t word[4];
};

// Philox4x32-10: the output block of `counter` under the key (k0, k1).
LSTM_NATIVE_HOST_DEVICE inline PhiloxBlock philox4x32_10(PhiloxBlock counter, std::uint32_t k0, std::uint32_t k1) {
  for (int round = 0; round < kPhiloxRounds; ++round) {
    philox_round(counter.word[0], counter.word[1], counter.word[2], counter.word[3], k0, k1);
    philox_next_key(k0, k1);
  }
  return counter;
}

// The counter of element block `block` (elements 8·block .. 8·block+7) of `stream`.
LSTM_NATIVE_HOST_DEVICE inline PhiloxBlock mask_counter(std::uint64_t block, MaskStream stream) {
  return {{std::uint32_t(block), std::uint32_t(block >> 32), std::uint32_t(stream), 0u}};
}

// The 16-bit uniform of element `lane` (0..7) of an output block: half lane mod 2 (low half first) of word
// lane / 2.
LSTM_NATIVE_HOST_DEVICE inline std::uint32_t mask_lane(std::uint32_t word, unsigned lane) {
  return (word >> (16 * (lane % 2))) & 0xFFFFu;
}

// The 16-bit uniform u(e) of element e of `stream` under `seed`: lane e mod 8 of
// philox4x32_10(mask_counter(e / 8, stream), key = {seed low, seed high}).
LSTM_NATIVE_HOST_DEVICE inline std::uint32_t philox_uniform16(std::uint64_t seed, MaskStream stream,
                                                              std::uint64_t element) {
  const PhiloxBlock out = philox4x32_10(mask_counter(element / 8, stream), std::uint32_t(seed), std::uint32_t(seed >> 32));
  const unsigned lane = unsigned(element % 8);
  // selects, not out.word[lane / 2]: a dynamic index would move `out` from registers to a GPU's local memory
  return mask_lane(lane < 2 ? out.word[0] : lane < 4 ? out.word[1] : lane < 6 ? out.word[2] : out.word[3], lane);
}

// The threshold of a rate: an element's 16-bit uniform u falls under it (is dropped, or zoned out) with
// probability rate.
inline std::uint32_t rate_threshold(double rate) { return static_cast<std::uint32_t>(rate * 65536.0 + 0.5); }

}  // namespace lstm_native::detail
