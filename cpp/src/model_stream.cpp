// lstm_native::Stream: a Model run one time step at a time, each layer's part of the step (and every LSTM's state)
// built once by Model::stream (cpp/src/model_layers.hpp).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <stdexcept>

#include "lstm_native/model.hpp"
#include "lstm_native/tensor.hpp"
#include "model_layers.hpp"

namespace lstm_native {

struct Stream::Impl {
  std::vector<std::shared_ptr<const detail::Layer>> model_layers;  // kept alive for the steps, which read them
  std::vector<std::unique_ptr<detail::LayerStep>> layers;
  std::vector<std::int64_t> input_shape, output_shape;  // of one step: [B, ...]
  std::int64_t input_size = 0, output_size = 0, state_size = 0;
  bool sequence_output = true;
  Array output;  // the last step's, which step(const Array&) returns
  std::atomic<bool> busy{false};

  // One step of every layer: x holds input_size values; returns the last layer's output_size values.
  const float* run(const float* x) {
    detail::StepData data{x, nullptr};
    for (const auto& layer : layers) data = layer->step(data);
    return data.values;
  }
};

namespace {

using detail::element_count;

// Holds a stream for one call; a call from another thread meanwhile throws (a stream's buffers are its own).
class OneCallAtATime {
 public:
  explicit OneCallAtATime(std::atomic<bool>& busy) : busy_(busy) {
    if (busy_.exchange(true, std::memory_order_acquire))
      throw std::logic_error("lstm_native::Stream: called while another call on the same stream runs (from another "
                             "thread); a stream serves one thread at a time: give each thread its own (Model::stream)");
  }
  ~OneCallAtATime() { busy_.store(false, std::memory_order_release); }
  OneCallAtATime(const OneCallAtATime&) = delete;
  OneCallAtATime& operator=(const OneCallAtATime&) = delete;

