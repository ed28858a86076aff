// lstm_native::Model: a Sequential model from its file, run for inference through the same core as Python.
#include "lstm_native/model.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <type_traits>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "lstm_native/forward.hpp"
#include "safetensors_file.hpp"

namespace lstm_native {
namespace {

using nlohmann::json;
using Mask = std::vector<std::uint8_t>;  // [B, T]; empty: no mask

// At most 200 characters of a JSON value, for error messages.
std::string brief(const json& value) {
  std::string text = value.dump();
  return text.size() > 200 ? text.substr(0, 200) + "..." : text;
}

// a * b, or -1 where the product of non-negative a and b overflows int64
std::int64_t checked_product(std::int64_t a, std::int64_t b) {
  if (a < 0 || b < 0) return -1;
  if (b != 0 && a > std::numeric_limits<std::int64_t>::max() / b) return -1;
  return a * b;
}

[[noreturn]] void internal_error(const std::string& what) { throw std::logic_error("lstm_native::Model: " + what); }

// What a layer's config and tensors are read through: errors name the file, the layer and the problem.
struct LayerSource {
  const std::string& path;
  const std::string& layer;
  const json& config;
  detail::SafetensorsFile& file;
  std::string prefix;  // "layers.<k>." (+ "forward."/"backward.")
  std::set<std::string>& used;

  [[noreturn]] void fail(const std::string& problem) const {
    throw ModelFileError(path + ": layer \"" + layer + "\": " + problem);
  }
  template <class V>
  V get(const char* key) const {
    if (!config.contains(key)) fail(std::string("its config lacks \"") + key + "\"");
    if constexpr (std::is_integral_v<V> && !std::is_same_v<V, bool>) {
      // a float JSON number converted to an integer could be out of range (undefined behavior)
      if (!config.at(key).is_number_integer())
        fail(std::string("\"") + key + "\" must be an integer, got " + brief(config.at(key)));
    }
    if constexpr (std::is_floating_point_v<V>) {
      if (!config.at(key).is_number())
        fail(std::string("\"") + key + "\" must be a number, got " + brief(config.at(key)));
    }
    try {
      return config.at(key).get<V>();
    } catch (const json::exception&) {
      fail(std::string("\"") + key + "\" has the wrong type: " + brief(config.at(key)));
    }
  }
  template <class V>
  V get_or(const char* key, V fallback) const {
    return config.contains(key) && !config.at(key).is_null() ? get<V>(key) : fallback;
  }
  std::int64_t positive(const char* key) const {
    const std::int64_t value = get<std::int64_t>(key);
    if (value < 1 || value > (std::int64_t(1) << 24)) fail(std::string("\"") + key + "\" out of range: " + std::to_string(value));
    return value;
  }
  std::vector<float> tensor(const std::string& name, const std::vector<std::int64_t>& shape) const {
    const std::string full = prefix + name;
    const auto found = file.tensors.find(full);
    if (found == file.tensors.end()) fail("the file lacks the tensor \"" + full + "\"");
    if (found->second.shape != shape)
      fail("tensor \"" + full + "\" has shape " + shape_to_string(found->second.shape) + ", expected " + shape_to_string(shape));
    used.insert(full);
    return std::move(found->second.values);
  }
  LayerSource nested(const json& sub_config, const std::string& sub_prefix) const {
    return {path, layer, sub_config, file, prefix + sub_prefix, used};
  }
};

std::int64_t rows_of(const Array& x) {
  std::int64_t rows = 1;
  for (std::size_t k = 0; k + 1 < x.shape.size(); ++k) rows *= x.shape[k];
  return rows;
}

class Layer {
 public:
  virtual ~Layer() = default;
  // x -> the output; mask in: the input's mask, out: the output's.
  virtual Array forward(const Array& x, Mask& mask) const = 0;
  virtual std::string describe() const = 0;
};

// -- LSTM ------------------------------------------------------------------------------------------------
class LstmLayer : public Layer {
 public:
  LstmLayer(const LayerSource& src, std::int64_t input_size) {
    config_.input_size = input_size;
    config_.hidden_size = src.positive("units");
    config_.projection_size = src.get_or<std::int64_t>("proj_size", 0);
    if (config_.projection_size < 0) src.fail("proj_size must be >= 0, got " + std::to_string(config_.projection_size));
    const std::string peephole = src.get_or<std::string>("peephole", "none");
    try {
      config_.peephole = parse_peephole(peephole);
      config_.output_peephole_source = parse_output_peephole_source(src.get_or<std::string>("output_peephole_source", "current"));
    } catch (const std::invalid_argument& error) {
      src.fail(error.what());
    }
    config_.zero_output_for_mask = src.get_or<bool>("zero_output_for_mask", false);
    if (src.get_or<bool>("return_state", false)) src.fail("return_state=True is not supported in a Sequential model");
    return_sequences_ = src.get_or<bool>("return_sequences", false);
    go_backwards_ = src.get_or<bool>("go_backwards", false);
    zoneout_.zoneout_h = src.get_or<double>("zoneout_h", 0.0);
    zoneout_.zoneout_c = src.get_or<double>("zoneout_c", 0.0);
    try {
      validate(config_, zoneout_);
    } catch (const std::invalid_argument& error) {
      src.fail(error.what());
    }
    const std::int64_t H = config_.hidden_size, Ho = output_size(config_);
    W_ = src.tensor("kernel", {input_size, 4 * H});
    U_ = src.tensor("recurrent_kernel", {Ho, 4 * H});
    if (src.get_or<bool>("use_bias", true)) b_ = src.tensor("bias", {4 * H});
    const std::vector<std::int64_t> p_shape = peephole_shape(config_);
    if (!p_shape.empty()) p_ = src.tensor("peephole", p_shape);
    if (config_.projection_size > 0) W_hr_ = src.tensor("projection", {H, Ho});
    name_ = src.layer;
  }

