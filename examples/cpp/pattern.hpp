// Deterministic, well-scaled example values that Python recomputes (tests/test_cpp_consumer.py).
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

// 0.5 sin(seed + 0.37 k) for the k-th element.
inline std::vector<float> pattern(std::size_t n, float seed) {
  std::vector<float> values(n);
  for (std::size_t k = 0; k < n; ++k) values[k] = 0.5f * std::sin(seed + 0.37f * static_cast<float>(k));
  return values;
}
