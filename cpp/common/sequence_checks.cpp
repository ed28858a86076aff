#include "sequence_checks.hpp"

#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>

namespace lstm_native {
namespace detail {
namespace {

std::int64_t checked_product(std::initializer_list<std::int64_t> factors) {
  std::int64_t product = 1;
  for (std::int64_t f : factors) {
    if (f != 0 && product > std::numeric_limits<std::int64_t>::max() / f)
      throw std::invalid_argument("sizes: the workspace's element count overflows a 64-bit integer");
    product *= f;
  }
  return product;
}

std::int64_t checked_sum(std::initializer_list<std::int64_t> terms) {
  std::int64_t sum = 0;
  for (std::int64_t term : terms) {
    if (sum > std::numeric_limits<std::int64_t>::max() - term)
      throw std::invalid_argument("sizes: the workspace's element count overflows a 64-bit integer");
    sum += term;
  }
  return sum;
}

}  // namespace

void require_positive(const char* what, std::int64_t value) {
  if (value < 1) throw std::invalid_argument(std::string(what) + " must be >= 1, got " + std::to_string(value));
}

WorkspaceSizes workspace_sizes(const CellConfig& config, std::int64_t batch, std::int64_t time,
                               const Regularization& regularization) {
  validate(config);
  validate(config, regularization);
  require_positive("batch (B)", batch);
  require_positive("time (T)", time);
  const std::int64_t I = config.input_size, H = config.hidden_size;
  WorkspaceSizes sizes{};
  sizes.x_tm = checked_product({time, batch, I});
  sizes.gates = checked_product({time, batch, 4, H});
  sizes.h = checked_product({checked_sum({time, 1}), batch, output_size(config)});
  sizes.c = checked_product({checked_sum({time, 1}), batch, H});
  sizes.c_new = regularization.zoneout() ? checked_product({time, batch, H}) : 0;
  sizes.m = config.projection_size > 0 ? checked_product({time, batch, H}) : 0;
  sizes.total = checked_sum({sizes.x_tm, sizes.gates, sizes.h, sizes.c, sizes.c_new, sizes.m});
  return sizes;
}

template <class T>
WorkspaceLayout<T> workspace_layout(const CellConfig& config, std::int64_t batch, std::int64_t time,
                                    const Regularization& regularization, const Workspace<T>& workspace) {
  const WorkspaceSizes sizes = workspace_sizes(config, batch, time, regularization);
  if (workspace.data == nullptr) throw std::invalid_argument("workspace: required");
  if (workspace.size < sizes.total)
    throw std::invalid_argument("workspace: expected at least " + std::to_string(sizes.total) + " elements, got " +
                                std::to_string(workspace.size));
  WorkspaceLayout<T> layout{};
  layout.x_tm = workspace.data;
  layout.gates = layout.x_tm + sizes.x_tm;
  layout.h = layout.gates + sizes.gates;
  layout.c = layout.h + sizes.h;
  layout.c_new = sizes.c_new ? layout.c + sizes.c : nullptr;
  layout.m = sizes.m ? layout.c + sizes.c + sizes.c_new : nullptr;
  return layout;
}

template <class T>
SequenceDims validate_forward(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                              const SequenceOutput<T>& out, SequenceOutputs y) {
  validate(config, weights);
  if (in.x.empty()) throw std::invalid_argument("x: required");
  const SequenceDims dims = sequence_dims(config, in.x.shape);
  const std::int64_t H = config.hidden_size, Ho = output_size(config);
  const std::int64_t B = dims.batch, T_ = dims.time;
  require_shape_or_empty("h0", in.h0, {B, Ho});
  require_shape_or_empty("c0", in.c0, {B, H});
  require_shape_or_empty("mask", in.mask, {B, T_});
  if (y == SequenceOutputs::Required)
    require_shape("y", out.y, {B, T_, Ho});
  else
    require_shape_or_empty("y", out.y, {B, T_, Ho});
  require_shape_or_empty("h_n", out.h_n, {B, Ho});
  require_shape_or_empty("c_n", out.c_n, {B, H});
  return dims;
}

template <class T>
void validate_backward(const CellConfig& config, const Weights<T>& weights, const Tensor<const std::uint8_t>& mask,
                       std::int64_t B, std::int64_t time, const OutputGradients<T>& grad_out,
                       const Gradients<T>& grads) {
  validate(config, weights);
  const std::int64_t I = config.input_size, H = config.hidden_size, Ho = output_size(config);
  require_shape_or_empty("mask", mask, {B, time});
  require_shape_or_empty("dy", grad_out.dy, {B, time, Ho});
  require_shape_or_empty("dh_n", grad_out.dh_n, {B, Ho});
  require_shape_or_empty("dc_n", grad_out.dc_n, {B, H});
  require_shape_or_empty("dx", grads.dx, {B, time, I});
  require_shape_or_empty("dh0", grads.dh0, {B, Ho});
  require_shape_or_empty("dc0", grads.dc0, {B, H});
  require_shape_or_empty("dW", grads.dW, {I, 4 * H});
  require_shape_or_empty("dU", grads.dU, {Ho, 4 * H});
  require_shape_or_empty("db", grads.db, {4 * H});
  if (config.projection_size > 0)
    require_shape_or_empty("dprojection", grads.dprojection, {H, config.projection_size});
  else if (!grads.dprojection.empty())
    throw std::invalid_argument("dprojection: given, but projection_size is 0");
  if (!grads.dpeephole.empty() && grads.dpeephole.shape != peephole_shape(config))
    throw std::invalid_argument("dpeephole: expected shape " + shape_to_string(peephole_shape(config)) + ", got " +
                                shape_to_string(grads.dpeephole.shape));
}

template WorkspaceLayout<float> workspace_layout(const CellConfig&, std::int64_t, std::int64_t,
                                                 const Regularization&, const Workspace<float>&);
template WorkspaceLayout<double> workspace_layout(const CellConfig&, std::int64_t, std::int64_t,
                                                  const Regularization&, const Workspace<double>&);
template void validate_backward(const CellConfig&, const Weights<float>&, const Tensor<const std::uint8_t>&,
                                std::int64_t, std::int64_t, const OutputGradients<float>&, const Gradients<float>&);
template void validate_backward(const CellConfig&, const Weights<double>&, const Tensor<const std::uint8_t>&,
                                std::int64_t, std::int64_t, const OutputGradients<double>&, const Gradients<double>&);
template SequenceDims validate_forward(const CellConfig&, const Weights<float>&, const SequenceInput<float>&,
                                       const SequenceOutput<float>&, SequenceOutputs);
template SequenceDims validate_forward(const CellConfig&, const Weights<double>&, const SequenceInput<double>&,
                                       const SequenceOutput<double>&, SequenceOutputs);

}  // namespace detail

void validate(const CellConfig& config, const Regularization& regularization) {
  validate(regularization);
  if (config.projection_size > 0 && regularization.zoneout())
    throw std::invalid_argument("zoneout_h, zoneout_c: zoneout is not supported with a projection (projection_size > 0)");
}

SequenceDims sequence_dims(const CellConfig& config, const std::vector<std::int64_t>& x_shape) {
  validate(config);
  const std::int64_t I = config.input_size;
  if (x_shape.size() != 3 || x_shape[2] != I)
    throw std::invalid_argument("x: expected shape [B, T, " + std::to_string(I) + "], got " +
                                shape_to_string(x_shape));
  const SequenceDims dims{x_shape[0], x_shape[1]};
  detail::require_positive("x: batch size B", dims.batch);
  detail::require_positive("x: sequence length T", dims.time);
  return dims;
}

std::int64_t training_workspace_size(const CellConfig& config, std::int64_t batch, std::int64_t time,
                                     const Regularization& regularization) {
  return detail::workspace_sizes(config, batch, time, regularization).total;
}

}  // namespace lstm_native