  // The width of the layer's output h: units, or proj_size with a projection.
  std::int64_t units() const { return output_size(config_); }
  bool return_sequences() const { return return_sequences_; }

  Array forward(const Array& x_in, Mask& mask) const override {
    if (x_in.shape.size() != 3 || x_in.shape[2] != config_.input_size)
      internal_error("an LSTM got an input of shape " + shape_to_string(x_in.shape));
    const std::int64_t B = x_in.shape[0], T = x_in.shape[1], I = config_.input_size, H = config_.hidden_size;
    const std::int64_t Ho = output_size(config_);
    if (std::int64_t(x_in.values.size()) != B * T * I || !(mask.empty() || std::int64_t(mask.size()) == B * T))
      internal_error("an LSTM got an input or a mask of the wrong size");
    Array x = x_in;
    Mask m = mask;
    if (go_backwards_) {  // the sequence in reverse; the output stays in that processing order, as in Python
      for (std::int64_t b = 0; b < B; ++b)
        for (std::int64_t t = 0; t < T / 2; ++t) {
          std::swap_ranges(&x.values[(b * T + t) * I], &x.values[(b * T + t + 1) * I], &x.values[(b * T + T - 1 - t) * I]);
          if (!m.empty()) std::swap(m[b * T + t], m[b * T + T - 1 - t]);
        }
    }
    const Weights<float> weights{{W_.data(), {I, 4 * H}}, {U_.data(), {Ho, 4 * H}},
                                 b_.empty() ? Tensor<const float>() : Tensor<const float>(b_.data(), {4 * H}),
                                 p_.empty() ? Tensor<const float>() : Tensor<const float>(p_.data(), peephole_shape(config_)),
                                 W_hr_.empty() ? Tensor<const float>() : Tensor<const float>(W_hr_.data(), {H, Ho})};
    Array y{{B, T, Ho}, std::vector<float>(B * T * Ho)}, h{{B, Ho}, std::vector<float>(B * Ho)};
    std::vector<float> c(B * H);
    const SequenceInput<float> in{{x.values.data(), {B, T, I}}, {}, {},
                                  m.empty() ? Tensor<const std::uint8_t>() : Tensor<const std::uint8_t>(m.data(), {B, T})};
    forward_inference<float>(config_, weights, in,
                             {{y.values.data(), {B, T, Ho}}, {h.values.data(), {B, Ho}}, {c.data(), {B, H}}}, zoneout_);
    if (!return_sequences_) mask.clear();
    return return_sequences_ ? y : h;
  }

  std::string describe() const override {
    return "LSTM " + name_ + " units=" + std::to_string(config_.hidden_size) +
           (config_.projection_size > 0 ? " proj_size=" + std::to_string(config_.projection_size) : "") +
           " peephole=" + to_string(config_.peephole);
  }

