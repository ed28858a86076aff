// lstm_native::Model: a Sequential model from its file, run for inference through the same core as Python.
#include "lstm_native/model.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <type_traits>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "lstm_native/forward.hpp"
#include "lstm_native/step.hpp"
#include "model_layers.hpp"
#include "safetensors_file.hpp"

namespace lstm_native {
namespace {

using detail::element_count;
using detail::Layer;
using detail::LayerStep;
using detail::Mask;
using detail::StepData;
using detail::StepShape;
using nlohmann::json;

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

// -- What a file may hold ----------------------------------------------------------------------------------
// The rules of python/lstm_native/file_rules.py, generated into model_file_rules.inc: the Python loader
// enforces the same ones, so that both accept the same files. A key's rule is the name of a value kind
// (value_problem) or the list of the values allowed.
const json& rules() {
  static const json parsed = json::parse(
#include "model_file_rules.inc"
  );
  return parsed;
}

std::int64_t limit(const char* name) { return rules().at("limits").at(name).get<std::int64_t>(); }

bool integer_in(const json& value, std::int64_t low, std::int64_t high) {
  if (!value.is_number_integer()) return false;
  if (value.is_number_unsigned()) {
    const std::uint64_t u = value.get<std::uint64_t>();
    return (low <= 0 || u >= static_cast<std::uint64_t>(low)) && high >= 0 && u <= static_cast<std::uint64_t>(high);
  }
  const std::int64_t i = value.get<std::int64_t>();
  return low <= i && i <= high;
}

bool finite_number(const json& value) { return value.is_number() && std::isfinite(value.get<double>()); }
bool float32_number(const json& value) {
  return finite_number(value) && std::fabs(value.get<double>()) <= std::numeric_limits<float>::max();
}

bool is_shape(const json& value, std::size_t min_rank, std::size_t max_rank) {
  if (!value.is_array() || value.size() < min_rank || value.size() > max_rank) return false;
  return std::all_of(value.begin(), value.end(),
                     [](const json& d) { return d.is_null() || integer_in(d, 1, limit("dimension")); });
}

std::string layer_problem(const json& entry);
std::string config_problem(const json& config, const json& keys, const json& required);

// "" for a name in `table` or a {"class_name": name, "config": {...}} object of one; else the problem.
std::string identifier_problem(const json& value, const json& table, const std::string& what) {
  if (value.is_string()) return table.contains(value.get<std::string>()) ? "" : "unknown " + what + " " + brief(value);
  const bool shaped = value.is_object() && value.contains("class_name") && value.at("class_name").is_string() &&
                      std::all_of(value.items().begin(), value.items().end(),
                                  [](const auto& item) { return item.key() == "class_name" || item.key() == "config"; });
  if (!shaped) return "expected a " + what + " name or {\"class_name\": ..., \"config\": {...}}";
  const std::string name = value.at("class_name").get<std::string>();
  if (!table.contains(name)) return "unknown " + what + " class " + brief(value.at("class_name"));
  return config_problem(value.contains("config") ? value.at("config") : json::object(), table.at(name), json::array());
}

// "" when `value` is of the kind `kind`; else the problem.
std::string value_problem(const json& kind, const json& value) {
  if (kind.is_array()) {
    for (const json& choice : kind)
      if (choice.type() == value.type() && choice == value) return "";
    return "expected one of " + kind.dump();
  }
  const std::string name = kind.get<std::string>();
  const std::int64_t units = limit("units"), rank = limit("rank");
  const auto check = [](bool ok, const std::string& expected) { return ok ? std::string() : "expected " + expected; };
  if (name == "string") return check(value.is_string(), "a string");
  if (name == "bool") return check(value.is_boolean(), "true or false");
  if (name == "size") return check(integer_in(value, 1, units), "an integer in [1, " + std::to_string(units) + "]");
  if (name == "vocabulary")
    return check(integer_in(value, 1, units), "an integer in [1, " + std::to_string(units) +
                                                  "]: token ids reach this loader as float32, which tells integers "
                                                  "apart up to 2**24");
  if (name == "size_or_zero") return check(integer_in(value, 0, units), "an integer in [0, " + std::to_string(units) + "]");
  if (name == "rate")
    return check(finite_number(value) && value.get<double>() >= 0 && value.get<double>() < 1, "a rate in [0, 1)");
  if (name == "coefficient") return check(float32_number(value) && value.get<double>() >= 0, "a finite number >= 0");
  if (name == "float32") return check(float32_number(value), "a finite float32 number");
  if (name == "seed")
    return check(value.is_null() || integer_in(value, 0, std::numeric_limits<std::int64_t>::max()),
                 "null or an integer in [0, 2**63)");
  if (name == "shape") return check(is_shape(value, 1, rank - 1), "a shape (no batch size): 1 to 7 sizes, null or positive integers");
  if (name == "batch_shape") return check(is_shape(value, 2, rank), "[batch, ...]: 2 to 8 sizes, null or positive integers");
  if (name == "noise_shape") return check(value.is_null() || is_shape(value, 1, rank), "null or a shape");
  if (name == "batch_size") return check(value.is_null() || integer_in(value, 1, limit("dimension")), "null or a positive integer");
  if (name == "activation") {
    const json& known = rules().at("activations");
    return check(value.is_null() || std::find(known.begin(), known.end(), value) != known.end(),
                 "null or one of " + known.dump());
  }
  if (name == "initializer") return identifier_problem(value, rules().at("initializers"), "initializer");
  if (name == "regularizer") return value.is_null() ? "" : identifier_problem(value, rules().at("regularizers"), "regularizer");
  if (name == "lstm") {
    if (!(value.is_object() && value.contains("class_name") && value.at("class_name") == "LSTM"))
      return "expected {\"class_name\": \"LSTM\", \"config\": {...}}";
    return layer_problem(value);
  }
  internal_error("the rules name an unknown kind " + name);
}

std::string config_problem(const json& config, const json& keys, const json& required) {
  if (!config.is_object()) return "expected a config object, got " + brief(config);
  for (const json& key : required)
    if (!config.contains(key.get<std::string>())) return "lacks \"" + key.get<std::string>() + "\"";
  for (const auto& [key, value] : config.items()) {
    if (!keys.contains(key)) return "unknown key \"" + key.substr(0, 200) + "\"";
    const std::string problem = value_problem(keys.at(key), value);
    if (!problem.empty()) return key + ": " + problem + ", got " + brief(value);
  }
  return "";
}

// "" for a layer entry {"class_name": ..., "config": {...}} that a file may hold; else the problem.
std::string layer_problem(const json& entry) {
  if (!(entry.is_object() && entry.size() == 2 && entry.contains("class_name") && entry.contains("config") &&
        entry.at("class_name").is_string()))
    return "expected {\"class_name\": ..., \"config\": {...}}, got " + brief(entry);
  const std::string kind = entry.at("class_name").get<std::string>();
  if (!rules().at("layers").contains(kind)) return "class \"" + kind.substr(0, 200) + "\" is not supported";
  const std::string problem = config_problem(entry.at("config"), rules().at("layers").at(kind), rules().at("required").at(kind));
  return problem.empty() ? "" : kind + ": " + problem;
}

// What a layer's config and tensors are read through: errors name the file, the layer and the problem.
// Its config has passed the rules (layer_problem): keys missing from it take the rules' defaults.
struct LayerSource {
  const std::string& path;
  const std::string& layer;
  const json& config;
  const json& defaults;  // the constructor's defaults of the layer's class
  detail::SafetensorsFile& file;
  std::string prefix;  // "layers.<k>." (+ "forward."/"backward.")
  std::set<std::string>& used;
  std::int64_t& parameters_left;  // what the model's weights may still add, under the file's limit

