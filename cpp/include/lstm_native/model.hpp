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

#include <cstddef>
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

class Stream;

class Model {
 public:
  static Model load(const std::string& path);
  // The same from a model file's bytes in memory (a model compiled into a program); `name` stands for the file
  // in error messages.
  static Model load_from_memory(const void* data, std::size_t size, const std::string& name = "<memory>");

  // x [B, T, ...] as the model's first layer expects -> the last layer's output.
  Array predict(const Array& x) const;

  // A streaming session of `batch` independent streams (Stream, below), its state zero. Throws
  // std::invalid_argument for a model that cannot stream: a Bidirectional layer or a go_backwards LSTM (they
  // read the future of the sequence), no LSTM at all, or an input dimension other than time left open.
  Stream stream(std::int64_t batch) const;

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

// Streaming inference: the model run one time step at a time on `batch` streams, every LSTM layer's h and c kept
// between calls, so that feeding a sequence step by step (or chunk by chunk) gives what predict gives for it.
//
//   lstm_native::Stream stream = model.stream(1);
//   lstm_native::Array x{stream.step_input_shape(), std::vector<float>(stream.step_input_size())};
//   for (;;) { /* fill x.values with the next frame */ const lstm_native::Array& y = stream.step(x); }
//
// A step runs on the calling thread and, after the first, allocates nothing; it throws only for an input of
// the wrong shape (and an Embedding's id out of range). The session holds its own copy of the weights (packed
// for the step): it outlives its Model. Sessions are independent: several may step at once on several
// threads; one session steps one call at a time (a second thread's concurrent call throws std::logic_error).
class Stream {
 public:
  // One step: x [B, features...] (the model's input without its time axis) -> the last layer's output for this
  // step, [B, out...]: predict's output at this step for a model whose output keeps the time axis, else what
  // predict would give for the sequence ending here. The array is the session's own, overwritten by the next
  // call.
  const Array& step(const Array& x);
  // The same on raw memory: step_input_size() values at x, step_output_size() written at y.
  void step(const float* x, float* y);
  // A chunk of steps, x [B, S, features...] -> what predict gives for it, the state carried in and out:
  // [B, S, out...], or [B, out...] (its last step's) for a model whose output has no time axis.
  Array steps(const Array& x);

  // Every state back to zero.
  void reset();
  // The state of every LSTM layer, h then c, layer after layer (state_size() values), to restore later.
  std::vector<float> state() const;
  void set_state(const std::vector<float>& state);
  std::int64_t state_size() const;

  std::int64_t batch() const;
  const std::vector<std::int64_t>& step_input_shape() const;   // [B, features...]
  const std::vector<std::int64_t>& step_output_shape() const;  // [B, out...]
  std::int64_t step_input_size() const;
  std::int64_t step_output_size() const;
  // Whether the model's output keeps the time axis (every LSTM returns sequences): steps() then gives every step.
  bool sequence_output() const;

  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  ~Stream();

  struct Impl;

 private:
  friend class Model;
  explicit Stream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lstm_native
