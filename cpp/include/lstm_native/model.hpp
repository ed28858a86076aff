// Inference with a model saved from Python (model.save(path)): one safetensors file holding the weights and,
// in its header, the Sequential config (docs/DESIGN.md §5). Built when CMake finds nlohmann_json
// (LSTM_NATIVE_WITH_MODEL_IO in config.hpp).
//
//   auto model = lstm_native::Model::load("model.safetensors");
//   lstm_native::Array x{{B, T, I}, values};           // row-major; token ids as floats for an Embedding
//   lstm_native::Array y = model.predict(x);
//
// Layers: InputLayer, LSTM (every peephole variant, proj_size, return_sequences, go_backwards, masks, zoneout as its
// inference expectation), Bidirectional (concat, sum, mul, ave), Dense (its activations), Embedding
// (mask_zero), Masking, Dropout (identity at inference). Computation is float32; float64 weights are
// rounded to float32. Loading reads only a regular file (a FIFO, directory, socket or device throws
// ModelFileError, without blocking) and validates it (format, version, JSON, every tensor's name, dtype,
// shape, extent and finiteness, and the config by the rules of python/lstm_native/file_rules.py, the same
// the Python loader applies) and throws lstm_native::ModelFileError naming the file and the problem; predict
// throws std::invalid_argument for an input of the wrong shape. Token ids are float32 values: vocabularies
// are limited to 2**24, where float32 still tells every integer apart.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace lstm_native {

// A dense row-major float32 array that owns its values.
struct Array {
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};

class ModelFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Model {
 public:
  static Model load(const std::string& path);

  // x [B, T, ...] as the model's first layer expects -> the last layer's output.
  Array predict(const Array& x) const;

  // One line per layer: class, name and output width.
  std::string summary() const;

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  struct Impl;

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lstm_native