  [[noreturn]] void fail(const std::string& problem) const {
    throw ModelFileError(path + ": layer \"" + layer + "\": " + problem);
  }
  const json& value(const char* key) const { return config.contains(key) ? config.at(key) : defaults.at(key); }
  template <class V>
  V get(const char* key) const {
    return value(key).get<V>();
  }
  // A string value, or `if_null` for null.
  std::string string_or(const char* key, const std::string& if_null) const {
    return value(key).is_null() ? if_null : value(key).get<std::string>();
  }
  std::vector<float> tensor(const std::string& name, const std::vector<std::int64_t>& shape) const {
    const std::string full = prefix + name;
    std::int64_t count = 1;
    for (std::int64_t d : shape) count = checked_product(count, d);
    if (count < 0 || count > parameters_left)
      fail("its weight \"" + full + "\" takes the model past " + std::to_string(limit("parameters")) +
           " parameters, the limit of a model file");
    parameters_left -= count;
    const auto found = file.tensors.find(full);
    if (found == file.tensors.end()) fail("the file lacks the tensor \"" + full + "\"");
    if (found->second.shape != shape)
      fail("tensor \"" + full + "\" has shape " + shape_to_string(found->second.shape) + ", expected " + shape_to_string(shape));
    const bool float64 = get<std::string>("dtype") == "float64";
    if (found->second.float64 != float64)
      fail("tensor \"" + full + "\" has dtype " + (found->second.float64 ? "F64" : "F32") + ", expected " +
           (float64 ? "F64" : "F32") + " (the layer's dtype)");
    const std::vector<float>& values = found->second.values;
    const auto bad = std::find_if(values.begin(), values.end(),
                                  [](float v) { return !(std::fabs(v) <= std::numeric_limits<float>::max()); });
    if (bad != values.end())
      fail("tensor \"" + full + "\" holds values that are not finite float32 numbers (the first: " +
           std::to_string(*bad) + ")");
    used.insert(full);
    return std::move(found->second.values);
  }
  LayerSource nested(const json& sub_config, const std::string& sub_prefix) const {
    return {path, layer, sub_config, rules().at("defaults").at("LSTM"), file, prefix + sub_prefix, used, parameters_left};
  }
};

// The rows of an array of shape `shape`: the product of every dimension but the last.
std::int64_t rows_of(const std::vector<std::int64_t>& shape) {
  std::int64_t rows = 1;
  for (std::size_t k = 0; k + 1 < shape.size(); ++k) rows *= shape[k];
  return rows;
}

[[noreturn]] void refuse_stream(const std::string& layer, const std::string& why) {
  throw std::invalid_argument("layer \"" + layer + "\" cannot stream: " + why + ", which a stream has not seen yet");
}

// -- LSTM ------------------------------------------------------------------------------------------------
// An LSTM's part of a stream: its step cell and state h [B,Ho], c [B,H]. Its output is y (return_sequences,
// the mask passed on) or h, the state a sequence ending at this step leaves (predict's output then).
class LstmStep : public LayerStep {
 public:
  LstmStep(StepCell<float> cell, bool return_sequences)
      : cell_(std::move(cell)), return_sequences_(return_sequences) {
    const std::int64_t B = cell_.batch(), H = cell_.config().hidden_size, Ho = output_size(cell_.config());
    h_.assign(B * Ho, 0.0f);
    c_.assign(B * H, 0.0f);
    y_.assign(return_sequences_ ? B * Ho : 0, 0.0f);
  }
  StepData step(StepData in) override {
    cell_.step(in.values, in.mask, h_.data(), c_.data(), return_sequences_ ? y_.data() : nullptr);
    if (return_sequences_) return {y_.data(), in.mask};
    return {h_.data(), nullptr};
  }
  std::int64_t state_size() const override { return std::int64_t(h_.size() + c_.size()); }
  void read_state(float* to) const override { std::copy(c_.begin(), c_.end(), std::copy(h_.begin(), h_.end(), to)); }
  void write_state(const float* from) override {
    std::copy(from, from + h_.size(), h_.begin());
    std::copy(from + h_.size(), from + h_.size() + c_.size(), c_.begin());
  }
  void reset() override {
    std::fill(h_.begin(), h_.end(), 0.0f);
    std::fill(c_.begin(), c_.end(), 0.0f);
  }

