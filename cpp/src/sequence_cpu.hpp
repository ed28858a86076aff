// Internals shared by the CPU forward and backward passes: matrix views and the parallel loop over batch
// rows (the workspace's layout and the argument checks, which the CUDA backend shares, are in
// cpp/common/sequence_checks.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "lstm_native/backward.hpp"
#include "lstm_native/forward.hpp"
#include "lstm_native/threads.hpp"
#include "../common/sequence_checks.hpp"

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

// Chunk sizes: rows of a large GEMM's output, columns of a reduction over all steps, and batch rows whose
// whole recurrence one thread runs (batch rows are independent, so the recurrence needs no barrier; larger
// chunks for larger H amortize the repacking of U that each chunk's per-step GEMM does).
constexpr std::int64_t kGemmChunkRows = 256;
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

}  // namespace lstm_native::detail
