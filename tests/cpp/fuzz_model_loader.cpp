// Fuzz target for the C++ model loader: lstm_native::Model::load on arbitrary bytes, then predict on a few
// input shapes. Every input must end in a model or a std::exception (ModelFileError, std::invalid_argument,
// std::bad_alloc), never a crash, a sanitizer report or a hang.
//
// Two builds of this one file:
//   - with libFuzzer: clang++ -fsanitize=fuzzer,address,undefined -DLSTM_NATIVE_LIBFUZZER ... (tests/cpp/libfuzzer.sh)
//   - without: a driver whose main() runs every file of the corpus directories (or the files) it is given and
//     prints one line per file, "<path>\tOK <output shape>" or "<path>\tERROR <message>"
//     (tests/test_model_loader_fuzz.py, and under AddressSanitizer by tests/cpp/sanitize.sh); with
//     LSTM_NATIVE_FUZZ_PRINT_VALUES=1 the output's values follow the shape (tests/test_loader_agreement.py
//     compares them with Python's predictions).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include <lstm_native/model.hpp>

namespace {

// Inputs of the shapes the corpus' models take: [B, T, F] with B = 2, T = 3, F = 1..6, and [B, T] token ids.
std::vector<lstm_native::Array> probe_inputs() {
  std::vector<lstm_native::Array> inputs;
  for (std::int64_t F = 1; F <= 6; ++F) {
    lstm_native::Array x{{2, 3, F}, std::vector<float>(2 * 3 * F)};
    for (std::size_t k = 0; k < x.values.size(); ++k) x.values[k] = (k % 5 == 4) ? 0.0f : 0.25f * float(k % 7) - 0.5f;
    inputs.push_back(std::move(x));
  }
  inputs.push_back({{2, 3}, {1, 2, 0, 3, 0, 1}});
  return inputs;
}

// Loads the model file at `path` and predicts; "OK <shape>" (and the values, with `values`) or throws.
std::string load_and_predict(const std::string& path, bool values = false) {
  const lstm_native::Model model = lstm_native::Model::load(path);
  (void)model.summary();
  std::string result = "OK no-input-shape-matched";
  for (const lstm_native::Array& x : probe_inputs()) {
    try {
      const lstm_native::Array y = model.predict(x);
      std::size_t count = 1;
      std::string shape;
      for (std::int64_t d : y.shape) {
        shape += (shape.empty() ? "" : "x") + std::to_string(d);
        count *= static_cast<std::size_t>(d);
      }
      if (count != y.values.size()) throw std::logic_error("predict: output shape " + shape + " does not match its values");
      result = "OK " + shape;
      if (values) {
        char text[32];
        for (float v : y.values) {
          std::snprintf(text, sizeof text, " %.9g", v);
          result += text;
        }
      }
    } catch (const std::invalid_argument&) {
      // an input of another shape than the model's: the next one
    }
  }
  return result;
}

std::string temp_path() {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/lstm_native_fuzz_" + std::to_string(getpid()) + ".safetensors";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = temp_path();
  {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    (void)load_and_predict(path);
  } catch (const std::exception&) {
    // a clean error
  }
  return 0;
}

#ifndef LSTM_NATIVE_LIBFUZZER
#include <algorithm>
#include <filesystem>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  std::vector<std::string> files;
  for (int k = 1; k < argc; ++k) {
    if (std::filesystem::is_directory(argv[k])) {
      for (const auto& entry : std::filesystem::directory_iterator(argv[k]))
        if (entry.is_regular_file()) files.push_back(entry.path().string());
    } else {
      files.push_back(argv[k]);
    }
  }
  std::sort(files.begin(), files.end());
  // LSTM_NATIVE_FUZZ_CASE_SECONDS: each file gets that long (SIGALRM ends the run, naming the file)
  const char* seconds = std::getenv("LSTM_NATIVE_FUZZ_CASE_SECONDS");
  const unsigned per_case = seconds ? static_cast<unsigned>(std::atoi(seconds)) : 0;
  const char* print_values = std::getenv("LSTM_NATIVE_FUZZ_PRINT_VALUES");
  const bool values = print_values && std::string(print_values) == "1";
  for (const std::string& file : files) {
    std::fprintf(stdout, "%s\t", file.c_str());
    std::fflush(stdout);  // a crash or a timeout names the file it happened on
    std::string result;
    if (per_case) alarm(per_case);
    try {
      result = load_and_predict(file, values);
    } catch (const std::exception& error) {
      result = std::string("ERROR ") + error.what();
    }
    for (char& c : result)
      if (c == '\n' || c == '\t') c = ' ';
    if (per_case) alarm(0);
    std::fprintf(stdout, "%s\n", (values ? result : result.substr(0, 2000)).c_str());
    std::fflush(stdout);
  }
  return 0;
}
#endif
