// A model saved from Python run as a stream, one step at a time, the way an audio callback or a sensor loop
// would: every frame of a test signal goes in as it "arrives", the state stays in the stream between calls.
// Prints the time of each step's call (median and 99th percentile over the steps after the first 100) and the
// last output.
//
//   stream_example model.safetensors [steps=20000]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <lstm_native/model.hpp>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL [STEPS]\n", argv[0]);
    return 2;
  }
  const long steps = argc > 2 ? std::atol(argv[2]) : 20000;
  constexpr long kWarmUp = 100;
  try {
    const lstm_native::Model model = lstm_native::Model::load(argv[1]);
    lstm_native::Stream stream = model.stream(1);  // one stream; its state starts at zero
    std::vector<float> frame(stream.step_input_size()), y(stream.step_output_size());
    std::vector<double> micros;
    for (long t = 0; t < steps + kWarmUp; ++t) {
      for (std::size_t k = 0; k < frame.size(); ++k) frame[k] = std::sin(0.05f * float(t) + float(k));
      const auto start = std::chrono::steady_clock::now();
      stream.step(frame.data(), y.data());  // after the first step: no allocation, no lock, no thread
      const auto end = std::chrono::steady_clock::now();
      if (t >= kWarmUp) micros.push_back(std::chrono::duration<double, std::micro>(end - start).count());
    }
    std::sort(micros.begin(), micros.end());
    std::printf("step_us median %.3f p99 %.3f steps %ld\n", micros[micros.size() / 2], micros[micros.size() * 99 / 100],
                steps);
    std::printf("last_output");
    for (float value : y) std::printf(" %.6g", value);
    std::printf("\n");
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s\n", error.what());
    return 1;
  }
  return 0;
}
