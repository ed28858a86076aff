"""What several test modules share (a test module imports this, never another test module)."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cpp"  # the C++ consumer project: find_package(lstm_native)
DOCS = REPO / "docs"


def run(*command, cwd=None):
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# -- gradient checks by float64 central differences (tests/test_gradients.py explains the error measure) ------
EPS = 1e-6
RTOL, FLOOR = 1e-6, 1e-2
GRADIENT_OF = dict(x="dx", h0="dh0", c0="dc0", W="dW", U="dU", b="db", p="dp")


def central_differences(loss, array):
    """d loss() / d array, perturbing `array` in place one element at a time (restored afterwards)."""
    gradient = np.empty_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + EPS
        plus = loss()
        array[index] = saved - EPS
        minus = loss()
        array[index] = saved
        gradient[index] = (plus - minus) / (2 * EPS)
    return gradient


# -- regularization: the rates each mask is checked at, and the seed that draws the masks ----------------------
RATES = {
    "dropout": dict(dropout=0.3),
    "recurrent_dropout": dict(recurrent_dropout=0.4),
    "zoneout": dict(zoneout_h=0.3, zoneout_c=0.5),
    "weight_drop": dict(weight_drop=0.5),
    "all": dict(dropout=0.2, recurrent_dropout=0.25, zoneout_h=0.15, zoneout_c=0.1, weight_drop=0.3),
}
SEED = 12345678901


# -- the public API: the modules with an API reference page (`::: lstm_native.<module>` in docs/api/*.md) -----
PUBLIC_MODULES = sorted({m for page in sorted((DOCS / "api").glob("*.md"))
                         for m in re.findall(r"^::: ([\w.]+)$", page.read_text(), re.M)})


def public_names(module):
    """The module's public names: its __all__, else the public names that it defines itself."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__]
    return [n for n in names if not inspect.ismodule(getattr(module, n))]


def public_api():
    """(qualified name, owning class or None, value) of every public name of the public modules and, for each
    public class, of the attributes its own body defines (as vars() holds them) whose name is public or
    __init__. lstm_native.keras imports keras, on whatever backend it runs."""
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in public_names(module):
            obj = getattr(module, name)
            yield f"{module_name}.{name}", None, obj
            if inspect.isclass(obj):
                for attribute, value in vars(obj).items():
                    if not attribute.startswith("_") or attribute == "__init__":
                        yield f"{module_name}.{name}.{attribute}", obj, value
