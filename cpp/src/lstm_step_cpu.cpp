// Streaming steps on the CPU (lstm_native/step.hpp): the weights are stacked and packed once, so that a step is
// one product z = b + [x_t, h_{t-1}, c_{t-1}] [W; U; P] (c_{t-1} and P only with full peepholes that peek at it),
// then the same elementwise passes as the sequence calls (pointwise_cpu.hpp), on the calling thread, in memory
// sized at construction.
#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "lstm_native/forward.hpp"
#include "lstm_native/step.hpp"
#include "packed_gemm_cpu.hpp"
#include "pointwise_cpu.hpp"
#include "sequence_cpu.hpp"

namespace lstm_native {
namespace detail {
namespace {

template <class T>
using AlignedVector = std::vector<T, Eigen::aligned_allocator<T>>;

// [W; U; P] as the rows [K, 4H] of one row-major matrix, packed for zᵀ += [W; U; P]ᵀ [x, h, c]ᵀ (the
// column-major view of a step) of up to `batch` rows. P's row j holds row j of P_i, P_f (and P_o where the
// output gate peeks at c_{t-1}) in the blocks of their gates, zero elsewhere.
template <class T, class V>
PackedLhsGemm<T, Eigen::ColMajor> pack_stacked_weights(const CellConfig& config, const Weights<T>& weights, std::int64_t K,
                                                  std::int64_t batch) {
  const std::int64_t I = config.input_size, H = config.hidden_size, G = 4 * H, Ho = output_size(config);
  std::vector<T> stacked(static_cast<std::size_t>(K * G), T(0));
  std::copy(weights.W.data, weights.W.data + I * G, stacked.begin());
  std::copy(weights.U.data, weights.U.data + Ho * G, stacked.begin() + I * G);
  if constexpr (V::full) {
    T* P = stacked.data() + (I + Ho) * G;
    for (std::int64_t k : {kPeepI, kPeepF, kPeepO}) {
      if (k == kPeepO && V::current) continue;
      const T* P_k = weights.peephole.data + k * H * H;
      for (std::int64_t j = 0; j < H; ++j) std::copy(P_k + j * H, P_k + (j + 1) * H, P + j * G + kPeepholeGate[k] * H);
    }
  }
  return {stacked.data(), G, G, K, batch};
}

template <class T, class V>
class StepKernelOf final : public StepKernel<T> {
 public:
  StepKernelOf(const CellConfig& config, const Weights<T>& weights, std::int64_t batch,
               const Regularization& regularization)
      : config_(config),
        B_(batch),
        I_(config.input_size),
        H_(config.hidden_size),
        Ho_(output_size(config)),
        K_(I_ + Ho_ + (V::full ? H_ : 0)),
        gates_(pack_stacked_weights<T, V>(config, weights, K_, batch)),
        bias_(weights.b.empty() ? std::vector<T>(4 * H_, T(0)) : std::vector<T>(weights.b.data, weights.b.data + 4 * H_)),
        peephole_(V::diagonal ? std::vector<T>(weights.peephole.data, weights.peephole.data + 3 * H_) : std::vector<T>()),
        inputs_(B_ * K_, T(0)),
        z_(B_ * 4 * H_, T(0)),
        c_prev_(B_ * H_, T(0)),
        m_(config.projection_size > 0 ? B_ * H_ : 0, T(0)),
        h_projected_(m_.empty() ? 0 : B_ * Ho_, T(0)),
        d_h_(V::zoneout ? H_ : 0, T(regularization.zoneout_h)),
        d_c_(V::zoneout ? H_ : 0, T(regularization.zoneout_c)) {
    if constexpr (V::split_pass) output_peephole_.emplace(weights.peephole.data + kPeepO * H_ * H_, H_, H_, H_, B_);
    if (config.projection_size > 0) projection_.emplace(weights.projection.data, Ho_, Ho_, H_, B_);
    std::size_t scratch = gates_.rhs_scratch_size(B_);
    if (output_peephole_) scratch = std::max(scratch, output_peephole_->rhs_scratch_size(B_));
    if (projection_) scratch = std::max(scratch, projection_->rhs_scratch_size(B_));
    rhs_scratch_.resize(scratch);
  }

