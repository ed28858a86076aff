#!/usr/bin/env bash
# Builds the core (only the library's sources) and its C++ tests with AddressSanitizer and
# UndefinedBehaviorSanitizer (-fno-sanitize-recover=all: the first report fails the run), and runs them:
#   core_checks        forward/backward/step of every variant, masks, regularization, threads, error paths
#   fuzz_model_loader  lstm_native::Model::load + predict on every file of the hostile-model corpus
#                      (tests/model_corpus.py: valid models, and ~3000 truncated, flipped, overflowing,
#                      deeply nested ... ones)
#
#   tests/cpp/sanitize.sh [BUILD_DIR=build/sanitize]
#
# Exits 0 with "sanitizers: 0 reports" when every program ran clean. Needs a C++17 compiler with the
# sanitizers (gcc or clang), CMake, Eigen (cmeel-eigen), nlohmann_json and the installed lstm_native Python
# package (for the corpus' seed models).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build/sanitize}
python=${PYTHON:-$(command -v python3 || command -v python)}
jobs=${JOBS:-$(nproc)}

flags="-O1 -g1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=None -DLSTM_NATIVE_TESTS_INSTRUMENT="$flags" \
  -DLSTM_NATIVE_TESTS_FROM_SOURCE=ON \
  -DPython_EXECUTABLE="$python" >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" --target core_checks fuzz_model_loader -j "$jobs" >"$build.build.log" 2>&1 \
  || { tail -60 "$build.build.log"; exit 1; }

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=4096:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
reports=0
run() {
  local log="$build/$1.log"
  shift
  if ! "$@" >"$log.out" 2>"$log"; then
    echo "FAILED: $*" >&2
    tail -60 "$log" >&2
    reports=$((reports + 1))
  fi
  # any report at all (a recovered one would still print)
  if grep -qE "runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY: UndefinedBehaviorSanitizer" "$log"; then
    echo "sanitizer report in $*:" >&2
    grep -m 5 -E "runtime error:|ERROR: |SUMMARY: " "$log" >&2
    reports=$((reports + 1))
  fi
}

run core_checks "$build/core_checks"
tail -1 "$build/core_checks.log.out"
OMP_NUM_THREADS=2 run core_checks_omp2 "$build/core_checks"

rm -rf "$build/corpus"
"$python" "$root/tests/model_corpus.py" "$build/corpus/files"
LSTM_NATIVE_FUZZ_CASE_SECONDS=60 run fuzz_model_loader "$build/fuzz_model_loader" "$build/corpus/files"
files=$(wc -l <"$build/fuzz_model_loader.log.out")
loaded=$(grep -c $'\tOK' "$build/fuzz_model_loader.log.out" || true)
echo "fuzz_model_loader: $files model files, $loaded loaded, $((files - loaded)) refused"

echo "sanitizers: $reports reports"
[ "$reports" -eq 0 ]
