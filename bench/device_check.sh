#!/usr/bin/env bash
# The GPU check of issue 6 in one go (under 8 minutes on an H100/H200): build lstm_native with the CUDA
# backend (LSTM_NATIVE_CUDA=ON: fails loudly without nvcc or cuBLAS), run the GPU-vs-CPU tests, then the GPU
# benchmark. Prints everything a closing note needs: the machine, the toolchain, the test summary, the figures.
#   bash bench/device_check.sh   (needs: nvcc 12.x/13.x, cuBLAS from the toolkit or the nvidia-cublas wheel, the
#   build requirements scikit-build-core, pybind11, cmeel-eigen, and pytest + a CUDA torch for the comparisons)
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
logs="${LOGS:-${OUT:-/tmp}}"  # where the full build and test logs go
PY="${PYTHON:-python3}"  # the interpreter that has a CUDA torch (PYTHON=... to pick another)
export PATH="$PATH:${CUDA_HOME:-/usr/local/cuda}/bin"
echo "== machine"; date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || status=1
nproc; "$PY" --version; nvcc --version | tail -1
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" || true
# cuBLAS: the toolkit's, or the nvidia-cublas wheel's (installed here if neither is present and pip can reach an index)
if ! ls "${CUDA_HOME:-/usr/local/cuda}"/lib64/libcublas.so* >/dev/null 2>&1 && ! "$PY" -c "import nvidia.cu13" 2>/dev/null; then
  "$PY" -m pip install -q --retries 0 --timeout 10 nvidia-cublas || echo "(no cuBLAS found and nvidia-cublas could not be installed)"
fi

echo "== build (LSTM_NATIVE_CUDA=ON, sm_90)"
start=$(date +%s)
"$PY" -m pip install -v --no-build-isolation --no-deps -Ccmake.define.LSTM_NATIVE_CUDA=ON . >"$logs/build.log" 2>&1 \
  || { tail -40 "$logs/build.log"; echo "BUILD FAILED"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
"$PY" -c "import lstm_native, lstm_native.cuda as c; print('with_cuda', lstm_native.with_cuda, 'devices', c.device_count(), 'isa', lstm_native.isa)"

echo "== tests/test_cuda*.py and the GPU-related C++/packaging tests"
# With pytest-xdist, a crashing test takes down its worker only, and the others still report.
workers=$("$PY" -c "import xdist" 2>/dev/null && echo "-n 4")
# Also: the C++ package's CUDA example (a standalone install), and the modules' symbol hygiene.
timeout 300 "$PY" -m pytest tests/test_cuda.py tests/test_cuda_persistent.py tests/test_module_symbols.py \
  tests/test_cpp_consumer.py::test_cuda_example_against_a_standalone_install $workers -q -rs --tb=short \
  -p no:cacheprovider -p no:benchmark >"$logs/test_cuda.log" 2>&1 || status=1
grep -E "^(FAILED|ERROR)|crashed|node down" "$logs/test_cuda.log" | head -30; tail -3 "$logs/test_cuda.log"

echo "== bench/gpu.py"
timeout 240 "$PY" bench/gpu.py --repeats 20 || status=1
echo "== done (status $status)"; date -u
exit $status