 private:
  std::atomic<bool>& busy_;
};

void require_step_shape(const Array& x, const std::vector<std::int64_t>& shape, std::int64_t size) {
  if (x.shape != shape || std::int64_t(x.values.size()) != size)
    throw std::invalid_argument("x: expected one step of shape " + shape_to_string(shape) +
                                " (the model's input without its time axis), got " + shape_to_string(x.shape) + " with " +
                                std::to_string(x.values.size()) + " values");
}

}  // namespace

Stream Model::stream(std::int64_t batch) const {
  if (batch < 1) throw std::invalid_argument("batch: expected at least 1 stream, got " + std::to_string(batch));
  const std::vector<std::int64_t>& input = impl_->input_shape;  // [T, ...]
  detail::StepShape shape{{batch}, true};
  for (std::size_t k = 1; k < input.size(); ++k) {
    if (input[k] < 1)
      throw std::invalid_argument("the model's input leaves dimension " + std::to_string(k + 1) +
                                  " open (null in its input shape): a stream needs every dimension but time");
    shape.dims.push_back(input[k]);
  }
  auto impl = std::make_unique<Stream::Impl>();
  impl->input_shape = shape.dims;
  impl->model_layers = impl_->layers;
  for (const auto& layer : impl_->layers) {
    impl->layers.push_back(layer->stepper(shape));
    impl->state_size += impl->layers.back()->state_size();
  }
  if (impl->state_size == 0)
    throw std::invalid_argument("the model has no LSTM layer: nothing to stream (predict runs it whole)");
  impl->output_shape = shape.dims;
  impl->sequence_output = shape.time_axis;
  impl->input_size = element_count(impl->input_shape);
  impl->output_size = element_count(impl->output_shape);
  impl->output = Array{impl->output_shape, std::vector<float>(impl->output_size)};
  return Stream(std::move(impl));
}

Stream::Stream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;
Stream::~Stream() = default;

const Array& Stream::step(const Array& x) {
  OneCallAtATime hold(impl_->busy);
  require_step_shape(x, impl_->input_shape, impl_->input_size);
  const float* y = impl_->run(x.values.data());
  std::copy(y, y + impl_->output_size, impl_->output.values.begin());
  return impl_->output;
}

void Stream::step(const float* x, float* y) {
  OneCallAtATime hold(impl_->busy);
  const float* out = impl_->run(x);
  std::copy(out, out + impl_->output_size, y);
}

Array Stream::steps(const Array& x) {
  OneCallAtATime hold(impl_->busy);
  const std::vector<std::int64_t>& step_shape = impl_->input_shape;
  std::vector<std::int64_t> expected = step_shape;
  expected.insert(expected.begin() + 1, -1);
  bool ok = x.shape.size() == expected.size() && x.shape[1] >= 1;
  for (std::size_t k = 0; ok && k < expected.size(); ++k) ok = k == 1 || x.shape[k] == expected[k];
  if (!ok || std::int64_t(x.values.size()) != element_count(x.shape))
    throw std::invalid_argument("x: expected a chunk of shape " + shape_to_string(expected) + " (-1: steps >= 1), got " +
                                shape_to_string(x.shape) + " with " + std::to_string(x.values.size()) + " values");
  const std::int64_t B = step_shape[0], S = x.shape[1];
  const std::int64_t in_row = impl_->input_size / B, out_row = impl_->output_size / B;
  Array y{impl_->output_shape, {}};
  if (impl_->sequence_output) y.shape.insert(y.shape.begin() + 1, S);
  y.values.resize(element_count(y.shape));
  std::vector<float> frame(impl_->input_size);
  for (std::int64_t s = 0; s < S; ++s) {
    for (std::int64_t b = 0; b < B; ++b)
      std::copy(&x.values[(b * S + s) * in_row], &x.values[(b * S + s + 1) * in_row], &frame[b * in_row]);
    const float* out = impl_->run(frame.data());
    if (impl_->sequence_output) {
      for (std::int64_t b = 0; b < B; ++b) std::copy(out + b * out_row, out + (b + 1) * out_row, &y.values[(b * S + s) * out_row]);
    } else if (s == S - 1) {
      std::copy(out, out + impl_->output_size, y.values.begin());
    }
  }
  return y;
}

void Stream::reset() {
  OneCallAtATime hold(impl_->busy);
  for (const auto& layer : impl_->layers) layer->reset();
}

std::vector<float> Stream::state() const {
  OneCallAtATime hold(impl_->busy);
  std::vector<float> state(impl_->state_size);
  float* at = state.data();
  for (const auto& layer : impl_->layers) {
    layer->read_state(at);
    at += layer->state_size();
  }
  return state;
}

void Stream::set_state(const std::vector<float>& state) {
  OneCallAtATime hold(impl_->busy);
  if (std::int64_t(state.size()) != impl_->state_size)
    throw std::invalid_argument("state: expected " + std::to_string(impl_->state_size) +
                                " values (Stream::state() of a stream of this model and batch), got " +
                                std::to_string(state.size()));
  const auto bad = std::find_if(state.begin(), state.end(), [](float v) { return !std::isfinite(v); });
  if (bad != state.end())
    throw std::invalid_argument("state: holds a value that is not a finite number (" + std::to_string(*bad) + ")");
  const float* at = state.data();
  for (const auto& layer : impl_->layers) {
    layer->write_state(at);
    at += layer->state_size();
  }
}

std::int64_t Stream::state_size() const { return impl_->state_size; }
std::int64_t Stream::batch() const { return impl_->input_shape[0]; }
const std::vector<std::int64_t>& Stream::step_input_shape() const { return impl_->input_shape; }
const std::vector<std::int64_t>& Stream::step_output_shape() const { return impl_->output_shape; }
std::int64_t Stream::step_input_size() const { return impl_->input_size; }
std::int64_t Stream::step_output_size() const { return impl_->output_size; }
bool Stream::sequence_output() const { return impl_->sequence_output; }

}  // namespace lstm_native
