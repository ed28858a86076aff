"""The Python modules keep the symbols of their static archives (our libraries, CUDA's static runtime, a
statically linked libstdc++) local: another copy in the process (PyTorch's libstdc++, a sibling ISA module)
can then never interpose on them. Without it, a toolchain that links libstdc++ statically gave a module whose
error messages crashed the process once another libstdc++ was loaded (CMakeLists.txt, --exclude-libs)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

import lstm_native

PACKAGE = pathlib.Path(lstm_native.__file__).parent
MODULES = sorted([*PACKAGE.glob("_core*.so"), *PACKAGE.glob("_cuda_bench*.so")])  # the latter: CUDA builds
# Itanium-mangled prefixes: lstm_native::, std::basic_ostream, std::basic_istream, std::locale
LOCAL_PREFIXES = ("_ZN11lstm_native", "_ZNSo", "_ZNSi", "_ZNSt6locale")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--exclude-libs is a Linux linker option")
@pytest.mark.skipif(shutil.which("nm") is None, reason="needs binutils' nm")
@pytest.mark.parametrize("module", MODULES, ids=[m.name.split(".")[0] for m in MODULES])
def test_module_exports_none_of_its_static_archives_symbols(module):
    listing = subprocess.run(["nm", "-D", "--defined-only", str(module)], capture_output=True, text=True, check=True)
    exported = [line.split()[-1] for line in listing.stdout.splitlines() if line.strip()]
    assert any(name.startswith("PyInit_") for name in exported)
    leaked = [name for name in exported if name.startswith(LOCAL_PREFIXES)]
    assert not leaked, f"{module.name} exports {len(leaked)} symbols of its static archives, e.g. {leaked[:3]}"


def test_error_messages_format_integers_after_pytorch_is_loaded():
    """The failure seen: with another libstdc++ loaded first, the shape in an error message came out
    truncated (or the process crashed). Run in a fresh interpreter, PyTorch imported first."""
    pytest.importorskip("torch")
    script = ("import torch, numpy as np\n"
              "from lstm_native import _core\n"
              "x = np.zeros((5, 6, 3), np.float32); W = np.zeros((7, 32), np.float32); U = np.zeros((8, 32), np.float32)\n"
              "try:\n    _core.forward(x=x, W=W, U=U, peephole='none')\n"
              "except ValueError as e:\n    print(e)\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "got [5, 6, 3]" in run.stdout