 private:
  CellConfig config_;
  Regularization zoneout_;
  bool return_sequences_ = false, go_backwards_ = false;
  std::vector<float> W_, U_, b_, p_, W_hr_;
  std::string name_;
};

// -- Bidirectional ---------------------------------------------------------------------------------------
class BidirectionalLayer : public Layer {
 public:
  BidirectionalLayer(const LayerSource& src, std::int64_t input_size) {
    merge_ = src.get_or<std::string>("merge_mode", "concat");
    if (merge_ != "concat" && merge_ != "sum" && merge_ != "mul" && merge_ != "ave")
      src.fail("merge_mode \"" + merge_ + "\" is not supported");
    auto sublayer = [&](const char* key, const char* prefix) {
      const auto is_lstm = [](const json& sub) {
        return sub.is_object() && sub.contains("class_name") && sub.at("class_name") == "LSTM" &&
               sub.contains("config") && sub.at("config").is_object();
      };
      if (!src.config.contains(key) || !is_lstm(src.config.at(key)))
        src.fail(std::string("\"") + key + "\" must describe an LSTM: {\"class_name\": \"LSTM\", \"config\": {...}}");
      return LstmLayer(src.nested(src.config.at(key).at("config"), prefix), input_size);
    };
    forward_ = std::make_unique<LstmLayer>(sublayer("layer", "forward."));
    backward_ = std::make_unique<LstmLayer>(sublayer("backward_layer", "backward."));
    if (forward_->units() != backward_->units() || forward_->return_sequences() != backward_->return_sequences())
      src.fail("its forward and backward layers differ in units or return_sequences");
  }

  bool return_sequences() const { return forward_->return_sequences(); }

  std::int64_t units() const { return merge_ == "concat" ? 2 * forward_->units() : forward_->units(); }

  Array forward(const Array& x, Mask& mask) const override {
    Mask mask_forward = mask, mask_backward = mask;
    const Array a = forward_->forward(x, mask_forward);
    Array b = backward_->forward(x, mask_backward);
    const std::int64_t H = forward_->units(), rows = rows_of(a);
    if (forward_->return_sequences()) {  // the backward layer's outputs back in forward time order
      const std::int64_t B = a.shape[0], T = a.shape[1];
      for (std::int64_t r = 0; r < B; ++r)
        for (std::int64_t t = 0; t < T / 2; ++t)
          std::swap_ranges(&b.values[(r * T + t) * H], &b.values[(r * T + t + 1) * H], &b.values[(r * T + T - 1 - t) * H]);
    } else {
      mask.clear();
    }
    Array out{a.shape, {}};
    out.shape.back() = units();
    out.values.resize(rows * out.shape.back());
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t j = 0; j < H; ++j) {
        const float u = a.values[r * H + j], v = b.values[r * H + j];
        if (merge_ == "concat") {
          out.values[r * 2 * H + j] = u;
          out.values[r * 2 * H + H + j] = v;
        } else {
          out.values[r * H + j] = merge_ == "sum" ? u + v : merge_ == "mul" ? u * v : (u + v) / 2;
        }
      }
    return out;
  }

  std::string describe() const override { return "Bidirectional(" + forward_->describe() + ") merge=" + merge_; }