  void step(const T* x, const std::uint8_t* mask, T* h, T* c, T* y) noexcept override {
    const std::int64_t B = B_, I = I_, H = H_, G = 4 * H, Ho = Ho_, K = K_;
    const T* p = peephole_.data();
    auto valid = [&](std::int64_t b) { return mask == nullptr || mask[b] != 0; };
    for (std::int64_t b = 0; b < B; ++b) {  // the product's input rows [x_t, h_{t-1} (, c_{t-1})], and z = b
      T* row = inputs_.data() + b * K;
      std::copy(x + b * I, x + (b + 1) * I, row);
      std::copy(h + b * Ho, h + (b + 1) * Ho, row + I);
      if constexpr (V::full) std::copy(c + b * H, c + (b + 1) * H, row + I + Ho);
      std::copy(bias_.begin(), bias_.end(), z_.begin() + b * G);
    }
    std::copy(c, c + B * H, c_prev_.begin());
    gates_.multiply_add(inputs_.data(), K, B, z_.data(), G, rhs_scratch_.data());
    for (std::int64_t b = 0; b < B; ++b)  // c_t, in place of c_{t-1}
      if (valid(b)) cell_forward_row<T, V::diagonal>(z_.data() + b * G, c_prev_.data() + b * H, p, c + b * H, H);
    if constexpr (V::split_pass)  // z_o += c_t P_o
      output_peephole_->multiply_add(c, H, B, z_.data() + kO * H, G, rhs_scratch_.data());
    const bool projected = projection_.has_value();
    for (std::int64_t b = 0; b < B; ++b) {
      if (!valid(b)) continue;
      const T* c_src = (V::current ? c : c_prev_.data()) + b * H;
      const ZoneoutRow<T> zoneout{d_h_.data(), d_c_.data(), inputs_.data() + b * K + I, c_prev_.data() + b * H, nullptr};
      T* out_row = projected ? m_.data() + b * H : h + b * Ho;
      output_forward_row<T, V::diagonal, V::zoneout>(z_.data() + b * G, c_src, c + b * H, p, out_row, zoneout, H);
    }
    if (projected) {  // h_t = m_t W_hr, for the valid rows
      std::fill(h_projected_.begin(), h_projected_.end(), T(0));
      projection_->multiply_add(m_.data(), H, B, h_projected_.data(), Ho, rhs_scratch_.data());
      for (std::int64_t b = 0; b < B; ++b)
        if (valid(b)) std::copy(h_projected_.data() + b * Ho, h_projected_.data() + (b + 1) * Ho, h + b * Ho);
    }
    if (y == nullptr) return;
    for (std::int64_t b = 0; b < B; ++b) {
      if (!valid(b) && config_.zero_output_for_mask)
        std::fill(y + b * Ho, y + (b + 1) * Ho, T(0));
      else
        std::copy(h + b * Ho, h + (b + 1) * Ho, y + b * Ho);
    }
  }

 private:
  CellConfig config_;
  std::int64_t B_, I_, H_, Ho_, K_;
  PackedLhsGemm<T, Eigen::ColMajor> gates_;  // [W; U; P], packed
  std::vector<T> bias_, peephole_;
  std::optional<PackedLhsGemm<T, Eigen::ColMajor>> output_peephole_, projection_;
  std::vector<T> inputs_, z_, c_prev_, m_, h_projected_, d_h_, d_c_;
  AlignedVector<T> rhs_scratch_;
};

}  // namespace
}  // namespace detail

namespace detail {

template <class T>
std::unique_ptr<StepKernel<T>> make_step_kernel(const CellConfig& config, const Weights<T>& weights,
                                                std::int64_t batch, const Regularization& regularization) {
  validate(config, regularization);
  validate(config, weights);
  if (batch < 1) throw std::invalid_argument("batch: expected at least 1 stream, got " + std::to_string(batch));
  std::unique_ptr<StepKernel<T>> kernel;
  dispatch_variant(config, regularization.zoneout(), [&](auto variant) {
    kernel = std::make_unique<StepKernelOf<T, decltype(variant)>>(config, weights, batch, regularization);
  });
  return kernel;
}

}  // namespace detail

template <class T>
void forward_step(const CellConfig& config, const Weights<T>& weights, Tensor<const T> x, Tensor<const T> h_prev,
                  Tensor<const T> c_prev, Tensor<T> h, Tensor<T> c, const Regularization& regularization) {
  validate(config);
  const std::int64_t I = config.input_size, H = config.hidden_size, Ho = output_size(config);
  if (x.empty() || x.shape.size() != 2 || x.shape[0] < 1 || x.shape[1] != I)
    throw std::invalid_argument("x: expected shape [B, " + std::to_string(I) + "] with B >= 1, got " +
                                (x.empty() ? std::string("nothing") : shape_to_string(x.shape)));
  const std::int64_t B = x.shape[0];
  require_shape("h_prev", h_prev, {B, Ho});
  require_shape("c_prev", c_prev, {B, H});
  require_shape("h", h, {B, Ho});
  require_shape("c", c, {B, H});
  const auto kernel = detail::make_step_kernel(config, weights, B, regularization);
  std::copy(h_prev.data, h_prev.data + B * Ho, h.data);
  std::copy(c_prev.data, c_prev.data + B * H, c.data);
  kernel->step(x.data, nullptr, h.data, c.data, nullptr);
}

#define LSTM_NATIVE_INSTANTIATE_STEP(T)                                                                          \
  template std::unique_ptr<detail::StepKernel<T>> detail::make_step_kernel<T>(                                  \
      const CellConfig&, const Weights<T>&, std::int64_t, const Regularization&);                                \
  template void forward_step<T>(const CellConfig&, const Weights<T>&, Tensor<const T>, Tensor<const T>,         \
                                Tensor<const T>, Tensor<T>, Tensor<T>, const Regularization&);
LSTM_NATIVE_INSTANTIATE_STEP(float)
LSTM_NATIVE_INSTANTIATE_STEP(double)
#undef LSTM_NATIVE_INSTANTIATE_STEP

}  // namespace lstm_native
