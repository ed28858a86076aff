#!/usr/bin/env bash
# Builds the core (only the library's sources) and its C++ tests with AddressSanitizer and
# UndefinedBehaviorSanitizer (-fno-sanitize-recover=all: the first report fails the run), and runs them:
#   core_checks        forward/backward/step of every variant, masks, regularization, threads, error paths
#   fuzz_model_loader  lstm_native::Model::load + predict on every file of the hostile-model corpus
#                      (tests/model_corpus.py: valid models, and ~3000 truncated, flipped, overflowing,
#                      deeply nested ... ones)
#   stream_checks      lstm_native::Stream on a model of every layer a stream runs (masks, full peepholes,
#                      projection, zoneout): steps, chunks, snapshots, threads
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
cmake --build "$build" --target core_checks fuzz_model_loader stream_checks -j "$jobs" >"$build.build.log" 2>&1 \
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

"$python" - "$build" <<'PYTHON'
import sys, numpy as np, lstm_native as ln
from lstm_native import layers
model = ln.models.Sequential([layers.Input((None, 3)), layers.Masking(0.0),
                              layers.LSTM(6, peephole="full", proj_size=3, return_sequences=True),
                              layers.LSTM(5, zoneout_h=0.2, return_sequences=True), layers.Dense(2)])
model.save(f"{sys.argv[1]}/stream_model.safetensors")
x = np.random.default_rng(0).normal(size=(2, 7, 3)).astype(np.float32)
x[0, 4:] = 0
x.tofile(f"{sys.argv[1]}/stream_x.f32")
PYTHON
run stream_checks "$build/stream_checks" "$build/stream_model.safetensors" "$build/stream_x.f32" 2 7 3
sed 's/^/stream_checks: /' "$build/stream_checks.log.out"

echo "sanitizers: $reports reports"
[ "$reports" -eq 0 ]
