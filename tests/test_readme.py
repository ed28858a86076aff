"""The README's and the guides' Python examples run as written (the Keras block on small data it assumes to exist),
and the README's commands and named files are those of the project."""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
# the README and the guides it links to (docs/guides/), which took over most of its examples
DOCUMENTS = [README, *sorted((README.parent / "docs").rglob("*.md"))]


def python_blocks():
    return [block for path in DOCUMENTS for block in re.findall(r"```python\n(.*?)```", path.read_text(), re.S)]


def test_readme_keras_block_trains():
    block = next(b for b in python_blocks() if "Sequential" in b)
    rng = np.random.default_rng(0)
    data = dict(timesteps=5, input_dim=3, output_dim=4)
    data.update({name: rng.standard_normal((n, 5, 3)).astype(np.float32)
                 for name, n in (("X_train", 40), ("X_val", 8))})
    data.update({name: np.eye(4, dtype=np.float32)[rng.integers(0, 4, n)] for name, n in (("y_train", 40), ("y_val", 8))})
    namespace = dict(data)
    exec(compile(block, str(README), "exec"), namespace)
    history = namespace["model"].history.history
    assert len(history["loss"]) == 10 and "val_accuracy" in history


def test_readme_functional_block_runs():
    block = next(b for b in python_blocks() if "lstm_backward" in b)
    namespace = {}
    exec(compile(block, str(README), "exec"), namespace)
    grads = namespace["grads"]
    assert grads.dW.shape == namespace["W"].shape and grads.dp.shape == namespace["p"].shape


def test_readme_training_strategies_block_builds_the_layer():
    block = next(b for b in python_blocks() if "zoneout_h" in b)
    namespace = {}
    exec(compile("from lstm_native.layers import LSTM\nlayer = " + block, str(README), "exec"), namespace)
    layer = namespace["layer"]
    assert layer.rates == dict(dropout=0.2, recurrent_dropout=0.2, zoneout_h=0.1, zoneout_c=0.1, weight_drop=0.3)
    assert layer.activation_regularization == layer.temporal_activation_regularization == 1e-3


def test_readme_torch_block_trains_and_swaps_state_dicts():
    import torch

    block = next(b for b in python_blocks() if "lstm_native.torch" in b)
    namespace = {}
    exec(compile(block, str(README), "exec"), namespace)
    assert namespace["loss"].item() < 0.9 * np.log(3)  # below chance level: it learned its 64 labels
    for name, parameter in namespace["drop_in"].state_dict().items():
        assert torch.equal(parameter, namespace["torch_lstm"].state_dict()[name])


REPO = README.parent


def pyproject() -> dict:
    return pytest.importorskip("tomllib", reason="tomllib is Python 3.11's").loads((REPO / "pyproject.toml").read_text())


def set_up_commands():
    """The README's two set-up commands: (install and run the main job, run the tests)."""
    commands = [line.strip() for line in README.read_text().splitlines()
                if line.startswith("    pip install -r requirements-build.txt")]
    assert len(commands) == 2, commands
    return commands


def test_the_set_up_commands_build_once_and_print_no_alarm():
    """Issue 15 item 4: the test command recompiled the core after the install command (pip's build isolation
    gives every build new paths), and aeon's --no-deps install printed pip's red dependency-resolver ERROR."""
    install, test = set_up_commands()
    assert install.endswith("python examples/seed_program.py") and test.endswith("python -m pytest")
    for command in (install, test):
        builds = [part.strip() for part in command.split("&&") if "--no-build-isolation" in part]
        targets = [word for word in builds[0].split() if word == "." or word.startswith('".[')]
        assert len(builds) == 1 and targets, command  # the project itself, built in this environment
        assert 'pip install --no-deps --no-warn-conflicts "aeon==1.6.0"' in command
    # installing scikit-learn & co. after aeon (installed without its dependencies) lists aeon's missing ones
    assert "--no-warn-conflicts" in [part for part in test.split("&&") if "[test]" in part][0]
    project = pyproject()
    assert project["tool"]["scikit-build"]["build-dir"] == "build/{wheel_tag}"  # one build folder, reused
    requirements = {line.split("#")[0].strip() for line in (REPO / "requirements-build.txt").read_text().splitlines()}
    missing = set(project["build-system"]["requires"]) - requirements
    assert not missing, f"requirements-build.txt lacks build requirements: {missing}"


def test_ci_runs_the_readme_test_command():
    assert set_up_commands()[1] in (REPO / ".ci" / "run").read_text().splitlines()


def test_the_readme_names_only_files_and_extras_that_exist():
    """Issue 15 item 3: the README cited tests/test_threads.py (no such file), shared/seed/ (outside the
    repository) and `pip install "lstm_native[onnx]"` (no such distribution on the index). The guides too."""
    text = "\n".join(path.read_text() for path in DOCUMENTS)
    paths = set(re.findall(r"`((?:tests|examples|bench|cpp|python|cmake|docs|\.ci)/[\w./-]*[\w/])", text))
    paths |= set(re.findall(r"`([\w-]+\.(?:txt|toml|md))`", text))
    assert paths, "no paths found: the pattern is wrong"
    assert not [path for path in paths if not (REPO / path).exists()]
    assert "shared/" not in text
    extras = pyproject()["project"]["optional-dependencies"]
    assert not re.search(r"lstm_native\[", text)
    named = set(re.findall(r'"\.\[(\w+)\]"', text))
    assert named and named <= set(extras), named - set(extras)


def test_design_citations_name_docs_design_and_a_section_it_has():
    """Issue 17 item 3: code cited sections of a design document outside the repository. Every mention of
    the design document in the project's files must be docs/DESIGN.md, with sections that exist there."""
    sections = set(re.findall(r"^## (\d+)\. ", (REPO / "docs/DESIGN.md").read_text(encoding="utf-8"), re.M))
    assert sections, "docs/DESIGN.md has no numbered sections"
    files = [REPO / name for name in ("README.md", "CMakeLists.txt", "pyproject.toml")]
    files += [path for folder in ("bench", "cmake", "cpp", "docs", "examples", "python", "tests")
              for path in sorted((REPO / folder).rglob("*")) if path.suffix in
              {".py", ".pyi", ".hpp", ".cpp", ".cu", ".cuh", ".in", ".inc", ".md", ".txt", ".cmake", ".sh"}]
    problems = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        where = lambda offset: f"{path.relative_to(REPO)}:{text.count(chr(10), 0, offset) + 1}"  # noqa: E731
        problems += [f"{where(m.start())}: not docs/DESIGN.md" for m in re.finditer(r"(?<!docs/)DESIGN\.md", text)]
        for m in re.finditer(r"DESIGN\.md((?:\s*(?:,|and)?\s*(?:§|sections?\s+)\d+)+)", text):
            problems += [f"{where(m.start())}: no §{n} in docs/DESIGN.md"
                         for n in re.findall(r"\d+", m.group(1)) if n not in sections]
    assert not problems, problems
