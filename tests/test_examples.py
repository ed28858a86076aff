"""The examples run to completion and do what they say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_learns_the_digits():
    done = subprocess.run([sys.executable, EXAMPLES / "quickstart.py"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    accuracy = float(re.search(r"final test accuracy: ([0-9.]+)", done.stdout).group(1))
    assert accuracy > 0.93, done.stdout  # chance is 0.1; the default 12 epochs reach 0.975
