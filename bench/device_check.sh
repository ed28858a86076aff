#!/usr/bin/env bash
# The GPU check of issue 6 in one go (under 8 minutes on an H100/H200): build lstm_native with the CUDA
# backend (LSTM_NATIVE_CUDA=ON: fails loudly without nvcc or cuBLAS), run the GPU-vs-CPU tests, then the GPU
# benchmark. Prints everything a closing note needs: the machine, the toolchain, the test summary, the figures.
#   bash bench/device_check.sh   (needs: nvcc 12.x/13.x, cuBLAS from the toolkit or the nvidia-cublas wheel, the
#   build requirements scikit-build-core, pybind11, cmeel-eigen, and pytest + a CUDA torch for the comparisons)
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
echo "== machine"; date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || status=1
nproc; python --version; nvcc --version | tail -1
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" || true
# cuBLAS: the toolkit's, or the nvidia-cublas wheel's (installed here if neither is present and pip can reach an index)
if ! ls "${CUDA_HOME:-/usr/local/cuda}"/lib64/libcublas.so* >/dev/null 2>&1 && ! python -c "import nvidia.cu13" 2>/dev/null; then
  python -m pip install -q --retries 0 --timeout 10 nvidia-cublas || echo "(no cuBLAS found and nvidia-cublas could not be installed)"
fi

echo "== build (LSTM_NATIVE_CUDA=ON, sm_90)"
start=$(date +%s)
python -m pip install -q --no-build-isolation --no-deps -Ccmake.define.LSTM_NATIVE_CUDA=ON . 2>&1 | tail -20 \
  || { echo "BUILD FAILED"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
python -c "import lstm_native, lstm_native.cuda as c; print('with_cuda', lstm_native.with_cuda, 'devices', c.device_count(), 'isa', lstm_native.isa)"

echo "== tests/test_cuda.py"
timeout 240 python -m pytest tests/test_cuda.py -q -rs 2>&1 | tail -25 || status=1

echo "== bench/gpu.py"
timeout 240 python bench/gpu.py --repeats 10 || status=1
echo "== done (status $status)"; date -u
exit $status
