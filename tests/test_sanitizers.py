"""AddressSanitizer and UndefinedBehaviorSanitizer: tests/cpp/sanitize.sh builds the core and its C++ tests
(tests/cpp/core_checks.cpp, tests/cpp/fuzz_model_loader.cpp, tests/cpp/stream_checks.cpp) with -fsanitize=address,undefined
-fno-sanitize-recover=all and runs them, the loader on the whole hostile-model corpus: zero reports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lstm_native

REPO = Path(__file__).resolve().parents[1]


def sanitizers_work() -> bool:
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if not compiler:
        return False
    done = subprocess.run([compiler, "-x", "c++", "-fsanitize=address,undefined", "-o", os.devnull, "-"],
                          input="int main() { return 0; }", capture_output=True, text=True)
    return done.returncode == 0


@pytest.mark.skipif(not lstm_native._core.with_model_io, reason="no nlohmann_json: no C++ model loader (CI installs it)")
@pytest.mark.skipif(not sanitizers_work(), reason="the C++ compiler cannot link -fsanitize=address,undefined")
def test_sanitizers_report_nothing(tmp_path):
    done = subprocess.run(["bash", REPO / "tests" / "cpp" / "sanitize.sh", tmp_path / "build"], capture_output=True,
                          text=True, timeout=900, env=dict(os.environ, PYTHON=sys.executable))
    assert done.returncode == 0, f"sanitize.sh failed:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    assert re.search(r"^sanitizers: 0 reports$", done.stdout, re.M), done.stdout
    assert re.search(r"core_checks: \d+ checks passed", done.stdout), done.stdout
    for check in ("reset_repeats", "snapshot_restores", "threads_agree", "concurrent_call_throws"):
        assert re.search(rf"^stream_checks: {check} 1$", done.stdout, re.M), done.stdout
    print(done.stdout)
