// Internals shared by the CPU forward and backward passes: matrix views and the parallel loop over batch
// rows (the workspace's layout and the argument checks, which the CUDA backend shares, are in
// cpp/common/sequence_checks.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "lstm_native/backward.hpp"
#include "lstm_native/forward.hpp"
#include "lstm_native/threads.hpp"
#include "../common/sequence_checks.hpp"
#include "packed_gemm_cpu.hpp"

namespace lstm_native::detail {

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixMap = Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using ConstMatrixMap = Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>>;

// rows × cols row-major matrix at `data`, consecutive rows `row_stride` elements apart.
template <class T>
MatrixMap<T> matrix(T* data, std::int64_t rows, std::int64_t cols, std::int64_t row_stride) {
  return MatrixMap<T>(data, rows, cols, Eigen::OuterStride<>(row_stride));
}
template <class T>
MatrixMap<T> matrix(T* data, std::int64_t rows, std::int64_t cols) {
  return matrix(data, rows, cols, cols);
}
template <class T>
ConstMatrixMap<T> matrix(const T* data, std::int64_t rows, std::int64_t cols, std::int64_t row_stride) {
  return ConstMatrixMap<T>(data, rows, cols, Eigen::OuterStride<>(row_stride));
}
template <class T>
ConstMatrixMap<T> matrix(const T* data, std::int64_t rows, std::int64_t cols) {
  return matrix(data, rows, cols, cols);
}

// Threading. Eigen runs single-threaded (EIGEN_DONT_PARALLELIZE): its parallel GEMM busy-waits between
// threads, which collapses when another process holds a core. The library splits work itself into chunks
// whose bounds depend only on the problem's shape, never on the thread count, so every chunk computes the
// same floating-point operations whatever the number of threads: results are bitwise identical for any
// thread count.

// Below this much work (multiply-adds, or elements copied) a call runs on one thread: starting and joining
// threads would cost more than they save, and far more while another process holds the other cores.
constexpr double kMinParallelWork = double(1 << 22);

// Runs body(begin, end) over [0, count) cut into chunks of `chunk` items, the chunks spread over the
// library's threads when the whole job (count × item_work) is worth it. Which thread runs a chunk never
// changes what the chunk computes.
template <class Body>
void parallel_chunks(std::int64_t count, std::int64_t chunk, double item_work, const Body& body) {
  const std::int64_t chunks = (count + chunk - 1) / chunk;
  const int threads = get_num_threads();
  const bool parallel = threads > 1 && chunks > 1 && double(count) * item_work >= kMinParallelWork;
#pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
  for (std::int64_t k = 0; k < chunks; ++k) body(k * chunk, std::min(count, (k + 1) * chunk));
}

// Runs body(bounds[k], bounds[k + 1]) for every k, the ranges spread over the library's threads when the
// whole job (`work` multiply-adds) is worth it.
template <class Body>
void parallel_ranges(const std::vector<std::int64_t>& bounds, double work, const Body& body) {
  const std::int64_t ranges = std::int64_t(bounds.size()) - 1;
  const int threads = get_num_threads();
  const bool parallel = threads > 1 && ranges > 1 && work >= kMinParallelWork;
#pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
  for (std::int64_t k = 0; k < ranges; ++k) body(bounds[k], bounds[k + 1]);
}

// Chunk sizes: columns of a reduction over all steps, and batch rows whose whole recurrence one thread runs
// (batch rows are independent, so the recurrence needs no barrier). The products of rows by the weights cut
// their rows themselves (RowsProduct).
// A reduction Aᵀ dZ over all T·B rows repacks A for every chunk of columns: two chunks (one per core of a
// 2-core machine), at least 64 columns wide. At H=256, 64-column chunks spent 17% of a training step in
// that repacking.
inline std::int64_t reduction_chunk_columns(std::int64_t columns) {
  return std::max<std::int64_t>(64, (columns / 2 + 15) / 16 * 16);
}
// Recurrence chunks: 16 rows (32 for H >= 256, whose per-step products want taller blocks), but at most half
// the batch (in multiples of 4 rows) so that a small batch still splits in two; U is packed once per call,
// so a smaller chunk costs little.
inline std::int64_t recurrence_chunk_rows(std::int64_t batch, std::int64_t hidden_size) {
  const std::int64_t half = (batch / 2 + 3) / 4 * 4;
  return std::max<std::int64_t>(4, std::min<std::int64_t>(hidden_size < 256 ? 16 : 32, half));
}

// The batch-row chunks of the recurrence over steps [begin, end): `chunk` rows each; with a mask, as many
// chunks whose bounds move so that each holds about as many valid steps (only those cost: with right-padded
// rows, even chunks would leave one thread waiting for another). The bounds stay multiples of 4, so that
// Eigen's kernel takes each row's column in the same kind of group as in even chunks (multiply_add_columns).
inline std::vector<std::int64_t> recurrence_row_bounds(const std::uint8_t* mask, std::int64_t batch,
                                                       std::int64_t time, std::int64_t chunk, std::int64_t begin,
                                                       std::int64_t end) {
  std::vector<std::int64_t> bounds;
  for (std::int64_t first = 0; first < batch; first += chunk) bounds.push_back(first);
  bounds.push_back(batch);
  const std::int64_t chunks = std::int64_t(bounds.size()) - 1;
  if (mask == nullptr || chunks == 1) return bounds;
  constexpr std::int64_t kGroup = 4;
  std::vector<std::int64_t> before{0};  // before[g]: the valid steps of the groups of 4 rows before group g
  for (std::int64_t group = 0; group < batch; group += kGroup) {
    std::int64_t valid = 0;
    for (std::int64_t b = group; b < std::min(batch, group + kGroup); ++b)
      for (std::int64_t t = begin; t < end; ++t) valid += mask[b * time + t] != 0;
    before.push_back(before.back() + valid);
  }
  const std::int64_t total = before.back();
  if (total == 0) return bounds;
  std::vector<std::int64_t> balanced{0};
  for (std::int64_t k = 1; k < chunks; ++k) {  // after the first group with k/chunks of the valid steps before it
    const auto share = std::lower_bound(before.begin(), before.end(), (total * k + chunks - 1) / chunks);
    const std::int64_t row = std::int64_t(share - before.begin()) * kGroup;
    if (row > balanced.back() && row < batch) balanced.push_back(row);
  }
  balanced.push_back(batch);
  return balanced;
}

// Sequence calls run their steps in chunks: between two chunks the calling thread checks for cancellation
// (threads.hpp), and inference computes the input projection x W of one chunk at a time, so that its gates
// take B·steps·4H elements, not B·T·4H. A chunk is about kChunkWork multiply-adds (some milliseconds on one
// core, so a cancellation is honoured quickly and the extra fork/join is cheap) and at most kChunkGates gate
// elements. Chunks depend only on the shape: results stay identical for any thread count.
constexpr double kChunkWork = double(1 << 28);
constexpr double kChunkGates = double(1 << 22);

// Steps [begin, end) of one chunk; the gates buffer the chunk reads starts at step gates_from (0 where it
// holds every step, as training's workspace does).
struct StepChunk {
  std::int64_t begin, end, gates_from;
};

// Steps per chunk for a batch of `batch` rows, each step costing `row_step_work` multiply-adds per row.
inline std::int64_t steps_per_chunk(std::int64_t batch, std::int64_t time, double row_step_work,
                                    std::int64_t hidden_size) {
  const double by_work = kChunkWork / (double(batch) * row_step_work);
  const double by_gates = kChunkGates / (double(batch) * 4.0 * double(hidden_size));
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::min({double(time), by_work, by_gates})));
}

