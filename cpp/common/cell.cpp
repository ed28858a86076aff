#include "lstm_native/cell.hpp"

#include <cmath>
#include "lstm_native/regularization.hpp"
#include "masks.hpp"

#include <stdexcept>

namespace lstm_native {

Peephole parse_peephole(const std::string& name) {
  if (name == "none") return Peephole::None;
  if (name == "diagonal") return Peephole::Diagonal;
  if (name == "full") return Peephole::Full;
  throw std::invalid_argument("peephole: expected \"none\", \"diagonal\" or \"full\", got \"" + name + "\"");
}

OutputPeepholeSource parse_output_peephole_source(const std::string& name) {
  if (name == "current") return OutputPeepholeSource::Current;
  if (name == "previous") return OutputPeepholeSource::Previous;
  throw std::invalid_argument("output_peephole_source: expected \"current\" or \"previous\", got \"" + name +
                              "\"");
}

const char* to_string(Peephole p) {
  switch (p) {
    case Peephole::None: return "none";
    case Peephole::Diagonal: return "diagonal";
    case Peephole::Full: return "full";
  }
  return "?";
}

const char* to_string(OutputPeepholeSource s) {
  return s == OutputPeepholeSource::Current ? "current" : "previous";
}

CellConfig config_from_shapes(const std::vector<std::int64_t>& W_shape, const std::vector<std::int64_t>& U_shape,
                              Peephole peephole, OutputPeepholeSource output_peephole_source,
                              bool zero_output_for_mask, const std::vector<std::int64_t>& projection_shape) {
  // The messages blame the matrix whose own shape is wrong: U fixes H (and P), then W_hr must be [H,P] and W
  // must have 4H columns.
  const bool projected = !projection_shape.empty();
  if (U_shape.size() != 2 || U_shape[0] < 1 || U_shape[1] < 4 || U_shape[1] % 4 != 0 ||
      (!projected && U_shape[1] != 4 * U_shape[0]))
    throw std::invalid_argument(std::string("U: expected shape ") + (projected ? "[P, 4H] with P, H >= 1" : "[H, 4H] with H >= 1") +
                                ", got " + shape_to_string(U_shape));
  const std::int64_t H = U_shape[1] / 4;
  if (projected && (projection_shape.size() != 2 || projection_shape[0] != H || projection_shape[1] != U_shape[0]))
    throw std::invalid_argument("W_hr: expected shape " + shape_to_string({H, U_shape[0]}) + " for U of shape " +
                                shape_to_string(U_shape) + ", got " + shape_to_string(projection_shape));
  if (W_shape.size() != 2 || W_shape[0] < 1)
    throw std::invalid_argument("W: expected shape [I, " + std::to_string(U_shape[1]) + "] with I >= 1, got " +
                                shape_to_string(W_shape));
  CellConfig config;
  config.input_size = W_shape[0];
  config.hidden_size = H;
  config.projection_size = projected ? U_shape[0] : 0;
  config.peephole = peephole;
  config.output_peephole_source = output_peephole_source;
  config.zero_output_for_mask = zero_output_for_mask;
  return config;
}

void validate(const CellConfig& config) {
  if (config.input_size < 1)
    throw std::invalid_argument("input_size: expected I >= 1, got " + std::to_string(config.input_size));
  if (config.hidden_size < 1)
    throw std::invalid_argument("hidden_size: expected H >= 1, got " + std::to_string(config.hidden_size));
  if (config.projection_size < 0)
    throw std::invalid_argument("projection_size: expected P >= 0 (0: no projection), got " +
                                std::to_string(config.projection_size));
}

std::vector<std::int64_t> peephole_shape(const CellConfig& config) {
  const std::int64_t H = config.hidden_size;
  switch (config.peephole) {
    case Peephole::Diagonal: return {3, H};
    case Peephole::Full: return {3, H, H};
    case Peephole::None: break;
  }
  return {};
}

template <class T>
void validate(const CellConfig& config, const Weights<T>& weights) {
  validate(config);
  const std::int64_t I = config.input_size, H = config.hidden_size;
  require_shape("W", weights.W, {I, 4 * H});
  require_shape("U", weights.U, {output_size(config), 4 * H});
  require_shape_or_empty("b", weights.b, {4 * H});
  if (config.projection_size > 0)
    require_shape("W_hr", weights.projection, {H, config.projection_size});
  else if (!weights.projection.empty())
    throw std::invalid_argument("W_hr: projection weights given, but projection_size is 0");
  const std::vector<std::int64_t> p_shape = peephole_shape(config);
  if (config.peephole == Peephole::None) {
    if (!weights.peephole.empty())
      throw std::invalid_argument("p: peephole weights given, but peephole is \"none\"");
  } else if (weights.peephole.empty()) {
    throw std::invalid_argument(std::string("p: required for peephole \"") + to_string(config.peephole) +
                                "\", expected shape " + shape_to_string(p_shape));
  } else if (weights.peephole.shape != p_shape) {
    throw std::invalid_argument(std::string("p: expected shape ") + shape_to_string(p_shape) + " for peephole \"" +
                                to_string(config.peephole) + "\", got " + shape_to_string(weights.peephole.shape));
  }
}

void validate(const Regularization& regularization) {
  const std::pair<const char*, double> rates[] = {
      {"dropout", regularization.dropout},     {"recurrent_dropout", regularization.recurrent_dropout},
      {"zoneout_h", regularization.zoneout_h}, {"zoneout_c", regularization.zoneout_c},
      {"weight_drop", regularization.weight_drop}};
  for (const auto& [name, rate] : rates)
    if (!(rate >= 0.0 && rate < 1.0))  // also rejects NaN
      throw std::invalid_argument(std::string(name) + ": expected a rate in [0, 1), got " + std::to_string(rate));
}

std::array<std::uint32_t, 4> philox4x32_10(std::array<std::uint32_t, 4> counter, std::array<std::uint32_t, 2> key) {
  const detail::PhiloxBlock out =
      detail::philox4x32_10({{counter[0], counter[1], counter[2], counter[3]}}, key[0], key[1]);
  return {out.word[0], out.word[1], out.word[2], out.word[3]};
}

template void validate<float>(const CellConfig&, const Weights<float>&);
template void validate<double>(const CellConfig&, const Weights<double>&);

}  // namespace lstm_native
