"""Hostile and corrupt model files against the C++ loader (lstm_native::Model) and the Python one
(lstm_native.models.load_model).

tests/model_corpus.py generates about 3000 files from a few valid ones (truncations, bit flips, header-length
edits, out-of-range and overlapping offsets, overflowing shapes, wrong dtypes, unknown layers, a wrong
version, bad config values, deeply nested and huge JSON). tests/cpp/fuzz_model_loader.cpp, built against the
installed package without libFuzzer, loads each and predicts, in one process limited in address space
(RLIMIT_AS) and in time per file (SIGALRM): every file must end in a model or a clean error, valid files must
load, damaged ones must be refused. With clang's libFuzzer at hand, tests/cpp/libfuzzer.sh then fuzzes the
loader for a bounded time (LSTM_NATIVE_LIBFUZZER_SECONDS, 30 by default).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lstm_native

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CPP_TESTS = REPO / "tests" / "cpp"
MEMORY_LIMIT = 4 << 30  # bytes of address space for the loader process
CASE_SECONDS = 10

needs_loader = pytest.mark.skipif(not lstm_native._core.with_model_io,
                                  reason="built without nlohmann_json: no C++ model loader (CI installs it)")


def limit_resources():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model_corpus") / "corpus"
    return directory, model_corpus.write_corpus(directory)


@pytest.fixture(scope="module")
def fuzz_driver(tmp_path_factory):
    build = tmp_path_factory.mktemp("fuzz_driver")
    for command in (["cmake", "-S", CPP_TESTS, "-B", build, f"-DCMAKE_PREFIX_PATH={lstm_native.cmake_prefix()}",
                     "-DCMAKE_BUILD_TYPE=Release"], ["cmake", "--build", build, "--target", "fuzz_model_loader"]):
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return build / "fuzz_model_loader"


def run_driver(driver, directory) -> dict:
    done = subprocess.run([driver, directory], capture_output=True, timeout=600, preexec_fn=limit_resources,
                          env=dict(os.environ, LSTM_NATIVE_FUZZ_CASE_SECONDS=str(CASE_SECONDS), OMP_NUM_THREADS="1"))
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    last = lines[-1] if lines else ""
    assert done.returncode == 0, (
        f"the loader exited with {done.returncode} (negative: signal {-done.returncode}; SIGALRM: a file took over "
        f"{CASE_SECONDS} s) on {last.split(chr(9))[0]!r}\n{done.stderr.decode('utf-8', 'replace')[-3000:]}")
    results = {}
    for line in lines:
        path, _, result = line.partition("\t")
        results[Path(path).name] = result
    return results


@needs_loader
def test_cpp_loader_survives_the_hostile_corpus(fuzz_driver, corpus):
    directory, expectations = corpus
    results = run_driver(fuzz_driver, directory)
    assert set(results) == set(expectations)
    wrong = []
    counts = {"files": len(results), "loaded": 0, "refused": 0}
    for name, result in sorted(results.items()):
        case, expected = expectations[name]["case"], expectations[name]["expected"]
        got = "ok" if result.startswith("OK") else "error" if result.startswith("ERROR ") else "?"
        counts["loaded" if got == "ok" else "refused"] += 1
        if got == "?" or (expected and got != expected):
            wrong.append(f"{case}: expected {expected}, got {result[:300]}")
        elif got == "error":
            message = result[len("ERROR "):]
            # a load error names the file and says something; predict errors name the argument
            if not (message.startswith(str(directory / name) + ": ") or message.startswith("x: ")) or len(message) < 20:
                wrong.append(f"{case}: unclear message {message[:300]!r}")
        if expected == "ok" and not result.startswith("OK 2x"):
            wrong.append(f"{case}: a valid model did not predict: {result[:300]}")
    print(f"hostile model files tried by the C++ loader: {counts}")
    assert not wrong, f"{len(wrong)} of {len(results)} files:\n" + "\n".join(wrong[:40])


PYTHON_LOADER = r"""
import json, sys, os
from pathlib import Path
from lstm_native.models import load_model
results = {}
for path in sorted(Path(sys.argv[1]).iterdir()):
    try:
        load_model(path)
        results[path.name] = "ok"
    except ValueError as error:
        results[path.name] = "error" if str(error).startswith(str(path)) else "unclear: " + str(error)[:300]
    except Exception as error:
        results[path.name] = f"{type(error).__name__}: {str(error)[:300]}"
print(json.dumps(results))
"""


def test_python_loader_refuses_the_hostile_corpus(corpus):
    """load_model on the same files: a model, or a ValueError naming the file (in a subprocess, limited)."""
    directory, expectations = corpus
    done = subprocess.run([sys.executable, "-c", PYTHON_LOADER, directory], capture_output=True, text=True,
                          timeout=600, preexec_fn=limit_resources, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-3000:]}"
    results = json.loads(done.stdout.splitlines()[-1])
    # Python reads the input shape from the config's InputLayer, so an odd build_input_shape alone may load.
    wrong = [f"{expectations[name]['case']}: expected {expectations[name]['expected']}, got {result}"
             for name, result in sorted(results.items())
             if result not in ("ok", "error") or (expectations[name]["expected"] == "ok" and result != "ok")
             or (expectations[name]["expected"] == "error" and result != "error"
                 and ".meta.build_input_shape." not in expectations[name]["case"]
                 and not expectations[name]["case"].endswith("layer1.config-missing"))]
    refused = sum(result == "error" for result in results.values())
    print(f"hostile model files tried by the Python loader: {len(results)} ({refused} refused)")
    assert not wrong, f"{len(wrong)} of {len(results)} files:\n" + "\n".join(wrong[:40])


@needs_loader
@pytest.mark.skipif(shutil.which("clang++") is None, reason="clang++ (with libFuzzer) is not installed")
def test_libfuzzer_on_the_loader(corpus, tmp_path):
    seconds = os.environ.get("LSTM_NATIVE_LIBFUZZER_SECONDS", "30")
    directory, expectations = corpus
    seeds = tmp_path / "seeds"  # the valid files and a sample of the damaged ones start the fuzzer
    seeds.mkdir()
    for k, (name, info) in enumerate(sorted(expectations.items())):
        if info["expected"] == "ok" or k % 10 == 0:
            if (directory / name).stat().st_size < 1 << 20:
                shutil.copy(directory / name, seeds / name)
    done = subprocess.run(["bash", CPP_TESTS / "libfuzzer.sh", tmp_path / "build", seeds, seconds],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"libFuzzer found a problem or failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    summary = [line for line in done.stderr.splitlines() if line.startswith("Done ") or "stat::number_of_executed_units" in line]
    print(f"libFuzzer: {summary}")


PYTHON_PREDICTIONS = r"""
import json, sys
from pathlib import Path
import numpy as np
from lstm_native.models import load_model