 private:
  std::string merge_;
  std::unique_ptr<LstmLayer> forward_, backward_;
};

// -- Dense -----------------------------------------------------------------------------------------------
float sigmoid(float x) { return x >= 0 ? 1.0f / (1.0f + std::exp(-x)) : std::exp(x) / (1.0f + std::exp(x)); }
float softplus(float x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

// Keras 3's elementwise activations, by name.
const std::map<std::string, std::function<float(float)>>& elementwise_activations() {
  static const std::map<std::string, std::function<float(float)>> table = {
      {"linear", [](float x) { return x; }},
      {"relu", [](float x) { return x > 0 ? x : 0.0f; }},
      {"relu6", [](float x) { return std::min(std::max(x, 0.0f), 6.0f); }},
      {"leaky_relu", [](float x) { return x > 0 ? x : 0.2f * x; }},
      {"sigmoid", sigmoid},
      {"hard_sigmoid", [](float x) { return std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f; }},
      {"tanh", [](float x) { return std::tanh(x); }},
      {"softplus", softplus},
      {"softsign", [](float x) { return x / (1.0f + std::fabs(x)); }},
      {"elu", [](float x) { return x > 0 ? x : std::expm1(x); }},
      {"selu", [](float x) { return 1.0507009873554805f * (x > 0 ? x : 1.6732632423543772f * std::expm1(x)); }},
      {"silu", [](float x) { return x * sigmoid(x); }},
      {"swish", [](float x) { return x * sigmoid(x); }},
      {"gelu", [](float x) { return 0.5f * x * (1.0f + std::erf(x / std::sqrt(2.0f))); }},
      {"exponential", [](float x) { return std::exp(x); }},
      {"mish", [](float x) { return x * std::tanh(softplus(x)); }},
  };
  return table;
}

class DenseLayer : public Layer {
 public:
  DenseLayer(const LayerSource& src, std::int64_t input_size) : inputs_(input_size) {
    units_ = src.positive("units");
    activation_ = src.get_or<std::string>("activation", "linear");
    if (activation_ != "softmax" && activation_ != "log_softmax" && !elementwise_activations().count(activation_))
      src.fail("activation \"" + activation_ + "\" is not supported by the C++ loader");
    kernel_ = src.tensor("kernel", {input_size, units_});
    if (src.get_or<bool>("use_bias", true)) bias_ = src.tensor("bias", {units_});
    name_ = src.layer;
  }

  std::int64_t units() const { return units_; }

  Array forward(const Array& x, Mask&) const override {
    if (x.shape.back() != inputs_ || std::int64_t(x.values.size()) != rows_of(x) * inputs_)
      internal_error("a Dense layer got an input of shape " + shape_to_string(x.shape));
    const std::int64_t rows = rows_of(x);
    Array y{x.shape, std::vector<float>(rows * units_)};
    y.shape.back() = units_;
    for (std::int64_t r = 0; r < rows; ++r) {
      float* out = &y.values[r * units_];
      for (std::int64_t j = 0; j < units_; ++j) out[j] = bias_.empty() ? 0.0f : bias_[j];
      for (std::int64_t k = 0; k < inputs_; ++k) {
        const float v = x.values[r * inputs_ + k];
        for (std::int64_t j = 0; j < units_; ++j) out[j] += v * kernel_[k * units_ + j];
      }
      activate(out);
    }
    return y;
  }

  std::string describe() const override { return "Dense " + name_ + " units=" + std::to_string(units_) + " " + activation_; }

 private:
  void activate(float* row) const {
    if (activation_ == "softmax" || activation_ == "log_softmax") {
      const float top = *std::max_element(row, row + units_);
      double total = 0;
      for (std::int64_t j = 0; j < units_; ++j) total += std::exp(double(row[j] - top));
      for (std::int64_t j = 0; j < units_; ++j)
        row[j] = activation_ == "softmax" ? float(std::exp(double(row[j] - top)) / total)
                                          : float(double(row[j] - top) - std::log(total));
      return;
    }
    const auto& f = elementwise_activations().at(activation_);
    for (std::int64_t j = 0; j < units_; ++j) row[j] = f(row[j]);
  }

  std::int64_t inputs_, units_ = 0;
  std::string activation_, name_;
  std::vector<float> kernel_, bias_;
};

// -- Embedding, Masking, Dropout -------------------------------------------------------------------------
class EmbeddingLayer : public Layer {
 public:
  explicit EmbeddingLayer(const LayerSource& src) {
    input_dim_ = src.positive("input_dim");
    output_dim_ = src.positive("output_dim");
    mask_zero_ = src.get_or<bool>("mask_zero", false);
    table_ = src.tensor("embeddings", {input_dim_, output_dim_});
    name_ = src.layer;
  }
  std::int64_t units() const { return output_dim_; }

  Array forward(const Array& x, Mask& mask) const override {
    Array y{x.shape, std::vector<float>(x.values.size() * output_dim_)};
    y.shape.push_back(output_dim_);
    mask.assign(x.values.size(), 1);
    for (std::size_t k = 0; k < x.values.size(); ++k) {
      const float id = x.values[k];
      if (!(id >= 0 && id < float(input_dim_) && id == std::floor(id)))
        throw std::invalid_argument("x: " + name_ + " expects integer ids in [0, " + std::to_string(input_dim_) +
                                    "), got " + std::to_string(id));
      const auto row = static_cast<std::int64_t>(id);
      std::copy(&table_[row * output_dim_], &table_[(row + 1) * output_dim_], &y.values[k * output_dim_]);
      mask[k] = row != 0;
    }
    if (!mask_zero_) mask.clear();
    return y;
  }
  std::string describe() const override { return "Embedding " + name_ + " " + std::to_string(input_dim_) + "x" + std::to_string(output_dim_); }

 private:
  std::int64_t input_dim_ = 0, output_dim_ = 0;
  bool mask_zero_ = false;
  std::vector<float> table_;
  std::string name_;
};

class MaskingLayer : public Layer {
 public:
  explicit MaskingLayer(const LayerSource& src) {
    const double value = src.get_or<double>("mask_value", 0.0);
    if (!(std::fabs(value) <= std::numeric_limits<float>::max())) src.fail("mask_value is not a finite float32");
    mask_value_ = static_cast<float>(value);
  }
  Array forward(const Array& x, Mask& mask) const override {
    const std::int64_t rows = rows_of(x), width = x.shape.back();
    Array y = x;
    mask.assign(rows, 0);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t k = 0; k < width; ++k) mask[r] |= x.values[r * width + k] != mask_value_;
      if (!mask[r]) std::fill(&y.values[r * width], &y.values[(r + 1) * width], 0.0f);
    }
    return y;
  }
  std::string describe() const override { return "Masking"; }

