#include "sequence_cpu.hpp"

#include <algorithm>

namespace lstm_native::detail {

template <class T>
void swap_leading_axes(const T* src, std::int64_t d0, std::int64_t d1, std::int64_t width, T* dst) {
  parallel_chunks(d1, 1, double(d0 * width), [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t j = first; j < last; ++j)
      for (std::int64_t i = 0; i < d0; ++i)
        std::copy(src + (i * d1 + j) * width, src + (i * d1 + j + 1) * width, dst + (j * d0 + i) * width);
  });
}

template void swap_leading_axes(const float*, std::int64_t, std::int64_t, std::int64_t, float*);
template void swap_leading_axes(const double*, std::int64_t, std::int64_t, std::int64_t, double*);

}  // namespace lstm_native::detail
