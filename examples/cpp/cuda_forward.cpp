// examples/cpp/forward.cpp on a GPU through the installed CUDA backend (lstm_native::lstm_native_cuda): the
// same inputs, copied to the device, one forward pass there, the final hidden state copied back and printed.
// Without a usable GPU it says so and exits with status 0 (the program itself still links and runs).
#include <cstdio>
#include <stdexcept>
#include <vector>

#include <lstm_native/cuda.hpp>
#include <lstm_native/lstm_native.hpp>

#include "pattern.hpp"

namespace ln = lstm_native;

// A device copy of a host vector (or uninitialized device memory of n floats), freed with the object.
class DeviceVector {
 public:
  explicit DeviceVector(std::size_t n) : size_(n), data_(static_cast<float*>(ln::cuda::device_malloc(n * sizeof(float)))) {}
  explicit DeviceVector(const std::vector<float>& host) : DeviceVector(host.size()) {
    ln::cuda::copy_to_device(data_, host.data(), size_ * sizeof(float));
  }
  ~DeviceVector() { ln::cuda::device_free(data_); }
  DeviceVector(const DeviceVector&) = delete;
  DeviceVector& operator=(const DeviceVector&) = delete;
  float* data() const { return data_; }
  std::vector<float> to_host() const {
    std::vector<float> host(size_);
    ln::cuda::copy_to_host(host.data(), data_, size_ * sizeof(float));
    return host;
  }

 private:
  std::size_t size_;
  float* data_;
};

int main() {
  if (ln::cuda::device_count() == 0) {
    std::printf("lstm_native %s: no CUDA device\n", LSTM_NATIVE_VERSION);
    return 0;
  }
  const std::int64_t B = 2, T = 5, I = 3, H = 4;
  ln::CellConfig config;
  config.input_size = I;
  config.hidden_size = H;
  config.peephole = ln::Peephole::Diagonal;
  try {
    const DeviceVector x(pattern(B * T * I, 0.1f)), W(pattern(I * 4 * H, 1.0f)), U(pattern(H * 4 * H, 2.0f)),
        b(pattern(4 * H, 3.0f)), p(pattern(3 * H, 4.0f));
    const DeviceVector y(B * T * H), h(B * H), c(B * H);
    const ln::Weights<float> weights{{W.data(), {I, 4 * H}}, {U.data(), {H, 4 * H}}, {b.data(), {4 * H}},
                                     {p.data(), {3, H}}};
    ln::cuda::forward_inference<float>(config, weights, {{x.data(), {B, T, I}}, {}, {}, {}},
                                       {{y.data(), {B, T, H}}, {h.data(), {B, H}}, {c.data(), {B, H}}});
    ln::cuda::synchronize();
    std::printf("lstm_native %s, final h:\n", LSTM_NATIVE_VERSION);
    for (float value : h.to_host()) std::printf("%.9g\n", value);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lstm_native: %s\n", error.what());
    return 1;
  }
  return 0;
}