// The compile-time variant of the cell: peephole kind, the output peephole's source, and zoneout on or off.
template <Peephole kPeephole, OutputPeepholeSource kSource, bool kZoneout>
struct Variant {
  static constexpr bool diagonal = kPeephole == Peephole::Diagonal;
  static constexpr bool full = kPeephole == Peephole::Full;
  static constexpr bool current = kSource == OutputPeepholeSource::Current;
  static constexpr bool zoneout = kZoneout;
  // Only a full output peephole on c_t needs a GEMM between computing c_t and computing o_t.
  static constexpr bool split_pass = full && current;
};

template <bool kZoneout, class Fn>
void dispatch_peephole(const CellConfig& config, const Fn& fn) {
  constexpr auto kCur = OutputPeepholeSource::Current;
  constexpr auto kPrev = OutputPeepholeSource::Previous;
  const bool current = config.output_peephole_source == kCur;
  switch (config.peephole) {
    case Peephole::None:  // the source does not matter without peepholes
      return fn(Variant<Peephole::None, kCur, kZoneout>{});
    case Peephole::Diagonal:
      return current ? fn(Variant<Peephole::Diagonal, kCur, kZoneout>{})
                     : fn(Variant<Peephole::Diagonal, kPrev, kZoneout>{});
    case Peephole::Full:
      return current ? fn(Variant<Peephole::Full, kCur, kZoneout>{}) : fn(Variant<Peephole::Full, kPrev, kZoneout>{});
  }
}