 private:
  StepCell<float> cell_;
  bool return_sequences_;
  std::vector<float> h_, c_, y_;
};

class LstmLayer : public Layer {
 public:
  LstmLayer(const LayerSource& src, std::int64_t input_size, std::optional<bool> zero_output_for_mask = {}) {
    config_.input_size = input_size;
    config_.hidden_size = src.get<std::int64_t>("units");
    config_.projection_size = src.get<std::int64_t>("proj_size");
    try {
      config_.peephole = parse_peephole(src.string_or("peephole", "none"));
      config_.output_peephole_source = parse_output_peephole_source(src.get<std::string>("output_peephole_source"));
    } catch (const std::invalid_argument& error) {
      src.fail(error.what());
    }
    // inside a Bidirectional, zero_output_for_mask is return_sequences, whatever the config says (as in Python)
    config_.zero_output_for_mask = zero_output_for_mask ? *zero_output_for_mask : src.get<bool>("zero_output_for_mask");
    return_sequences_ = src.get<bool>("return_sequences");
    go_backwards_ = src.get<bool>("go_backwards");
    zoneout_.zoneout_h = src.get<double>("zoneout_h");
    zoneout_.zoneout_c = src.get<double>("zoneout_c");
    try {
      validate(config_, zoneout_);
    } catch (const std::invalid_argument& error) {
      src.fail(error.what());
    }
    const std::int64_t H = config_.hidden_size, Ho = output_size(config_);
    W_ = src.tensor("kernel", {input_size, 4 * H});
    U_ = src.tensor("recurrent_kernel", {Ho, 4 * H});
    if (src.get<bool>("use_bias")) b_ = src.tensor("bias", {4 * H});
    const std::vector<std::int64_t> p_shape = peephole_shape(config_);
    if (!p_shape.empty()) p_ = src.tensor("peephole", p_shape);
    if (config_.projection_size > 0) W_hr_ = src.tensor("projection", {H, Ho});
    name_ = src.layer;
  }