 private:
  float mask_value_ = 0.0f;
};

class IdentityLayer : public Layer {  // Dropout at inference
 public:
  Array forward(const Array& x, Mask&) const override { return x; }
  std::string describe() const override { return "Dropout (identity at inference)"; }
};

}  // namespace

struct Model::Impl {
  std::vector<std::int64_t> input_shape;  // without the batch dimension
  std::vector<std::unique_ptr<Layer>> layers;
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

namespace {

Model::Impl load_impl(const std::string& path) {
  detail::SafetensorsFile file = detail::read_safetensors(path, "optimizer.");  // training state: not needed
  auto meta = [&](const char* key) {
    const auto found = file.metadata.find(key);
    if (found == file.metadata.end()) throw ModelFileError(path + ": its metadata lacks \"" + key + "\" (not a model.save file)");
    return found->second;
  };
  if (meta("format") != "lstm_native") throw ModelFileError(path + ": not an lstm_native model file");
  if (meta("format_version") != "1")
    throw ModelFileError(path + ": format version " + meta("format_version").substr(0, 40) +
                         " is not supported (this library reads 1)");
  const std::string config_text = meta("config"), shape_text = meta("build_input_shape");
  const json config = detail::parse_json(path, "its config", config_text.data(), config_text.data() + config_text.size());
  const json shape = detail::parse_json(path, "its build_input_shape", shape_text.data(), shape_text.data() + shape_text.size());
  if (!shape.is_array() || shape.size() < 2 || shape.size() > 8)
    throw ModelFileError(path + ": build_input_shape must be a list [null, T, ...] of 2 to 8 entries");
  Model::Impl impl;
  for (std::size_t k = 1; k < shape.size(); ++k) {
    if (shape[k].is_null()) {
      impl.input_shape.push_back(-1);
    } else if (shape[k].is_number_integer() && shape[k].get<std::int64_t>() >= 1 &&
               shape[k].get<std::int64_t>() <= (std::int64_t(1) << 31)) {
      impl.input_shape.push_back(shape[k].get<std::int64_t>());
    } else {
      throw ModelFileError(path + ": build_input_shape: each size must be null or an integer in [1, 2**31], got " +
                           brief(shape[k]));
    }
  }
  if (!config.is_object() || !config.contains("layers") || !config["layers"].is_array())
    throw ModelFileError(path + ": its config must hold a list of layers");
  std::set<std::string> used;
  // What flows between the layers: its rank (with the batch) and its last dimension (-1: unknown).
  std::size_t rank = impl.input_shape.size() + 1;
  std::int64_t width = impl.input_shape.back(), index = 0;
  for (const json& entry : config["layers"]) {
    if (!entry.is_object() || !entry.contains("class_name") || !entry["class_name"].is_string() ||
        !entry.contains("config") || !entry["config"].is_object())
      throw ModelFileError(path + ": each layer must be {\"class_name\": ..., \"config\": {...}}");
    const std::string kind = entry["class_name"].get<std::string>();
    if (kind == "InputLayer") continue;
    const json& layer_config = entry["config"];
    const std::string name = layer_config.contains("name") && layer_config["name"].is_string()
                                 ? layer_config["name"].get<std::string>() : kind;
    const LayerSource src{path, name, layer_config, file, "layers." + std::to_string(index++) + ".", used};
    auto needs = [&](bool rank_ok, const char* what, bool known_width) {
      if (!rank_ok) src.fail(std::string("expects ") + what + ", but its input has rank " + std::to_string(rank));
      if (known_width && width < 1) src.fail("its input's last dimension is unknown (null in build_input_shape)");
    };
    if (kind == "LSTM") {
      needs(rank == 3, "a 3-D input [B, T, F]", true);
      auto layer = std::make_unique<LstmLayer>(src, width);
      width = layer->units();
      rank = layer->return_sequences() ? 3 : 2;
      impl.layers.push_back(std::move(layer));
    } else if (kind == "Bidirectional") {
      needs(rank == 3, "a 3-D input [B, T, F]", true);
      auto layer = std::make_unique<BidirectionalLayer>(src, width);
      width = layer->units();
      rank = layer->return_sequences() ? 3 : 2;
      impl.layers.push_back(std::move(layer));
    } else if (kind == "Dense") {
      needs(rank >= 2, "an input of rank 2 or more", true);
      auto layer = std::make_unique<DenseLayer>(src, width);
      width = layer->units();
      impl.layers.push_back(std::move(layer));
    } else if (kind == "Embedding") {
      needs(rank >= 2 && rank < 8, "token ids of rank 2 to 7", false);
      auto layer = std::make_unique<EmbeddingLayer>(src);
      width = layer->units();
      rank += 1;
      impl.layers.push_back(std::move(layer));
    } else if (kind == "Masking") {
      needs(rank >= 2, "an input of rank 2 or more", false);
      impl.layers.push_back(std::make_unique<MaskingLayer>(src));
    } else if (kind == "Dropout") {
      impl.layers.push_back(std::make_unique<IdentityLayer>());
    } else {
      throw ModelFileError(path + ": layer \"" + name.substr(0, 200) + "\": class \"" + kind.substr(0, 200) +
                           "\" is not supported by the C++ loader");
    }
  }
  if (impl.layers.empty()) throw ModelFileError(path + ": the model has no layers");
  for (const auto& [name, tensor] : file.tensors)
    if (!used.count(name))
      throw ModelFileError(path + ": unexpected tensor \"" + name.substr(0, 200) + "\"");
  return impl;
}

}  // namespace

Model Model::load(const std::string& path) {
  try {
    return Model(std::make_unique<Impl>(load_impl(path)));
  } catch (const json::exception& error) {  // a config value of an unexpected JSON type
    throw ModelFileError(path + ": its config is malformed (" + std::string(error.what()).substr(0, 300) + ")");
  }
}

Array Model::predict(const Array& x) const {
  const std::vector<std::int64_t>& expected = impl_->input_shape;
  bool ok = x.shape.size() == expected.size() + 1 && x.shape[0] >= 1;
  for (std::size_t k = 0; ok && k < expected.size(); ++k) ok = x.shape[k + 1] >= 1 && (expected[k] < 0 || x.shape[k + 1] == expected[k]);
  std::int64_t count = 1;
  for (std::int64_t d : x.shape) count = checked_product(count, d);
  if (!ok || count < 0 || std::int64_t(x.values.size()) != count) {
    std::vector<std::int64_t> want{-1};
    want.insert(want.end(), expected.begin(), expected.end());
    throw std::invalid_argument("x: expected shape " + shape_to_string(want) + " (-1: any), got " + shape_to_string(x.shape) +
                                " with " + std::to_string(x.values.size()) + " values");
  }
  Mask mask;
  Array y = x;
  for (const auto& layer : impl_->layers) y = layer->forward(y, mask);
  return y;
}

std::string Model::summary() const {
  std::ostringstream text;
  for (const auto& layer : impl_->layers) text << layer->describe() << "\n";
  return text.str();
}

}  // namespace lstm_native
