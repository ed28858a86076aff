// The layers of lstm_native::Model, as cpp/src/model.cpp builds them from a file, and their parts of a stream
// (cpp/src/model_stream.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lstm_native/model.hpp"

namespace lstm_native {
namespace detail {

// The number of elements of an array of shape `dims`.
inline std::int64_t element_count(const std::vector<std::int64_t>& dims) {
  std::int64_t count = 1;
  for (std::int64_t d : dims) count *= d;
  return count;
}

using Mask = std::vector<std::uint8_t>;  // one byte per row of a layer's input or output (nonzero: valid); empty: none

// What one step of a stream passes from a layer to the next: rows × width values (row-major) and, where a layer
// made one, a mask of one byte per row.
struct StepData {
  const float* values;
  const std::uint8_t* mask;  // nullptr: every row valid
};

// The shape of a step's data between two layers: [B, ...] (a layer's sequence input or output without its time
// axis), and whether the sequence still has a time axis there (an LSTM without return_sequences ends it).
struct StepShape {
  std::vector<std::int64_t> dims;
  bool time_axis = true;
};

// One layer's part of a stream: its buffers and, for an LSTM, its state. step() allocates nothing. It may read its
// layer, which the stream keeps alive.
class LayerStep {
 public:
  virtual ~LayerStep() = default;
  virtual StepData step(StepData in) = 0;
  virtual std::int64_t state_size() const { return 0; }
  virtual void read_state(float*) const {}
  virtual void write_state(const float*) {}
  virtual void reset() {}
};

class Layer {
 public:
  virtual ~Layer() = default;
  // x -> the output; mask in: the input's mask, out: the output's.
  virtual Array forward(const Array& x, Mask& mask) const = 0;
  // This layer's part of a stream whose steps reach it with `shape`, which becomes its output's. Throws
  // std::invalid_argument where the layer cannot stream.
  virtual std::unique_ptr<LayerStep> stepper(StepShape& shape) const = 0;
  virtual std::string describe() const = 0;
};

}  // namespace detail

struct Model::Impl {
  std::vector<std::int64_t> input_shape;  // without the batch dimension; -1: left open
  // shared with the model's streams, whose steps read them (a Dense layer's kernel, an Embedding's table)
  std::vector<std::shared_ptr<const detail::Layer>> layers;
};

}  // namespace lstm_native
