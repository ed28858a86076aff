// The cell's configuration and parameters (equations in lstm_native.hpp and docs/DESIGN.md §1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lstm_native/tensor.hpp"

namespace lstm_native {

enum class Peephole { None, Diagonal, Full };
enum class OutputPeepholeSource { Current, Previous };

// "none" | "diagonal" | "full"; throws std::invalid_argument for anything else.
Peephole parse_peephole(const std::string& name);
// "current" | "previous"; throws std::invalid_argument for anything else.
OutputPeepholeSource parse_output_peephole_source(const std::string& name);
const char* to_string(Peephole p);
const char* to_string(OutputPeepholeSource s);

struct CellConfig {
  std::int64_t input_size = 0;   // I
  std::int64_t hidden_size = 0;  // H: units of the cell state c and the gates
  // P: with P >= 1 the cell's output o_t ⊙ tanh(c_t) is projected to h_t = (o_t ⊙ tanh(c_t)) W_hr, h_t of
  // size P (LSTMP, Sak et al. 2014; PyTorch's proj_size); 0: no projection, h_t of size H.
  std::int64_t projection_size = 0;
  Peephole peephole = Peephole::Diagonal;
  OutputPeepholeSource output_peephole_source = OutputPeepholeSource::Current;
  // At a masked step the state is carried unchanged. The output there is the carried h (Keras) when
  // false, zero (ONNX, PyTorch packed sequences) when true.
  bool zero_output_for_mask = false;
};

// The size of h_t, y and h0: P with a projection, else H.
inline std::int64_t output_size(const CellConfig& config) {
  return config.projection_size > 0 ? config.projection_size : config.hidden_size;
}

// The config that weights of these shapes imply: H from U [H,4H] (or U [P,4H] and W_hr [H,P] when a
// projection's shape is given), I from W [I,4H]. Checks U's and W_hr's shapes and W's rank
// (std::invalid_argument naming the matrix); validate(config, weights) checks the rest.
CellConfig config_from_shapes(const std::vector<std::int64_t>& W_shape, const std::vector<std::int64_t>& U_shape,
                              Peephole peephole, OutputPeepholeSource output_peephole_source,
                              bool zero_output_for_mask, const std::vector<std::int64_t>& projection_shape = {});

// Throws std::invalid_argument unless I >= 1, H >= 1 and P >= 0.
void validate(const CellConfig& config);

// The shape the peephole weights must have: [3,H] diagonal, [3,H,H] full, {} for none.
std::vector<std::int64_t> peephole_shape(const CellConfig& config);

// One layer's parameters, read-only, owned by the caller.
template <class T>
struct Weights {
  Tensor<const T> W;           // [I,4H]  input kernel, gate blocks [i, f, g, o] along the columns
  Tensor<const T> U;           // [H,4H]  recurrent kernel, same blocks ([P,4H] with a projection)
  Tensor<const T> b;           // [4H]    optional (empty: no bias)
  Tensor<const T> peephole;    // [3,H] or [3,H,H] by config.peephole, gates [i, f, o]; empty for None
  Tensor<const T> projection;  // [H,P]   W_hr with config.projection_size = P >= 1; empty otherwise
};

// Throws std::invalid_argument unless every weight has the shape the config asks for.
template <class T>
void validate(const CellConfig& config, const Weights<T>& weights);

}  // namespace lstm_native