  // The width of the layer's output h: units, or proj_size with a projection.
  std::int64_t units() const { return output_size(config_); }
  bool return_sequences() const { return return_sequences_; }
  bool go_backwards() const { return go_backwards_; }
  std::int64_t hidden_size() const { return config_.hidden_size; }

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
    Array y{{B, T, Ho}, std::vector<float>(B * T * Ho)}, h{{B, Ho}, std::vector<float>(B * Ho)};
    std::vector<float> c(B * H);
    const SequenceInput<float> in{{x.values.data(), {B, T, I}}, {}, {},
                                  m.empty() ? Tensor<const std::uint8_t>() : Tensor<const std::uint8_t>(m.data(), {B, T})};
    forward_inference<float>(config_, weights(), in,
                             {{y.values.data(), {B, T, Ho}}, {h.values.data(), {B, Ho}}, {c.data(), {B, H}}}, zoneout_);
    if (!return_sequences_) mask.clear();
    return return_sequences_ ? y : h;
  }

  std::unique_ptr<LayerStep> stepper(StepShape& shape) const override {
    if (go_backwards_) refuse_stream(name_, "go_backwards reads each sequence from its end");
    const std::int64_t B = shape.dims[0];
    auto step = std::make_unique<LstmStep>(StepCell<float>(config_, weights(), B, zoneout_), return_sequences_);
    shape.dims = {B, units()};
    shape.time_axis = return_sequences_;
    return step;
  }

  std::string describe() const override {
    return "LSTM " + name_ + " units=" + std::to_string(config_.hidden_size) +
           (config_.projection_size > 0 ? " proj_size=" + std::to_string(config_.projection_size) : "") +
           " peephole=" + to_string(config_.peephole);
  }

