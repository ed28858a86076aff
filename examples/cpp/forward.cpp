// Runs one forward pass of a diagonal-peephole LSTM through the installed C++ API and prints the build of the
// CPU code it ran (lstm_native/cpu.hpp) and the final hidden state. The weights and inputs follow a formula, so that Python can recompute the same numbers
// (tests/test_cpp_consumer.py does).
#include <cstdio>
#include <exception>
#include <vector>

#include <lstm_native/lstm_native.hpp>

#include "pattern.hpp"

int main() {
  namespace ln = lstm_native;
  const std::int64_t B = 2, T = 5, I = 3, H = 4;
  ln::CellConfig config;
  config.input_size = I;
  config.hidden_size = H;
  config.peephole = ln::Peephole::Diagonal;

  const std::vector<float> x = pattern(B * T * I, 0.1f), W = pattern(I * 4 * H, 1.0f), U = pattern(H * 4 * H, 2.0f),
                           b = pattern(4 * H, 3.0f), p = pattern(3 * H, 4.0f);
  const ln::Weights<float> weights{{W.data(), {I, 4 * H}}, {U.data(), {H, 4 * H}}, {b.data(), {4 * H}},
                                   {p.data(), {3, H}}};
  std::vector<float> y(B * T * H), h(B * H), c(B * H);
  try {
    ln::forward_inference<float>(config, weights, {{x.data(), {B, T, I}}, {}, {}, {}},
                                 {{y.data(), {B, T, H}}, {h.data(), {B, H}}, {c.data(), {B, H}}});
  } catch (const std::exception& error) {  // bad arguments; an LSTM_NATIVE_ISA this CPU cannot run
    std::fprintf(stderr, "lstm_native: %s\n", error.what());
    return 1;
  }
  std::printf("lstm_native %s (%s code), final h:\n", LSTM_NATIVE_VERSION, ln::active_isa());
  for (float value : h) std::printf("%.9g\n", value);
  return 0;
}
