// Checks of lstm_native::Stream (tests/test_cpp_stream.py runs this program against the installed package):
//
//   stream_checks <model.safetensors> <x.f32> <B> <T> [<feature dimension>...]
//
// x.f32 holds x [B, T, ...] (float32, row-major; token ids as floats for an Embedding). Prints one line per check, "<check> <value>"; the test reads
// them:
//   predict_vs_steps <max |difference|>        every step's output against predict (its step, or its prefix)
//   predict_vs_chunks <max |difference|>       chunks of 1, 2 and the rest against predict
//   allocations_of_a_new_stream <count>        malloc/new calls while Model::stream runs (the counter works: > 0)
//   allocations_after_first_step <count>       malloc/new calls in the steps after the first (raw and Array steps)
//   reset_repeats <0|1>                        after reset(), the same outputs again, bit for bit
//   snapshot_restores <0|1>                    set_state(state()) mid-stream, then the same outputs
//   threads_agree <0|1>                        4 threads, a stream each, equal to one thread's outputs
//   concurrent_call_throws <0|1>               a call while another thread's call runs on the same stream throws
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <lstm_native/model.hpp>

// -- Allocation counting: every malloc-family call and operator new of the process, while `counting` is on. --
namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
void count() {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

// Under the sanitizers (tests/cpp/sanitize.sh), which own malloc, nothing is counted: the counts print as -1.
#ifndef STREAM_CHECKS_COUNT_ALLOCATIONS
#define STREAM_CHECKS_COUNT_ALLOCATIONS 1
#endif
#if STREAM_CHECKS_COUNT_ALLOCATIONS

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);

void* malloc(std::size_t size) {
  count();
  return __libc_malloc(size);
}
void* calloc(std::size_t n, std::size_t size) {
  count();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t size) {
  count();
  return __libc_realloc(p, size);
}
int posix_memalign(void** p, std::size_t alignment, std::size_t size) {
  count();
  *p = __libc_memalign(alignment, size);
  return *p ? 0 : ENOMEM;
}
void* aligned_alloc(std::size_t alignment, std::size_t size) {
  count();
  return __libc_memalign(alignment, size);
}
void* memalign(std::size_t alignment, std::size_t size) {
  count();
  return __libc_memalign(alignment, size);
}
void free(void* p) { __libc_free(p); }
}

