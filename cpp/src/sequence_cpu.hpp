// Internals shared by the CPU forward and backward passes: matrix views, the training workspace's
// layout, the checks of a sequence call's arguments, and the parallel loop over batch rows.
#pragma once

#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "lstm_native/backward.hpp"
#include "lstm_native/forward.hpp"

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

// The training workspace, time-major (step t's B rows are contiguous):
//   x_tm   [T,B,I]    x transposed to time-major (backward reuses it for dx)
//   gates  [T,B,4H]   activated gates [i, f, g, o] of each step (backward turns them into dz)
//   h      [T+1,B,H]  h_0 .. h_T, the carried states (h_0 = h0)
//   c      [T+1,B,H]  c_0 .. c_T
template <class T>
struct WorkspaceLayout {
  T* x_tm;
  T* gates;
  T* h;
  T* c;
};

// Throws std::invalid_argument("<what> must be >= 1, got <value>") unless value >= 1.
void require_positive(const char* what, std::int64_t value);

// Element count of each part, and their sum; throws std::invalid_argument on overflow.
struct WorkspaceSizes {
  std::int64_t x_tm, gates, states, total;
};
WorkspaceSizes workspace_sizes(const CellConfig& config, std::int64_t batch, std::int64_t time);

template <class T>
WorkspaceLayout<T> workspace_layout(const CellConfig& config, std::int64_t batch, std::int64_t time,
                                    const Workspace<T>& workspace);

// B and T of a forward call, after checking every argument's shape against the config.
template <class T>
SequenceDims validate_forward(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                              const SequenceOutput<T>& out);

// Runs body(row) for every row in [0, rows) on the library's threads.
template <class Body>
void parallel_rows(std::int64_t rows, const Body& body) {
  const int threads = Eigen::nbThreads();
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && rows > 1)
  for (std::int64_t row = 0; row < rows; ++row) body(row);
}

// src [d0,d1,width] -> dst [d1,d0,width]: batch-first to time-major and back.
template <class T>
void swap_leading_axes(const T* src, std::int64_t d0, std::int64_t d1, std::int64_t width, T* dst);

// Whether step t of row b is a valid (unmasked) step.
inline bool valid_step(const std::uint8_t* mask, std::int64_t b, std::int64_t t, std::int64_t time) {
  return mask == nullptr || mask[b * time + t] != 0;
}

}  // namespace lstm_native::detail
