// Loads a model saved from Python (model.save("model.safetensors")) and runs it on an input given as raw
// little-endian float32 values (numpy: x.astype("<f4").tofile(path)) of the shape on the command line.
// Prints the output's shape on the first line, then one value per line.
//
//   predict_example model.safetensors input.f32 B T [F]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <lstm_native/model.hpp>

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s MODEL INPUT.f32 B T [F]\n", argv[0]);
    return 2;
  }
  try {
    lstm_native::Array x;
    for (int k = 3; k < argc; ++k) x.shape.push_back(std::atoll(argv[k]));
    std::int64_t count = 1;
    for (std::int64_t d : x.shape) count *= d;
    x.values.resize(static_cast<std::size_t>(count));
    std::ifstream input(argv[2], std::ios::binary);
    if (!input.read(reinterpret_cast<char*>(x.values.data()), count * 4)) {
      std::fprintf(stderr, "%s: cannot read %lld float32 values\n", argv[2], static_cast<long long>(count));
      return 1;
    }
    const lstm_native::Model model = lstm_native::Model::load(argv[1]);
    const lstm_native::Array y = model.predict(x);
    for (std::size_t k = 0; k < y.shape.size(); ++k) std::printf("%s%lld", k ? " " : "", static_cast<long long>(y.shape[k]));
    std::printf("\n");
    for (float value : y.values) std::printf("%.9g\n", value);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s\n", error.what());
    return 1;
  }
  return 0;
}