void* operator new(std::size_t size) {
  if (void* p = malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { free(p); }
void operator delete[](void* p) noexcept { free(p); }
void operator delete(void* p, std::size_t) noexcept { free(p); }
void operator delete[](void* p, std::size_t) noexcept { free(p); }
#endif  // STREAM_CHECKS_COUNT_ALLOCATIONS

namespace {

using lstm_native::Array;

// The values of one step of x [B, T, ...] per sequence.
std::int64_t step_width(const Array& x) {
  std::int64_t width = 1;
  for (std::size_t k = 2; k < x.shape.size(); ++k) width *= x.shape[k];
  return width;
}

// Steps [begin, end) of x [B, T, ...] as a chunk [B, end - begin, ...].
Array slice(const Array& x, std::int64_t begin, std::int64_t end) {
  const std::int64_t B = x.shape[0], T = x.shape[1], F = step_width(x);
  Array chunk{x.shape, {}};
  chunk.shape[1] = end - begin;
  for (std::int64_t b = 0; b < B; ++b)
    chunk.values.insert(chunk.values.end(), x.values.begin() + (b * T + begin) * F, x.values.begin() + (b * T + end) * F);
  return chunk;
}

// Every step's output, one step at a time (Array steps).
std::vector<std::vector<float>> step_outputs(lstm_native::Stream& stream, const Array& x) {
  std::vector<std::vector<float>> outputs;
  for (std::int64_t t = 0; t < x.shape[1]; ++t) {
    Array frame = slice(x, t, t + 1);
    frame.shape.erase(frame.shape.begin() + 1);
    outputs.push_back(stream.step(frame).values);
  }
  return outputs;
}

double max_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (std::size_t k = 0; k < a.size(); ++k) worst = std::max(worst, double(std::fabs(a[k] - b[k])));
  return worst;
}

// predict's output that step t of a stream must give: predict's step t, or predict over steps [0, t].
std::vector<float> expected_at(const lstm_native::Model& model, const Array& x, std::int64_t t, bool sequence_output) {
  if (!sequence_output) return model.predict(slice(x, 0, t + 1)).values;
  const Array y = model.predict(x);
  const std::int64_t B = y.shape[0], T = y.shape[1], width = y.values.size() / (B * T);
  std::vector<float> at;
  for (std::int64_t b = 0; b < B; ++b)
    at.insert(at.end(), y.values.begin() + (b * T + t) * width, y.values.begin() + (b * T + t + 1) * width);
  return at;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: stream_checks <model.safetensors> <x.f32> <B> <T> [<feature dimension>...]\n");
    return 2;
  }
  Array x;
  for (int k = 3; k < argc; ++k) x.shape.push_back(std::atoll(argv[k]));
  const std::int64_t B = x.shape[0], T = x.shape[1], F = step_width(x);
  x.values.resize(B * T * F);
  std::ifstream(argv[2], std::ios::binary).read(reinterpret_cast<char*>(x.values.data()), std::streamsize(x.values.size() * 4));
  const lstm_native::Model model = lstm_native::Model::load(argv[1]);
  lstm_native::Stream stream = model.stream(B);
  const bool sequence_output = stream.sequence_output();

  const std::vector<std::vector<float>> outputs = step_outputs(stream, x);
  double worst = 0;
  for (std::int64_t t = 0; t < T; ++t) worst = std::max(worst, max_difference(outputs[t], expected_at(model, x, t, sequence_output)));
  std::printf("predict_vs_steps %.3g\n", worst);

  // Chunks: each against predict's steps of it, or (without a time axis in the output) the last against predict.
  stream.reset();
  const Array whole = model.predict(x);
  worst = 0;
  for (auto [begin, end] : {std::pair<std::int64_t, std::int64_t>{0, 1}, {1, 3}, {3, T}}) {
    const Array y = stream.steps(slice(x, begin, end));
    if (sequence_output)
      worst = std::max(worst, max_difference(y.values, slice(whole, begin, end).values));
    else if (end == T)
      worst = std::max(worst, max_difference(y.values, whole.values));
  }
  std::printf("predict_vs_chunks %.3g\n", worst);

  // The counter counts: making a stream allocates.
  counting = true;
  { const lstm_native::Stream counted = model.stream(B); }
  counting = false;
  std::printf("allocations_of_a_new_stream %ld\n", STREAM_CHECKS_COUNT_ALLOCATIONS ? allocations.exchange(0) : -1L);

  // Steps after the first allocate nothing: the raw step and the Array step.
  stream.reset();
  std::vector<float> frame(stream.step_input_size()), y(stream.step_output_size());
  Array frame_array{stream.step_input_shape(), frame};
  stream.step(frame.data(), y.data());
  counting = true;
  for (std::int64_t t = 1; t < T; ++t) {
    for (std::int64_t b = 0; b < B; ++b)
      std::copy(&x.values[(b * T + t) * F], &x.values[(b * T + t + 1) * F], &frame[b * F]);
    stream.step(frame.data(), y.data());
    std::copy(frame.begin(), frame.end(), frame_array.values.begin());
    stream.step(frame_array);
  }
  counting = false;
  std::printf("allocations_after_first_step %ld\n", STREAM_CHECKS_COUNT_ALLOCATIONS ? allocations.load() : -1L);

  stream.reset();
  std::printf("reset_repeats %d\n", int(step_outputs(stream, x) == outputs));

  stream.reset();
  const std::int64_t half = T / 2;
  stream.steps(slice(x, 0, half));
  const std::vector<float> state = stream.state();
  const Array rest = slice(x, half, T);
  const std::vector<float> after = stream.steps(rest).values;
  stream.reset();
  stream.set_state(state);
  std::printf("snapshot_restores %d\n", int(stream.steps(rest).values == after));

  std::vector<std::vector<std::vector<float>>> per_thread(4);
  std::vector<std::thread> threads;
  for (auto& result : per_thread)
    threads.emplace_back([&model, &x, &result, B] {
      lstm_native::Stream own = model.stream(B);
      result = step_outputs(own, x);
    });
  for (auto& thread : threads) thread.join();
  bool agree = true;
  for (const auto& result : per_thread) agree = agree && result == outputs;
  std::printf("threads_agree %d\n", int(agree));

  // A long chunk in one thread; the main thread's calls meanwhile must throw, never run beside it.
  constexpr std::int64_t kLong = 200000;
  Array repeated{x.shape, {}};
  repeated.shape[0] = 1;
  repeated.shape[1] = kLong;
  for (std::int64_t k = 0; k < kLong; ++k) repeated.values.insert(repeated.values.end(), x.values.begin(), x.values.begin() + F);
  lstm_native::Stream single = model.stream(1);
  std::atomic<bool> started{false}, done{false};
  std::thread worker([&] {
    for (;;) {  // until it gets in (the main thread's short calls may hold the stream at first)
      try {
        started = true;
        single.steps(repeated);
        break;
      } catch (const std::logic_error&) {
      }
    }
    done = true;
  });
  bool threw = false;
  std::vector<float> one(single.step_input_size()), out(single.step_output_size());
  while (!done && !threw) {
    try {
      if (started) single.step(one.data(), out.data());
    } catch (const std::logic_error&) {
      threw = true;
    }
  }
  worker.join();
  std::printf("concurrent_call_throws %d\n", int(threw));
  return 0;
}
