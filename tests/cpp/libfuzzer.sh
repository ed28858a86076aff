#!/usr/bin/env bash
# Fuzzes the C++ model loader with libFuzzer (clang), AddressSanitizer and UndefinedBehaviorSanitizer for a
# bounded time.
#
#   tests/cpp/libfuzzer.sh BUILD_DIR SEED_CORPUS_DIR [SECONDS=30]
#
# Seeds: any model files (tests/model_corpus.py DIR writes a corpus). New inputs go to BUILD_DIR/corpus; a
# crash, a sanitizer report, a leak, an input over 10 s or over 2 GB of memory ends the run with a non-zero
# status and leaves the input in BUILD_DIR (crash-*, timeout-*, oom-*).
set -euo pipefail
build=${1:?usage: libfuzzer.sh BUILD_DIR SEED_CORPUS_DIR [SECONDS]}
seeds=${2:?usage: libfuzzer.sh BUILD_DIR SEED_CORPUS_DIR [SECONDS]}
seconds=${3:-30}
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-$(command -v python3 || command -v python)}

# The loader's sources (model.cpp, safetensors_file.cpp) and the target are instrumented; the numeric core
# is built plainly (-O2), which keeps the build short.
flags="-g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
  -DLSTM_NATIVE_TESTS_INSTRUMENT="$flags" -DLSTM_NATIVE_TESTS_INSTRUMENT_LOADER_ONLY=ON \
  -DLSTM_NATIVE_TESTS_FROM_SOURCE=ON -DLSTM_NATIVE_TESTS_OPENMP=OFF -DLSTM_NATIVE_TESTS_LIBFUZZER=ON \
  -DPython_EXECUTABLE="$python" >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" --target fuzz_model_loader -j "$(nproc)" >"$build.build.log" 2>&1 || { tail -50 "$build.build.log"; exit 1; }

mkdir -p "$build/corpus"
cd "$build"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
./fuzz_model_loader -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
  -max_len=65536 -print_final_stats=1 corpus "$seeds"