def probes():  # tests/cpp/fuzz_model_loader.cpp's probe_inputs(), in its order
    for F in range(1, 7):
        k = np.arange(2 * 3 * F)
        yield np.where(k % 5 == 4, 0.0, 0.25 * (k % 7) - 0.5).astype(np.float32).reshape(2, 3, F)
    yield np.array([[1, 2, 0], [3, 0, 1]], np.float32)

results = {}
for path in sorted(Path(sys.argv[1]).iterdir()):
    try:
        model = load_model(path, compile=False)
    except ValueError:
        results[path.name] = None
        continue
    result = []
    for x in probes():  # as the C++ driver: the last input that the model takes
        try:
            y = model.predict(x)
            result = [list(y.shape), np.asarray(y, np.float64).ravel().tolist()]
        except (ValueError, TypeError):
            pass
    results[path.name] = result
print(json.dumps(results))
"""


@needs_loader
def test_both_loaders_accept_the_same_files(fuzz_driver, corpus):
    """Every file of the corpus (hostile files, many-layer configs, every config key of every layer kind set to
    wrong values) is refused by both loaders, or loaded by both, and then both predict the same outputs. The C++
    loader serves inference only, so Python's side is load_model(compile=False): neither reads the optimizer."""
    directory, expectations = corpus
    done = subprocess.run([fuzz_driver, directory], capture_output=True, timeout=600, preexec_fn=limit_resources,
                          env=dict(os.environ, OMP_NUM_THREADS="1", LSTM_NATIVE_FUZZ_PRINT_VALUES="1"))
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-3000:]
    cpp = dict(line.split("\t", 1) for line in done.stdout.decode("utf-8", "replace").splitlines())
    done = subprocess.run([sys.executable, "-c", PYTHON_PREDICTIONS, directory], capture_output=True, text=True,
                          timeout=900, preexec_fn=limit_resources, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-3000:]}"
    python = json.loads(done.stdout.splitlines()[-1])
    disagreements = []
    for name, python_result in sorted(python.items()):
        cpp_result = cpp[str(directory / name)]
        case = expectations[name]["case"]
        python_refused = python_result is None
        if python_refused != cpp_result.startswith("ERROR "):
            disagreements.append(f"{case}: Python {'refused' if python_refused else 'loaded'}, C++ {cpp_result[:300]}")
        elif python_refused:
            continue
        elif python_result:  # both loaded, and an input fitted
            words = cpp_result.split()
            shape = [int(d) for d in words[1].split("x")] if words[1] != "no-input-shape-matched" else None
            if shape != python_result[0] or not np.allclose(np.array(words[2:], float), python_result[1], atol=1e-5):
                disagreements.append(f"{case}: the predictions differ: Python {python_result[0]}, C++ {cpp_result[:200]}")
        elif not cpp_result.startswith("OK no-input-shape-matched"):
            disagreements.append(f"{case}: Python took none of the inputs, C++ {cpp_result[:200]}")
    print(f"{len(python)} files: {sum(r is not None for r in python.values())} loaded by both loaders")
    assert not disagreements, f"{len(disagreements)} of {len(python)} files:\n" + "\n".join(disagreements[:60])


@pytest.fixture
def special_files(tmp_path):
    """A directory of things that are not regular files: a FIFO (opening it for reading would block), a
    socket, a directory and a symlink to the FIFO."""
    import socket

    directory = tmp_path / "special"
    directory.mkdir()
    os.mkfifo(directory / "fifo")
    (directory / "directory").mkdir()
    (directory / "link-to-fifo").symlink_to("fifo")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(directory / "socket"))
        yield directory


@needs_loader
def test_cpp_loader_refuses_special_files(fuzz_driver, special_files):
    paths = [special_files / name for name in ("fifo", "link-to-fifo", "socket")] + [Path("/dev/null")]
    done = subprocess.run([fuzz_driver, *paths], capture_output=True, text=True, timeout=120,
                          preexec_fn=limit_resources)
    assert done.returncode == 0, done.stderr[-3000:]
    results = dict(line.split("\t", 1) for line in done.stdout.splitlines())
    assert set(results) == set(map(str, paths))
    for path, result in results.items():
        assert result.startswith(f"ERROR {path}: is a ") and result.endswith(", not a regular file"), result


def test_python_loader_refuses_special_files(special_files):
    done = subprocess.run([sys.executable, "-c", PYTHON_LOADER, special_files], capture_output=True, text=True,
                          timeout=120, preexec_fn=limit_resources)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == dict.fromkeys(["directory", "fifo", "link-to-fifo", "socket"],
                                                                    "error")
