// lstm_native: the peephole LSTM cell, forward and backward, over whole sequences.
//
// Shape legend, used by every header of this library:
//   B  batch size          T  time steps (sequence length)
//   I  input size          H  hidden size (units)
//   Tensors are dense and C-contiguous (row-major); shapes are written [dim0, dim1, ...].
//
// The cell (docs/DESIGN.md §1), per time step t and batch row:
//   z_t = x_t W + h_{t-1} U + b            W [I,4H], U [H,4H], b [4H]; gate blocks [i, f, g, o]
//   i_t = σ(z_i + peep_i(c_{t-1}))
//   f_t = σ(z_f + peep_f(c_{t-1}))
//   g_t = tanh(z_g)
//   c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
//   o_t = σ(z_o + peep_o(c_t))             c_{t-1} instead when OutputPeepholeSource::Previous
//   h_t = o_t ⊙ tanh(c_t)
// Peephole weights P, gate order [i, f, o]:
//   Peephole::Diagonal  P [3,H]     peep_k(c) = P[k] ⊙ c
//   Peephole::Full      P [3,H,H]   peep_k(c) = c P[k]   (row vector times matrix)
//   Peephole::None      no P: the standard LSTM of PyTorch nn.LSTM and Keras LSTM.
//
// Conventions, decided once for the whole API:
//   - Input and output sequences are batch-first: x [B,T,I], y [B,T,H].
//   - The caller owns every buffer. Views (Tensor<T>) never own memory.
//   - Optional arguments are empty views (data == nullptr); an empty h0/c0 means zeros, an empty bias
//     means zeros, an empty mask means every step is valid.
//   - Gradients are OVERWRITTEN, never accumulated.
//   - Inputs and outputs must not alias each other.
//   - Every function validates all shapes first and throws std::invalid_argument naming the argument,
//     the expected shape and the received one, before it touches any output.
//   - Scalar types: float and double.
#pragma once

#include "lstm_native/config.hpp"
#include "lstm_native/tensor.hpp"
#include "lstm_native/cell.hpp"
#include "lstm_native/regularization.hpp"
#include "lstm_native/forward.hpp"
#include "lstm_native/step.hpp"
#include "lstm_native/backward.hpp"
#include "lstm_native/threads.hpp"
#include "lstm_native/cpu.hpp"