// Calls fn(Variant<...>{}) for the config's variant, with or without zoneout.
template <class Fn>
void dispatch_variant(const CellConfig& config, bool zoneout, const Fn& fn) {
  if (zoneout)
    dispatch_peephole<true>(config, fn);
  else
    dispatch_peephole<false>(config, fn);
}

// src [d0,d1,width] -> dst [d1,d0,width]: batch-first to time-major and back.
template <class T>
void swap_leading_axes(const T* src, std::int64_t d0, std::int64_t d1, std::int64_t width, T* dst);

// Whether step t of row b is a valid (unmasked) step.
inline bool valid_step(const std::uint8_t* mask, std::int64_t b, std::int64_t t, std::int64_t time) {
  return mask == nullptr || mask[b * time + t] != 0;
}

// Variable-length batches. The gates of a masked step are never read (its state is carried, its dz is 0),
// so the products over the rows of all steps (x W, dx = dZ Wᵀ, the reductions over all steps) compute only
// the rows of valid steps, and the per-step products only the batch rows whose step is valid: a batch costs
// its real length.

// The rows of valid steps in a buffer of `count` rows, row r being step row_step(r) = {b, t}. `all`: every
// step is valid (no mask, or no masked step among these rows); `rows` lists them, ascending, otherwise.
struct ValidRows {
  bool all = true;
  std::vector<std::int64_t> rows;
};
template <class RowStep>
ValidRows valid_rows(const std::uint8_t* mask, std::int64_t count, std::int64_t time, const RowStep& row_step) {
  ValidRows valid;
  if (mask == nullptr) return valid;
  for (std::int64_t r = 0; r < count; ++r) {
    const auto [b, t] = row_step(r);
    if (valid_step(mask, b, t, time)) valid.rows.push_back(r);
  }
  valid.all = std::int64_t(valid.rows.size()) == count;
  if (valid.all) valid.rows.clear();
  return valid;
}
// Rows t·B + b of a time-major [T·B] buffer.
inline ValidRows time_major_valid_rows(const std::uint8_t* mask, std::int64_t batch, std::int64_t time) {
  return valid_rows(mask, time * batch, time, [&](std::int64_t r) { return std::pair{r % batch, r / batch}; });
}

// Rows rows[0..count) of src [.., width] one after another at dst. dst may be src itself when the rows are
// ascending: each row then moves to an earlier or the same place, after the rows before it have moved.
template <class T>
void gather_rows(const T* src, std::int64_t width, const std::int64_t* rows, std::int64_t count, T* dst) {
  for (std::int64_t k = 0; k < count; ++k)
    std::copy(src + rows[k] * width, src + (rows[k] + 1) * width, dst + k * width);
}

