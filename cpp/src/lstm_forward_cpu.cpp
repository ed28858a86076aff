// Forward pass on the CPU (docs/DESIGN.md §3): one GEMM x W over all steps (inference: per chunk of steps), then
// per step one GEMM h_{t-1} U (plus the peephole GEMMs c P_k for Peephole::Full), one fused elementwise pass
// over the batch rows, and with a projection one GEMM h_t = m_t W_hr.
#include <algorithm>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "lstm_native/forward.hpp"
#include "packed_gemm_cpu.hpp"
#include "pointwise_cpu.hpp"
#include "regularization_cpu.hpp"
#include "sequence_cpu.hpp"

namespace lstm_native {
namespace detail {
namespace {

// gates [rows,4H] = x [rows,I] W + b for the valid rows, zero for the others: the gates of a masked step are
// never read, but a training workspace must never hold what its memory held before (it is handed to callers:
// ops' pool, the PyTorch operator's output tensor).
template <class T>
RowsProduct<T, Eigen::ColMajor> input_projection(const CellConfig& config, const Weights<T>& weights) {
  const std::int64_t G = 4 * config.hidden_size;
  return {weights.W.data, G, config.input_size, G, weights.b.empty() ? nullptr : weights.b.data};
}

template <class T>
void initial_state(const Tensor<const T>& given, T* state, std::int64_t count) {
  if (given.empty())
    std::fill(state, state + count, T(0));
  else
    std::copy(given.data, given.data + count, state);
}

// What the recurrence needs of a call's regularization.
template <class T>
struct StepRegularization {
  const Regularization& reg;
  bool training;
  const T* U;               // the recurrent kernel to use (weight-dropped in training)
  const T* recurrent_mask;  // [B,Ho] variational mask on h_{t-1} in z_t, or nullptr
  T* c_new;                 // [T,B,H] where training keeps the pre-zoneout cell states, or nullptr
};

// The recurrence of one chunk of steps for batch rows [first, last): per step z += h_{t-1} U (and c P_k for
// full peepholes), the fused elementwise pass of each row, and with a projection h_t = m_t W_hr for the rows
// at once. The final states go to out.h_n, out.c_n after the last chunk.
// recurrent: Uᵀ packed for the column-major view of z_tᵀ += Uᵀ h_{t-1}ᵀ.
template <class T, class V>
void forward_rows(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                  const SequenceOutput<T>& out, SequenceDims dims, const ForwardBuffers<T>& buf,
                  const StepRegularization<T>& regularization, const PackedLhsGemm<T, Eigen::ColMajor>& recurrent,
                  StepChunk steps, std::int64_t first, std::int64_t last) {
  const std::int64_t B = dims.batch, time = dims.time, H = config.hidden_size, G = 4 * H;
  const std::int64_t Ho = output_size(config), rows = last - first;
  const bool projected = config.projection_size > 0;
  const T* p = weights.peephole.data;
  const std::uint8_t* mask = in.mask.data;
  auto peephole_matrix = [&](std::int64_t k) { return matrix(p + k * H * H, H, H); };
  // h_{t-1} with recurrent dropout, the rows' zoneout weights, and inference's m_t of the chunk's rows
  std::vector<T> h_dropped(regularization.recurrent_mask ? rows * Ho : 0), d_h(V::zoneout ? rows * H : 0);
  std::vector<T> d_c(d_h.size()), m_scratch(projected && buf.m == nullptr ? rows * H : 0);
  std::vector<std::int64_t> active;  // with a mask: the rows whose step t is valid, as offsets from first
  std::vector<T> h_gathered, z_gathered;
  if (V::zoneout && !regularization.training)  // the expectation, the same at every step
    zoneout_weights(regularization.reg, false, 0, first, rows, B, H, d_h.data(), d_c.data());

  for (std::int64_t t = steps.begin; t < steps.end; ++t) {
    T* gates = buf.gates + (t - steps.gates_from) * buf.gate_step;
    const T* h_prev = buf.h + buf.slot(t) * B * Ho;
    const T* c_prev = buf.c + buf.slot(t) * B * H;
    T* h_cur = buf.h + buf.slot(t + 1) * B * Ho;
    T* c_cur = buf.c + buf.slot(t + 1) * B * H;
    // Where row b's cell output o ⊙ tanh(c̃) goes: m_t (projected), else h_t itself.
    auto cell_output_row = [&](std::int64_t b) {
      if (!projected) return h_cur + b * H;
      return buf.m ? buf.m + (t * B + b) * H : m_scratch.data() + (b - first) * H;
    };
    auto Z = matrix(gates + first * buf.gate_row, rows, G, buf.gate_row);
    const T* h_in = h_prev + first * Ho;
    if (regularization.recurrent_mask) {
      for (std::int64_t k = 0; k < rows * Ho; ++k)
        h_dropped[k] = h_prev[first * Ho + k] * regularization.recurrent_mask[first * Ho + k];
      h_in = h_dropped.data();
    }
    if (mask == nullptr) {
      recurrent.multiply_add(h_in, Ho, rows, Z.data(), buf.gate_row);  // z_t += h_{t-1} U
    } else {  // only for the rows whose step is valid: a masked step never reads z_t
      active_rows(mask, t, time, first, last, active);
      recurrent.multiply_add_columns(h_in, Ho, rows, Z.data(), buf.gate_row, active.data(), std::int64_t(active.size()),
                                     h_gathered, z_gathered);
    }
    if (V::zoneout && regularization.training)
      zoneout_weights(regularization.reg, true, t, first, rows, B, H, d_h.data(), d_c.data());
    if constexpr (V::full) {  // z_k += c_{t-1} P_k for the gates that peek at c_{t-1}
      const auto C_prev = matrix(c_prev + first * H, rows, H);
      Z.leftCols(H).noalias() += C_prev * peephole_matrix(kPeepI);
      Z.middleCols(H, H).noalias() += C_prev * peephole_matrix(kPeepF);
      if constexpr (!V::current) Z.rightCols(H).noalias() += C_prev * peephole_matrix(kPeepO);
    }
    auto cell = [&](std::int64_t b) {
      T* c_row = c_cur + b * H;
      if (valid_step(mask, b, t, time))
        cell_forward_row<T, V::diagonal>(gates + b * buf.gate_row, c_prev + b * H, p, c_row, H);
      else
        std::copy(c_prev + b * H, c_prev + (b + 1) * H, c_row);
    };
    auto output = [&](std::int64_t b) {
      T* out_row = cell_output_row(b);
      if (valid_step(mask, b, t, time)) {
        const T* c_src = (V::current ? c_cur : c_prev) + b * H;
        T* c_new = regularization.c_new ? regularization.c_new + (t * B + b) * H : nullptr;
        const std::int64_t row = V::zoneout ? (b - first) * H : 0;
        const ZoneoutRow<T> zoneout{d_h.data() + row, d_c.data() + row, h_prev + b * H, c_prev + b * H, c_new};
        output_forward_row<T, V::diagonal, V::zoneout>(gates + b * buf.gate_row, c_src, c_cur + b * H, p, out_row,
                                                       zoneout, H);
      } else {
        if (projected) std::fill(out_row, out_row + H, T(0));  // no m_t: nothing for ∂L/∂W_hr to gather
        if (regularization.c_new)  // defined values, though dz_o = 0 at a masked step
          std::copy(c_prev + b * H, c_prev + (b + 1) * H, regularization.c_new + (t * B + b) * H);
      }
    };
    // h_t of a masked row is the carried h_{t-1}; y_t (when asked for) is h_t, or 0 at a masked step with
    // zero_output_for_mask.
    auto emit = [&](std::int64_t b) {
      T* h_row = h_cur + b * Ho;
      const bool valid = valid_step(mask, b, t, time);
      if (!valid) std::copy(h_prev + b * Ho, h_prev + (b + 1) * Ho, h_row);
      if (out.y.empty()) return;
      T* y_row = out.y.data + (b * time + t) * Ho;
      if (!valid && config.zero_output_for_mask)
        std::fill(y_row, y_row + Ho, T(0));
      else
        std::copy(h_row, h_row + Ho, y_row);
    };
    if constexpr (V::split_pass) {
      for (std::int64_t b = first; b < last; ++b) cell(b);
      Z.rightCols(H).noalias() += matrix(static_cast<const T*>(c_cur) + first * H, rows, H) * peephole_matrix(kPeepO);
      for (std::int64_t b = first; b < last; ++b) output(b);
    } else {
      for (std::int64_t b = first; b < last; ++b) {
        cell(b);
        output(b);
      }
    }
    if (projected)  // h_t = m_t W_hr
      matrix(h_cur + first * Ho, rows, Ho).noalias() =
          matrix(static_cast<const T*>(cell_output_row(first)), rows, H) * matrix(weights.projection.data, H, Ho);
    for (std::int64_t b = first; b < last; ++b) emit(b);
  }
  if (steps.end < time) return;
  const std::int64_t h_final = buf.slot(time) * B * Ho + first * Ho, c_final = buf.slot(time) * B * H + first * H;
  if (!out.h_n.empty()) std::copy(buf.h + h_final, buf.h + h_final + rows * Ho, out.h_n.data + first * Ho);
  if (!out.c_n.empty()) std::copy(buf.c + c_final, buf.c + c_final + rows * H, out.c_n.data + first * H);
}

// The recurrence over all batch rows for the config's variant: chunk of steps after chunk of steps (see
// steps_per_chunk), each spread over the threads by batch rows. chunk_buffers(begin, end) gives the pair
// (buffers whose gates hold x W + b of steps [begin, end), the step those gates start at); inference
// computes them there and then. Checks for cancellation between chunks.
template <class T, class ChunkBuffers>
void forward_steps(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                   const SequenceOutput<T>& out, SequenceDims dims, const StepRegularization<T>& regularization,
                   const ChunkBuffers& chunk_buffers) {
  dispatch_variant(config, regularization.reg.zoneout(), [&](auto variant) {
    using V = decltype(variant);
    const std::int64_t H = config.hidden_size, Ho = output_size(config);
    const double step_work = double(Ho + 8) * double(4 * H) + (config.projection_size > 0 ? double(H * Ho) : 0.0);
    const std::int64_t rows = recurrence_chunk_rows(dims.batch, H);
    const std::int64_t steps = steps_per_chunk(dims.batch, dims.time, step_work, H);
    const PackedLhsGemm<T, Eigen::ColMajor> recurrent(regularization.U, 4 * H, 4 * H, Ho, std::min(rows, dims.batch));
    for (std::int64_t begin = 0; begin < dims.time; begin += steps) {
      const std::int64_t end = std::min(dims.time, begin + steps);
      const auto chunk = chunk_buffers(begin, end);  // (buffers, the step its gates start at)
      const auto bounds = recurrence_row_bounds(in.mask.data, dims.batch, dims.time, rows, begin, end);
      parallel_ranges(bounds, double(dims.batch * (end - begin)) * step_work, [&](std::int64_t first, std::int64_t last) {
        forward_rows<T, V>(config, weights, in, out, dims, chunk.first, regularization, recurrent,
                           StepChunk{begin, end, chunk.second}, first, last);
      });
      throw_if_cancelled();
    }
  });
}

// x[:, begin:end] as rows [B·(end-begin), I] (b-major): x itself where those rows are contiguous, else a copy
// in `scratch`.
template <class T>
const T* input_rows(const Tensor<const T>& x, std::int64_t begin, std::int64_t end, std::vector<T>& scratch) {
  const std::int64_t B = x.shape[0], time = x.shape[1], I = x.shape[2], steps = end - begin;
  if (B == 1 || steps == time) return x.data + begin * I;
  scratch.resize(static_cast<std::size_t>(B * steps * I));
  for (std::int64_t b = 0; b < B; ++b)
    std::copy(x.data + (b * time + begin) * I, x.data + (b * time + end) * I, scratch.data() + b * steps * I);
  return scratch.data();
}

}  // namespace

}  // namespace detail

template <class T>
void forward_inference(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                       const SequenceOutput<T>& out, const Regularization& regularization) {
  using namespace detail;
  validate(config, regularization);
  const SequenceDims dims = validate_forward(config, weights, in, out, SequenceOutputs::Optional);
  const std::int64_t B = dims.batch, H = config.hidden_size, Ho = output_size(config);
  std::vector<T> x_rows, h(2 * B * Ho), c(2 * B * H);
  std::unique_ptr<T[]> gates;  // not zeroed: the projection writes every element (small: 1.6 MB a call)
  initial_state(in.h0, h.data(), B * Ho);
  initial_state(in.c0, c.data(), B * H);
  // The gates of one chunk of steps, batch-first: row b of step t at (b*steps + t - begin)*4H, so that
  // x W of the chunk is one product.
  const auto project_inputs = input_projection(config, weights);
  auto chunk_buffers = [&](std::int64_t begin, std::int64_t end) {
    const std::int64_t steps = end - begin;
    if (!gates) gates.reset(new T[static_cast<std::size_t>(B * steps * 4 * H)]);  // the first chunk is the longest
    const ValidRows valid = valid_rows(in.mask.data, B * steps, dims.time, [&](std::int64_t r) {
      return std::pair{r / steps, begin + r % steps};
    });
    project_inputs(input_rows(in.x, begin, end, x_rows), B * steps, valid, gates.get());
    return std::pair{ForwardBuffers<T>{gates.get(), 4 * H, steps * 4 * H, h.data(), c.data(), nullptr, true}, begin};
  };
  forward_steps(config, weights, in, out, dims,
                StepRegularization<T>{regularization, false, weights.U.data, nullptr, nullptr}, chunk_buffers);
}

template <class T>
void forward_training(const CellConfig& config, const Weights<T>& weights, const SequenceInput<T>& in,
                      const SequenceOutput<T>& out, const Workspace<T>& workspace, const Regularization& regularization) {
  using namespace detail;
  validate(config, regularization);
  const SequenceDims dims = validate_forward(config, weights, in, out, SequenceOutputs::Optional);
  const std::int64_t B = dims.batch, time = dims.time, H = config.hidden_size, Ho = output_size(config);
  const WorkspaceLayout<T> ws = workspace_layout(config, B, time, regularization, workspace);
  const CallMasks<T> masks = draw_call_masks(regularization, config, B, weights.U.data);
  swap_leading_axes(in.x.data, B, time, config.input_size, ws.x_tm);
  if (!masks.input.empty()) apply_sequence_mask(ws.x_tm, time * B, B, config.input_size, masks.input.data());
  input_projection(config, weights)(static_cast<const T*>(ws.x_tm), time * B,
                                    time_major_valid_rows(in.mask.data, B, time), ws.gates);
  initial_state(in.h0, ws.h, B * Ho);
  initial_state(in.c0, ws.c, B * H);
  throw_if_cancelled();
  const ForwardBuffers<T> buf{ws.gates, B * 4 * H, 4 * H, ws.h, ws.c, ws.m, false};
  const T* recurrent_mask = masks.recurrent.empty() ? nullptr : masks.recurrent.data();
  forward_steps(config, weights, in, out, dims,
                StepRegularization<T>{regularization, true, masks.recurrent_kernel(weights.U.data), recurrent_mask,
                                      ws.c_new},
                [&](std::int64_t, std::int64_t) { return std::pair{buf, std::int64_t{0}}; });
}

template <class T>
void read_trace(const CellConfig& config, std::int64_t batch, std::int64_t time, Tensor<const std::uint8_t> mask,
                const Workspace<T>& workspace, const Trace<T>& trace, const Regularization& regularization) {
  using namespace detail;
  const std::int64_t B = batch, H = config.hidden_size, Ho = output_size(config);
  const WorkspaceLayout<T> ws = workspace_layout(config, B, time, regularization, workspace);
  require_shape_or_empty("mask", mask, {B, time});
  const std::pair<const char*, const Tensor<T>*> outputs[] = {{"i", &trace.i}, {"f", &trace.f}, {"g", &trace.g},
                                                              {"o", &trace.o}, {"c", &trace.c}, {"h", &trace.h}};
  for (const auto& [name, tensor] : outputs) require_shape(name, *tensor, {B, time, name[0] == 'h' ? Ho : H});
  parallel_chunks(B, 1, double(time * 6 * H), [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t b = first; b < last; ++b)
      for (std::int64_t t = 0; t < time; ++t) {
        const std::int64_t row = (b * time + t) * H;  // batch-first output row
        const T* gates = ws.gates + (t * B + b) * 4 * H;
        const bool valid = valid_step(mask.data, b, t, time);
        for (std::int64_t k = 0; k < 4; ++k) {
          T* out = outputs[k].second->data + row;
          if (valid)
            std::copy(gates + k * H, gates + (k + 1) * H, out);
          else
            std::fill(out, out + H, T(0));
        }
        const std::int64_t c_state = ((t + 1) * B + b) * H, h_state = ((t + 1) * B + b) * Ho;
        std::copy(ws.c + c_state, ws.c + c_state + H, trace.c.data + row);
        std::copy(ws.h + h_state, ws.h + h_state + Ho, trace.h.data + (b * time + t) * Ho);
      }
  });
}

#define LSTM_NATIVE_INSTANTIATE_FORWARD(T)                                                                      \
  template void forward_inference<T>(const CellConfig&, const Weights<T>&, const SequenceInput<T>&,            \
                                     const SequenceOutput<T>&, const Regularization&);                         \
  template void forward_training<T>(const CellConfig&, const Weights<T>&, const SequenceInput<T>&,             \
                                    const SequenceOutput<T>&, const Workspace<T>&, const Regularization&);     \
  template void read_trace<T>(const CellConfig&, std::int64_t, std::int64_t, Tensor<const std::uint8_t>,       \
                              const Workspace<T>&, const Trace<T>&, const Regularization&);
LSTM_NATIVE_INSTANTIATE_FORWARD(float)
LSTM_NATIVE_INSTANTIATE_FORWARD(double)
#undef LSTM_NATIVE_INSTANTIATE_FORWARD

}  // namespace lstm_native
