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
    const RhsMapper rhs(b, ldb);
    const ResMapper res(c, ldc);
    Eigen::internal::gemm_pack_rhs<T, Index, RhsMapper, Traits::nr, Eigen::ColMajor> pack_rhs;
    Eigen::internal::gebp_kernel<T, T, Index, ResMapper, Traits::mr, Traits::nr, false, false> gebp;
    std::vector<T, Eigen::aligned_allocator<T>> block_b(static_cast<std::size_t>(kc_ * std::min<Index>(nc_, n)));
    for (Index k2 = 0; k2 < k_; k2 += kc_) {  // the k blocks in order: each element of C sums as Eigen's would
      const Index actual_kc = std::min(k2 + kc_, k_) - k2;
      for (Index j2 = 0; j2 < n; j2 += nc_) {
        const Index actual_nc = std::min<Index>(j2 + nc_, n) - j2;
        pack_rhs(block_b.data(), rhs.getSubMapper(k2, j2), actual_kc, actual_nc);
        for (Index i2 = 0; i2 < m_; i2 += mc_)
          gebp(res.getSubMapper(i2, j2), block_a(i2, k2), block_b.data(), std::min(i2 + mc_, m_) - i2, actual_kc,
               actual_nc, T(1));
      }
    }
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