// out[r] = in[r] M (+ bias) for the valid rows r of in [rows, K] and out [rows, N] (row-major), zero in the
// other rows of out; with in_compact, in holds the valid rows one after another. M is packed once (Mᵀ is the
// left factor of the column-major view outᵀ = Mᵀ inᵀ; MOrder: how Mᵀ lies at m, leading dimension ld) and
// reused by every call: a product per call, or per chunk of rows, would pack all of M again each time (the
// inference forward calls once per chunk of a few steps, and at I=512, H=512 repacking W cost as much as
// multiplying by it). The rows go in blocks (block_rows) spread over the threads, chosen by the row count only.
template <class T, int MOrder>
class RowsProduct {
 public:
  RowsProduct(const T* m, std::int64_t ld, std::int64_t K, std::int64_t N, const T* bias)
      : K_(K), N_(N), bias_(bias), packed_(m, ld, N, K, kRows) {}

  void operator()(const T* in, std::int64_t rows, const ValidRows& valid, T* out, bool in_compact = false) const {
    const std::int64_t count = valid.all ? rows : std::int64_t(valid.rows.size());
    parallel_chunks(count, block_rows(count), double(K_ * N_), [&](std::int64_t first, std::int64_t last) {
      const std::int64_t n = last - first;
      if (valid.all) return multiply(in + first * K_, n, out + first * N_);
      std::vector<T> in_valid, out_valid(static_cast<std::size_t>(n * N_));
      const T* in_block = in + first * K_;
      if (!in_compact) {
        in_valid.resize(static_cast<std::size_t>(n * K_));
        gather_rows(in, K_, valid.rows.data() + first, n, in_valid.data());
        in_block = in_valid.data();
      }
      multiply(in_block, n, out_valid.data());
      for (std::int64_t k = 0; k < n; ++k)
        std::copy(out_valid.data() + k * N_, out_valid.data() + (k + 1) * N_, out + valid.rows[first + k] * N_);
    });
    if (valid.all) return;
    std::int64_t next = 0;  // the other rows lie between consecutive valid ones (valid.rows is ascending)
    for (std::size_t k = 0; k <= valid.rows.size(); ++k) {
      const std::int64_t end = k < valid.rows.size() ? valid.rows[k] : rows;
      std::fill(out + next * N_, out + end * N_, T(0));
      next = end + 1;
    }
  }

 private:
  static constexpr std::int64_t kRows = 64;  // a multiple of 4: Eigen's kernel takes the rows 4 at a time

  // Rows per block: at most kRows, in an even number of blocks of about the same size, so that two threads
  // share a short call evenly (inference's chunk of 3 steps at B=64 made 3 blocks of 64: one thread idled
  // for a third of its projection).
  static std::int64_t block_rows(std::int64_t count) {
    const std::int64_t blocks = std::max<std::int64_t>(2, 2 * ((count + 2 * kRows - 1) / (2 * kRows)));
    return std::max<std::int64_t>(4, ((count + blocks - 1) / blocks + 3) / 4 * 4);
  }

  // n contiguous rows: out = bias + in M
  void multiply(const T* in, std::int64_t n, T* out) const {
    for (std::int64_t r = 0; r < n; ++r) {
      T* row = out + r * N_;
      if (bias_ != nullptr)
        std::copy(bias_, bias_ + N_, row);
      else
        std::fill(row, row + N_, T(0));
    }
    packed_.multiply_add(in, K_, n, out, N_);
  }

  std::int64_t K_, N_;
  const T* bias_;
  PackedLhsGemm<T, MOrder> packed_;
};

// The batch rows of [first, last) whose step t is valid, as offsets from first (for multiply_add_columns).
inline void active_rows(const std::uint8_t* mask, std::int64_t t, std::int64_t time, std::int64_t first,
                        std::int64_t last, std::vector<std::int64_t>& offsets) {
  offsets.clear();
  for (std::int64_t b = first; b < last; ++b)
    if (valid_step(mask, b, t, time)) offsets.push_back(b - first);
}

}  // namespace lstm_native::detail