 private:
  Weights<float> weights() const {
    const std::int64_t I = config_.input_size, H = config_.hidden_size, Ho = output_size(config_);
    return {{W_.data(), {I, 4 * H}}, {U_.data(), {Ho, 4 * H}},
            b_.empty() ? Tensor<const float>() : Tensor<const float>(b_.data(), {4 * H}),
            p_.empty() ? Tensor<const float>() : Tensor<const float>(p_.data(), peephole_shape(config_)),
            W_hr_.empty() ? Tensor<const float>() : Tensor<const float>(W_hr_.data(), {H, Ho})};
  }

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
    merge_ = src.get<std::string>("merge_mode");
    // the rules made "layer" and "backward_layer" LSTM entries; their zero_output_for_mask is return_sequences
    const auto sublayer = [&](const char* key, const char* prefix) {
      const json& sub_config = src.config.at(key).at("config");
      const bool return_sequences = sub_config.value("return_sequences", false);
      return std::make_unique<LstmLayer>(src.nested(sub_config, prefix), input_size, return_sequences);
    };
    forward_ = sublayer("layer", "forward.");
    backward_ = sublayer("backward_layer", "backward.");
    if (forward_->hidden_size() != backward_->hidden_size() || forward_->units() != backward_->units() ||
        forward_->return_sequences() != backward_->return_sequences())
      src.fail("its forward and backward layers differ in units, proj_size or return_sequences");
    if (forward_->go_backwards() == backward_->go_backwards())
      src.fail("its backward layer's go_backwards must be the opposite of its forward layer's");
  }

  bool return_sequences() const { return forward_->return_sequences(); }

  std::int64_t units() const { return merge_ == "concat" ? 2 * forward_->units() : forward_->units(); }

