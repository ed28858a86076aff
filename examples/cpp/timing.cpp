// Times the installed library at one size (bench/cpp_vs_python.py runs it beside the Python module): a
// diagonal-peephole LSTM in float32, inference (forward_inference) and a training step (forward_training,
// then backward with dy, every gradient computed), each `repeats` times after a warm-up call. Prints the
// build of the CPU code in use, the threads, and the median seconds per call of each mode.
//
//   timing_example B T I H repeats [threads]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <vector>

#include <lstm_native/lstm_native.hpp>

#include "pattern.hpp"

namespace ln = lstm_native;

double median_seconds(int repeats, const std::function<void()>& call) {
  call();  // warm-up: first-use choices, allocations, caches
  std::vector<double> seconds;
  for (int k = 0; k < repeats; ++k) {
    const auto start = std::chrono::steady_clock::now();
    call();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s B T I H repeats [threads]\n", argv[0]);
    return 2;
  }
  const std::int64_t B = std::atoll(argv[1]), T = std::atoll(argv[2]), I = std::atoll(argv[3]), H = std::atoll(argv[4]);
  const int repeats = std::atoi(argv[5]);
  try {
    if (B < 1 || T < 1 || I < 1 || H < 1 || repeats < 1)
      throw std::invalid_argument("B, T, I, H and repeats: expected positive integers");
    if (argc > 6) ln::set_num_threads(std::atoll(argv[6]));
    ln::CellConfig config;
    config.input_size = I;
    config.hidden_size = H;
    config.peephole = ln::Peephole::Diagonal;
    const std::vector<float> x = pattern(B * T * I, 0.1f), W = pattern(I * 4 * H, 1.0f), U = pattern(H * 4 * H, 2.0f),
                             b = pattern(4 * H, 3.0f), p = pattern(3 * H, 4.0f), dy = pattern(B * T * H, 5.0f);
    const ln::Weights<float> weights{{W.data(), {I, 4 * H}}, {U.data(), {H, 4 * H}}, {b.data(), {4 * H}},
                                     {p.data(), {3, H}}};
    const ln::SequenceInput<float> in{{x.data(), {B, T, I}}, {}, {}, {}};
    std::vector<float> y(B * T * H), h(B * H), c(B * H), workspace(ln::training_workspace_size(config, B, T));
    const ln::SequenceOutput<float> out{{y.data(), {B, T, H}}, {h.data(), {B, H}}, {c.data(), {B, H}}};
    std::vector<float> dx(x.size()), dh0(B * H), dc0(B * H), dW(W.size()), dU(U.size()), db(b.size()), dp(p.size());
    const ln::Gradients<float> grads{{dx.data(), {B, T, I}}, {dh0.data(), {B, H}}, {dc0.data(), {B, H}},
                                     {dW.data(), {I, 4 * H}}, {dU.data(), {H, 4 * H}}, {db.data(), {4 * H}},
                                     {dp.data(), {3, H}}, {}};
    const ln::Workspace<float> work{workspace.data(), static_cast<std::int64_t>(workspace.size())};

    const double inference = median_seconds(repeats, [&] { ln::forward_inference<float>(config, weights, in, out); });
    const double train = median_seconds(repeats, [&] {
      ln::forward_training<float>(config, weights, in, out, work);
      ln::backward<float>(config, weights, {}, B, T, {{dy.data(), {B, T, H}}, {}, {}}, work, grads);
    });
    std::printf("isa %s\nthreads %d\ninference %.9g\ntrain %.9g\n", ln::active_isa(), ln::get_num_threads(), inference,
                train);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lstm_native: %s\n", error.what());
    return 1;
  }
  return 0;
}
