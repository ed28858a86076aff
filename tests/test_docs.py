"""The documentation cannot rot: the site builds in strict mode (a broken link, cross-reference or docstring
section fails it), every public name of the documented modules has a docstring, and every Python example in
the README, the guides and the public docstrings runs, on small data.

An example that cannot run here says so on the line before its fence, and is counted:
``<!-- docs-test: skip: <why> -->``. One that needs data it does not make itself names the setup that makes it:
``<!-- docs-test: setup: <name> -->`` (SETUPS below)."""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from support import DOCS, PUBLIC_MODULES, REPO, public_api

DOCUMENTS = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
FENCE = re.compile(r"(?:<!-- docs-test: (?P<marker>[^>]*?) -->\n)?```python\n(?P<code>.*?)```", re.S)

SETUPS = {
    # the seed program's names (examples/seed_program.py loads them from JapaneseVowels), on random data
    "keras_data": """
        import numpy as np
        rng = np.random.default_rng(0)
        timesteps, input_dim, output_dim = 5, 3, 4
        X_train, X_val = (rng.standard_normal((n, timesteps, input_dim)).astype(np.float32) for n in (40, 8))
        y_train, y_val = (np.eye(output_dim, dtype=np.float32)[rng.integers(0, output_dim, n)] for n in (40, 8))
        """,
    "layer_import": "from lstm_native.layers import LSTM\n",
    # a small trained model, as the example before the block leaves one
    "a_model": """
        import numpy as np
        import lstm_native
        from lstm_native.layers import LSTM, Dense
        from lstm_native.models import Sequential
        rng = np.random.default_rng(0)
        model = Sequential([LSTM(8, input_shape=(5, 3)), Dense(2, activation="softmax")])
        model.compile(loss="categorical_crossentropy", optimizer="adam")
        model.fit(rng.standard_normal((16, 5, 3)), np.eye(2)[rng.integers(0, 2, 16)], epochs=1, verbose=0)
        """,
}


def examples():
    """(document, index, marker, code) of every ```python block of the README and the pages under docs/."""
    found = []
    for path in DOCUMENTS:
        for index, match in enumerate(FENCE.finditer(path.read_text(encoding="utf-8"))):
            found.append((path.relative_to(REPO).as_posix(), index, match["marker"] or "", match["code"]))
    return found


def test_the_markers_are_known_and_the_examples_counted():
    markers = [marker for _, _, marker, _ in examples() if marker]
    unknown = [m for m in markers if not (m.startswith("skip: ") or m.removeprefix("setup: ") in SETUPS)]
    assert not unknown, unknown
    skipped = [m for m in markers if m.startswith("skip: ")]
    print(f"{len(examples()) - len(skipped)} documented examples run, {len(skipped)} marked skip: {skipped}")
    assert len(skipped) <= 1  # the MPI script, which runs on every rank under mpiexec (tests/test_mpi.py)


@pytest.mark.parametrize("document, index, marker, code", examples(), ids=lambda v: str(v)[:40])
def test_documented_example_runs(document, index, marker, code, tmp_path):
    if marker.startswith("skip: "):
        pytest.skip(marker)  # counted above; not a pass
    setup = textwrap.dedent(SETUPS[marker.removeprefix("setup: ")]) if marker else ""
    script = tmp_path / "example.py"
    script.write_text(setup + code)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{document}, python example {index}:\n{code}\n{done.stderr[-3000:]}"


def test_the_site_builds_strictly(tmp_path):
    """mkdocs.yml sets strict; --strict says it again. A broken link or anchor, an unresolved cross-reference
    and griffe's docstring warnings (a parameter that the signature lacks, one without a type) fail it."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert done.returncode == 0, done.stderr[-5000:]
    for module in PUBLIC_MODULES:
        page = Path("index.html") if module == "lstm_native" else Path(module.split(".")[-1]) / "index.html"
        assert f'id="{module}' in (tmp_path / "site" / "api" / page).read_text(), module


def undocumented():
    """Public functions, classes, and the classes' public methods and properties without a docstring (a method
    that overrides a documented one inherits its docstring, as inspect.getdoc does)."""
    missing = []
    for qualified_name, owner, value in public_api():
        if owner is None:
            if (inspect.isclass(value) or inspect.isroutine(value)) and not inspect.getdoc(value):
                missing.append(qualified_name)
            continue
        attribute = qualified_name.rsplit(".", 1)[1]
        if attribute == "__init__":
            continue  # the class's docstring documents its constructor
        if isinstance(value, (property, staticmethod, classmethod)) or inspect.isroutine(value):
            if not inspect.getdoc(value if isinstance(value, property) else getattr(owner, attribute)):
                missing.append(qualified_name)
    return missing


def test_every_public_name_has_a_docstring():
    assert len(PUBLIC_MODULES) >= 14, PUBLIC_MODULES
    missing = undocumented()
    assert not missing, f"{len(missing)} public names without a docstring: {missing}"


def test_the_docstring_examples_run():
    """doctest of every public module's docstrings (>>> examples)."""
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for name in PUBLIC_MODULES:
        for test in finder.find(importlib.import_module(name), name, extraglobs={"np": np}):
            runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    print(f"{attempted} docstring examples run")
    assert failed == 0 and attempted > 0
