"""bench/peers.py runs: a --quick --check run times every peer on 1 and 2 threads, writes a table row and a JSON
record per measurement with positive finite throughputs, and every peer agrees with ours; a missing peer package
is reported and skipped."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "peers.py"
IMPLS = ["ours", "torch", "torch-jit", "keras", "blocklstm", "onnxruntime"]
MEASURED = {  # implementation row: (modes, the modules it needs)
    "ours": (("train", "infer"), ["lstm_native"]),
    "ours diagonal": (("train", "infer"), ["lstm_native"]),
    "ours lengths": (("train", "infer"), ["lstm_native"]),
    "torch nn.LSTM": (("train", "infer"), ["torch"]),
    "torch nn.LSTM packed": (("train", "infer"), ["torch"]),
    "torch scripted peephole": (("train", "infer"), ["torch"]),
    "keras LSTM": (("train", "infer"), ["keras", "tensorflow"]),
    "tf BlockLSTM peephole": (("train", "infer"), ["tensorflow"]),
    "onnxruntime LSTM": (("infer",), ["onnxruntime", "onnx"]),
    "onnxruntime LSTM P": (("infer",), ["onnxruntime", "onnx"]),
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    json_path = tmp_path_factory.mktemp("peers") / "peers.jsonl"
    command = [sys.executable, str(SCRIPT), "--quick", "--check", "--impls", *IMPLS, "--json", str(json_path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout, [json.loads(line) for line in json_path.read_text().splitlines()]


def expected_rows():
    """(row name, mode, threads) of every implementation whose package is installed."""
    return {(name, mode, threads) for name, (modes, modules) in MEASURED.items()
            if all(map(importlib.util.find_spec, modules)) for mode in modes for threads in (1, 2)}


def test_every_peer_has_a_json_record_with_positive_finite_throughput(quick_run):
    _, records = quick_run
    timings = [r for r in records if r["kind"] == "timing"]
    assert {(r["name"], r["mode"], r["threads"]) for r in timings} == expected_rows()
    for r in timings:
        values = [*r["seq_per_s"].values(), *r["gflops"].values()]
        assert all(math.isfinite(v) and v > 0 for v in values), r


def test_every_peer_has_a_table_row(quick_run):
    stdout, _ = quick_run
    rows = set()
    for mode in ("train", "infer"):
        table = stdout.split(f"### small (B=32, T=50, I=32, H=64), {mode}")[1].split("\n\n")[1]
        for line in table.splitlines()[2:]:
            name, threads, seqs, *_ = (cell.strip() for cell in line.strip("|").split("|"))
            assert float(seqs) > 0, line
            rows.add((name, mode, int(threads)))
    assert rows == expected_rows()
    assert "(a) ours (peephole None, 2 thread(s))" in stdout and "(b) ours diagonal" in stdout
    assert "- small train: ours diagonal ÷ ours = " in stdout
    for mode in ("train", "infer"):
        assert f"- small {mode}: ours lengths ÷ ours = " in stdout
        if importlib.util.find_spec("torch"):
            assert f"- small {mode}: torch nn.LSTM packed ÷ torch nn.LSTM = " in stdout


def test_every_peer_agrees_with_ours(quick_run):
    stdout, records = quick_run
    checks = [r for r in records if r["kind"] == "check"]
    ours = {"ours", "ours diagonal", "ours lengths"}
    assert {r["name"] for r in checks} == {name for name, _, _ in expected_rows()} - ours
    assert all(r["ok"] and max(r["errors"].values()) <= 1e-4 for r in checks), checks
    agreement = stdout.split("## Agreement with ours")[1].split("##")[0]
    assert agreement.count(": OK") == len({r["name"] for r in checks}) and "FAILED" not in agreement


def test_a_missing_peer_package_is_reported_and_skipped():
    hide_onnxruntime = (
        "import importlib.util, runpy, sys\n"
        f"sys.path.insert(0, {str(SCRIPT.parent)!r})\n"
        "find_spec = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *args: None if name == 'onnxruntime' else find_spec(name, *args)\n"
        f"sys.argv = [{str(SCRIPT)!r}, '--quick', '--threads', '1', '--impls', 'ours', 'onnxruntime']\n"
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
    )
    run = subprocess.run([sys.executable, "-c", hide_onnxruntime], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "- onnxruntime: not installed (onnxruntime), skipped" in run.stdout
    assert "| ours | 1 |" in run.stdout and "| onnxruntime" not in run.stdout
