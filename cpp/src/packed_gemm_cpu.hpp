// C += A B with A packed once for many products. The recurrence multiplies the same U by a new h_{t-1}
// (forward) or dz_t (backward) at every step; Eigen's products repack U each time, which took a sixth of a
// training step at B=64, T=100, I=128, H=256. This class packs A once and runs Eigen's own GEMM kernel
// (gebp) and RHS packing exactly as Eigen 3.4's sequential general_matrix_matrix_product does.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

namespace lstm_native::detail {

// A (m×k) stored with LhsOrder (Eigen::ColMajor or Eigen::RowMajor), leading dimension lda; B (k×n) and
// C (m×n) column-major with leading dimensions ldb and ldc. max_n: the widest n to come (sets the blocking).
template <class T, int LhsOrder>
class PackedLhsGemm {
 public:
  PackedLhsGemm(const T* a, std::int64_t lda, std::int64_t m, std::int64_t k, std::int64_t max_n)
      : m_(m), k_(k), kc_(k), mc_(m), nc_(max_n) {
    Eigen::internal::computeProductBlockingSizes<T, T>(kc_, mc_, nc_, Index(1));
    const LhsMapper lhs(a, lda);
    Eigen::internal::gemm_pack_lhs<T, Index, LhsMapper, Traits::mr, Traits::LhsProgress,
                                   typename Traits::LhsPacket4Packing, LhsOrder>
        pack_lhs;
    packed_.resize(static_cast<std::size_t>(blocks(m_, mc_) * blocks(k_, kc_) * kc_ * mc_));
    for (Index i2 = 0; i2 < m_; i2 += mc_)
      for (Index k2 = 0; k2 < k_; k2 += kc_)
        pack_lhs(block_a(i2, k2), lhs.getSubMapper(i2, k2), std::min(k2 + kc_, k_) - k2, std::min(i2 + mc_, m_) - i2);
  }

  // C += A B for B (k×n) at b and C (m×n) at c.
  void multiply_add(const T* b, std::int64_t ldb, std::int64_t n, T* c, std::int64_t ldc) const {
    std::vector<T, Eigen::aligned_allocator<T>> block_b(rhs_scratch_size(n));
    multiply_add(b, ldb, n, c, ldc, block_b.data());
  }

  // The elements of the scratch that multiply_add packs B into, for n columns.
  std::size_t rhs_scratch_size(std::int64_t n) const { return static_cast<std::size_t>(kc_ * std::min<Index>(nc_, n)); }

  // As above, B packed into block_b (rhs_scratch_size(n) elements, aligned as Eigen::aligned_allocator
  // aligns): allocates nothing.
  void multiply_add(const T* b, std::int64_t ldb, std::int64_t n, T* c, std::int64_t ldc, T* block_b) const {
    const RhsMapper rhs(b, ldb);
    const ResMapper res(c, ldc);
    Eigen::internal::gemm_pack_rhs<T, Index, RhsMapper, Traits::nr, Eigen::ColMajor> pack_rhs;
    Eigen::internal::gebp_kernel<T, T, Index, ResMapper, Traits::mr, Traits::nr, false, false> gebp;
    for (Index k2 = 0; k2 < k_; k2 += kc_) {  // the k blocks in order: each element of C sums as Eigen's would
      const Index actual_kc = std::min(k2 + kc_, k_) - k2;
      for (Index j2 = 0; j2 < n; j2 += nc_) {
        const Index actual_nc = std::min<Index>(j2 + nc_, n) - j2;
        pack_rhs(block_b, rhs.getSubMapper(k2, j2), actual_kc, actual_nc);
        for (Index i2 = 0; i2 < m_; i2 += mc_)
          gebp(res.getSubMapper(i2, j2), block_a(i2, k2), block_b, std::min(i2 + mc_, m_) - i2, actual_kc,
               actual_nc, T(1));
      }
    }
  }

  // C += A B for the given columns of B and C only (ascending indices in [0, n), `count` of them), each
  // column bit for bit as multiply_add over all n columns computes it. Eigen's kernel takes the columns in
  // groups of nr = 4 and sums the k terms of a grouped column in another order (two accumulators, even and
  // odd k) than those of the last n % 4 columns (one), so the gathered columns keep their kind: the
  // grouped ones first, padded with zero columns to a multiple of 4, then the others. b_buf and c_buf are
  // scratch the caller keeps between calls.
  void multiply_add_columns(const T* b, std::int64_t ldb, std::int64_t n, T* c, std::int64_t ldc,
                            const std::int64_t* columns, std::int64_t count, std::vector<T>& b_buf,
                            std::vector<T>& c_buf) const {
    if (count == 0) return;
    // All columns, or column blocks (nc) that would cut a group of 4 elsewhere than the full product does.
    if (count == n || (nc_ % Traits::nr != 0 && nc_ < n)) return multiply_add(b, ldb, n, c, ldc);
    const Index grouped_end = n / Traits::nr * Traits::nr;
    const Index grouped = std::lower_bound(columns, columns + count, grouped_end) - columns;
    const Index padded = (grouped + Traits::nr - 1) / Traits::nr * Traits::nr;
    const Index width = padded + (count - grouped);
    b_buf.resize(static_cast<std::size_t>(k_ * width));
    c_buf.resize(static_cast<std::size_t>(m_ * width));
    std::fill(b_buf.data() + grouped * k_, b_buf.data() + padded * k_, T(0));  // the padding columns
    auto slot = [&](Index i) { return i < grouped ? i : padded + (i - grouped); };
    for (Index i = 0; i < count; ++i) {
      std::copy(b + columns[i] * ldb, b + columns[i] * ldb + k_, b_buf.data() + slot(i) * k_);
      std::copy(c + columns[i] * ldc, c + columns[i] * ldc + m_, c_buf.data() + slot(i) * m_);
    }
    multiply_add(b_buf.data(), k_, width, c_buf.data(), m_);
    for (Index i = 0; i < count; ++i)
      std::copy(c_buf.data() + slot(i) * m_, c_buf.data() + (slot(i) + 1) * m_, c + columns[i] * ldc);
  }

 private:
  using Index = Eigen::Index;
  using Traits = Eigen::internal::gebp_traits<T, T>;
  using LhsMapper = Eigen::internal::const_blas_data_mapper<T, Index, LhsOrder>;
  using RhsMapper = Eigen::internal::const_blas_data_mapper<T, Index, Eigen::ColMajor>;
  using ResMapper = Eigen::internal::blas_data_mapper<T, Index, Eigen::ColMajor, Eigen::Unaligned, 1>;

  static Index blocks(Index size, Index block) { return (size + block - 1) / block; }
  // The packed block of rows [i2, i2 + mc) and columns [k2, k2 + kc) of A.
  T* block_a(Index i2, Index k2) { return packed_.data() + (i2 / mc_ * blocks(k_, kc_) + k2 / kc_) * kc_ * mc_; }
  const T* block_a(Index i2, Index k2) const { return const_cast<PackedLhsGemm*>(this)->block_a(i2, k2); }

  Index m_, k_, kc_, mc_, nc_;
  std::vector<T, Eigen::aligned_allocator<T>> packed_;
};

}  // namespace lstm_native::detail