  Array forward(const Array& x, Mask& mask) const override {
    Mask mask_forward = mask, mask_backward = mask;
    const Array a = forward_->forward(x, mask_forward);
    Array b = backward_->forward(x, mask_backward);
    const std::int64_t H = forward_->units(), rows = rows_of(a.shape);
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

  std::unique_ptr<LayerStep> stepper(StepShape&) const override {
    refuse_stream(forward_->describe(), "a Bidirectional layer reads each sequence from its end too");
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

// A stateless layer's part of a stream: its output values (and mask), which apply(in, values, mask) fills from the
// step's input, returning the mask to pass on.
class StatelessStep : public LayerStep {
 public:
  using Apply = std::function<const std::uint8_t*(StepData, float*, std::uint8_t*)>;
  StatelessStep(std::int64_t values, std::int64_t rows, Apply apply)
      : values_(values), mask_(rows), apply_(std::move(apply)) {}
  StepData step(StepData in) override { return {values_.data(), apply_(in, values_.data(), mask_.data())}; }

 private:
  std::vector<float> values_;
  std::vector<std::uint8_t> mask_;
  Apply apply_;
};

class DenseLayer : public Layer {
 public:
  DenseLayer(const LayerSource& src, std::int64_t input_size) : inputs_(input_size) {
    units_ = src.get<std::int64_t>("units");
    activation_ = src.string_or("activation", "linear");
    if (activation_ != "softmax" && activation_ != "log_softmax" && !elementwise_activations().count(activation_))
      internal_error("the rules allow the activation \"" + activation_ + "\", which the C++ loader lacks");
    if (elementwise_activations().count(activation_)) elementwise_ = &elementwise_activations().at(activation_);
    kernel_ = src.tensor("kernel", {input_size, units_});
    if (src.get<bool>("use_bias")) bias_ = src.tensor("bias", {units_});
    name_ = src.layer;
  }

  std::int64_t units() const { return units_; }

  Array forward(const Array& x, Mask&) const override {
    const std::int64_t rows = rows_of(x.shape);
    if (x.shape.back() != inputs_ || std::int64_t(x.values.size()) != rows * inputs_)
      internal_error("a Dense layer got an input of shape " + shape_to_string(x.shape));
    Array y{x.shape, std::vector<float>(rows * units_)};
    y.shape.back() = units_;
    apply(x.values.data(), rows, y.values.data());
    return y;
  }

  std::unique_ptr<LayerStep> stepper(StepShape& shape) const override {
    const std::int64_t rows = rows_of(shape.dims);
    shape.dims.back() = units_;
    return std::make_unique<StatelessStep>(rows * units_, rows, [this, rows](StepData in, float* y, std::uint8_t*) {
      apply(in.values, rows, y);
      return in.mask;
    });
  }

  std::string describe() const override { return "Dense " + name_ + " units=" + std::to_string(units_) + " " + activation_; }

 private:
  // y [rows, units] = activation(x [rows, inputs] kernel + bias)
  void apply(const float* x, std::int64_t rows, float* y) const {
    for (std::int64_t r = 0; r < rows; ++r) {
      float* out = y + r * units_;
      for (std::int64_t j = 0; j < units_; ++j) out[j] = bias_.empty() ? 0.0f : bias_[j];
      for (std::int64_t k = 0; k < inputs_; ++k) {
        const float v = x[r * inputs_ + k];
        for (std::int64_t j = 0; j < units_; ++j) out[j] += v * kernel_[k * units_ + j];
      }
      activate(out);
    }
  }

  void activate(float* row) const {
    if (elementwise_ == nullptr) {  // softmax, log_softmax
      const float top = *std::max_element(row, row + units_);
      double total = 0;
      for (std::int64_t j = 0; j < units_; ++j) total += std::exp(double(row[j] - top));
      for (std::int64_t j = 0; j < units_; ++j)
        row[j] = activation_ == "softmax" ? float(std::exp(double(row[j] - top)) / total)
                                          : float(double(row[j] - top) - std::log(total));
      return;
    }
    for (std::int64_t j = 0; j < units_; ++j) row[j] = (*elementwise_)(row[j]);
  }

  std::int64_t inputs_, units_ = 0;
  std::string activation_, name_;
  const std::function<float(float)>* elementwise_ = nullptr;
  std::vector<float> kernel_, bias_;
};

// -- Embedding, Masking, Dropout -------------------------------------------------------------------------
class EmbeddingLayer : public Layer {
 public:
  explicit EmbeddingLayer(const LayerSource& src) {
    input_dim_ = src.get<std::int64_t>("input_dim");  // at most 2**24 (the rules): every id is a float32
    output_dim_ = src.get<std::int64_t>("output_dim");
    mask_zero_ = src.get<bool>("mask_zero");
    table_ = src.tensor("embeddings", {input_dim_, output_dim_});
    name_ = src.layer;
  }
  std::int64_t units() const { return output_dim_; }

  Array forward(const Array& x, Mask& mask) const override {
    Array y{x.shape, std::vector<float>(x.values.size() * output_dim_)};
    y.shape.push_back(output_dim_);
    mask.assign(x.values.size(), 1);
    look_up(x.values.data(), std::int64_t(x.values.size()), y.values.data(), mask.data());
    if (!mask_zero_) mask.clear();
    return y;
  }

  std::unique_ptr<LayerStep> stepper(StepShape& shape) const override {
    const std::int64_t ids = element_count(shape.dims);
    shape.dims.push_back(output_dim_);
    return std::make_unique<StatelessStep>(ids * output_dim_, ids, [this, ids](StepData in, float* y, std::uint8_t* mask) {
      look_up(in.values, ids, y, mask);
      return mask_zero_ ? mask : nullptr;
    });
  }

  std::string describe() const override { return "Embedding " + name_ + " " + std::to_string(input_dim_) + "x" + std::to_string(output_dim_); }

 private:
  // y [count, output_dim]: the rows of ids [count]; mask: whether each id is not 0.
  void look_up(const float* ids, std::int64_t count, float* y, std::uint8_t* mask) const {
    for (std::int64_t k = 0; k < count; ++k) {
      const float id = ids[k];
      if (!(id >= 0 && id < float(input_dim_) && id == std::floor(id)))
        throw std::invalid_argument("x: " + name_ + " expects integer ids in [0, " + std::to_string(input_dim_) +
                                    "), got " + std::to_string(id));
      const auto row = static_cast<std::int64_t>(id);
      std::copy(&table_[row * output_dim_], &table_[(row + 1) * output_dim_], y + k * output_dim_);
      mask[k] = row != 0;
    }
  }

  std::int64_t input_dim_ = 0, output_dim_ = 0;
  bool mask_zero_ = false;
  std::vector<float> table_;
  std::string name_;
};

class MaskingLayer : public Layer {
 public:
  explicit MaskingLayer(const LayerSource& src) {
    mask_value_ = static_cast<float>(src.get<double>("mask_value"));  // a float32 value (the rules)
  }
  Array forward(const Array& x, Mask& mask) const override {
    Array y{x.shape, std::vector<float>(x.values.size())};
    const std::int64_t rows = rows_of(x.shape);
    mask.assign(rows, 0);
    apply(x.values.data(), rows, x.shape.back(), y.values.data(), mask.data());
    return y;
  }
  std::unique_ptr<LayerStep> stepper(StepShape& shape) const override {
    const std::int64_t width = shape.dims.back(), rows = rows_of(shape.dims);
    return std::make_unique<StatelessStep>(rows * width, rows, [this, rows, width](StepData in, float* y, std::uint8_t* mask) {
      apply(in.values, rows, width, y, mask);
      return mask;
    });
  }
  std::string describe() const override { return "Masking"; }

 private:
  // A row of x [rows, width] all of whose values are mask_value is masked (and zero in y); y is x elsewhere.
  void apply(const float* x, std::int64_t rows, std::int64_t width, float* y, std::uint8_t* mask) const {
    for (std::int64_t r = 0; r < rows; ++r) {
      mask[r] = 0;
      for (std::int64_t k = 0; k < width; ++k) mask[r] |= x[r * width + k] != mask_value_;
      if (mask[r])
        std::copy(x + r * width, x + (r + 1) * width, y + r * width);
      else
        std::fill(y + r * width, y + (r + 1) * width, 0.0f);
    }
  }

  float mask_value_ = 0.0f;
};

class IdentityLayer : public Layer {  // Dropout at inference
 public:
  Array forward(const Array& x, Mask&) const override { return x; }
  std::unique_ptr<LayerStep> stepper(StepShape&) const override {
    struct PassStep : LayerStep {
      StepData step(StepData in) override { return in; }
    };
    return std::make_unique<PassStep>();
  }
  std::string describe() const override { return "Dropout (identity at inference)"; }
};

}  // namespace

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

namespace {

// The model of a file read as `file` (optimizer state left out), `path` naming it in messages.
Model::Impl load_impl(const std::string& path, detail::SafetensorsFile file) {
  auto meta = [&](const char* key) {
    const auto found = file.metadata.find(key);
    if (found == file.metadata.end()) throw ModelFileError(path + ": its metadata lacks \"" + key + "\" (not a model.save file)");
    return found->second;
  };
  if (meta("format") != "lstm_native") throw ModelFileError(path + ": not an lstm_native model file");
  const json& metadata_keys = rules().at("metadata");
  for (const auto& [key, value] : file.metadata)
    if (std::find(metadata_keys.begin(), metadata_keys.end(), key) == metadata_keys.end())
      throw ModelFileError(path + ": unknown header entry \"" + key.substr(0, 200) + "\"; known: " + metadata_keys.dump());
  if (meta("format_version") != "1")
    throw ModelFileError(path + ": format version " + meta("format_version").substr(0, 40) +
                         " is not supported (this library reads 1)");
  const std::string config_text = meta("config"), shape_text = meta("build_input_shape");
  const json config = detail::parse_json(path, "its config", config_text.data(), config_text.data() + config_text.size());
  const json shape = detail::parse_json(path, "its build_input_shape", shape_text.data(), shape_text.data() + shape_text.size());
  const std::string shape_problem = value_problem("batch_shape", shape);
  if (!shape_problem.empty()) throw ModelFileError(path + ": build_input_shape: " + shape_problem + ", got " + brief(shape));
  Model::Impl impl;
  for (std::size_t k = 1; k < shape.size(); ++k) impl.input_shape.push_back(shape[k].is_null() ? -1 : shape[k].get<std::int64_t>());
  if (!(config.is_object() && config.size() == 2 && config.contains("name") && config["name"].is_string() &&
        config.contains("layers") && config["layers"].is_array()))
    throw ModelFileError(path + ": its config must be {\"name\": string, \"layers\": [...]}");
  const json& entries = config["layers"];
  if (entries.size() > static_cast<std::size_t>(limit("layers")))
    throw ModelFileError(path + ": its config holds " + std::to_string(entries.size()) + " layers, more than the limit of " +
                         std::to_string(limit("layers")));
  for (std::size_t k = 0; k < entries.size(); ++k) {
    const std::string problem = layer_problem(entries[k]);
    if (!problem.empty()) throw ModelFileError(path + ": layer " + std::to_string(k) + ": " + problem);
  }
  // The input shape the config declares (an InputLayer's, else the first layer's batch_input_shape), if any,
  // must be build_input_shape.
  json declared;
  if (!entries.empty() && entries[0]["class_name"] == "InputLayer") {
    const json& input = entries[0]["config"];
    declared = json::array({input.value("batch_size", json())});
    for (const json& d : input["shape"]) declared.push_back(d);
  } else if (!entries.empty() && entries[0]["config"].contains("batch_input_shape")) {
    declared = entries[0]["config"]["batch_input_shape"];
  }
  if (!declared.is_null() && declared != shape)
    throw ModelFileError(path + ": build_input_shape " + brief(shape) + " is not the input shape that the config declares, " +
                         brief(declared));
  std::set<std::string> used;
  std::int64_t parameters_left = limit("parameters");
  // What flows between the layers: its rank (with the batch) and its last dimension (-1: unknown).
  std::size_t rank = impl.input_shape.size() + 1;
  std::int64_t width = impl.input_shape.back(), index = 0;
  for (std::size_t k = 0; k < entries.size(); ++k) {
    const json& entry = entries[k];
    const std::string kind = entry["class_name"].get<std::string>();
    if (kind == "InputLayer") {
      if (k) throw ModelFileError(path + ": layer " + std::to_string(k) + ": an InputLayer must come first");
      continue;
    }
    const json& layer_config = entry["config"];
    const std::string name = layer_config.value("name", kind);
    const LayerSource src{path, name, layer_config, rules().at("defaults").at(kind), file,
                          "layers." + std::to_string(index++) + ".", used, parameters_left};
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
      internal_error("the rules allow the layer class " + kind + ", which the C++ loader lacks");
    }
  }
  if (impl.layers.empty()) throw ModelFileError(path + ": the model has no layers");
  for (const auto& [name, tensor] : file.tensors)
    if (!used.count(name))
      throw ModelFileError(path + ": unexpected tensor \"" + name.substr(0, 200) + "\"");
  return impl;
}

// The model that read_file() reads (as a SafetensorsFile), `path` naming it in messages.
template <class ReadFile>
Model::Impl load_checked(const std::string& path, const ReadFile& read_file) {
  try {
    return load_impl(path, read_file());
  } catch (const json::exception& error) {  // a config value of an unexpected JSON type
    throw ModelFileError(path + ": its config is malformed (" + std::string(error.what()).substr(0, 300) + ")");
  }
}

const char* const kTrainingState = "optimizer.";  // tensors a model for inference does not read

}  // namespace

Model Model::load(const std::string& path) {
  return Model(std::make_unique<Impl>(load_checked(path, [&] { return detail::read_safetensors(path, kTrainingState); })));
}

Model Model::load_from_memory(const void* data, std::size_t size, const std::string& name) {
  return Model(std::make_unique<Impl>(load_checked(name, [&] {
    return detail::parse_safetensors(name, static_cast<const char*>(data), size, kTrainingState);
  })));
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
