"""bench/throughput.py, torch_module.py, cpp_vs_python.py, gemm_kernels.py and streaming.py run: a --quick run
prints a row of positive numbers per variant."""

import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "throughput.py"


def test_quick_run_prints_a_row_per_variant():
    run = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--configs", "small"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = {}
    for line in run.stdout.splitlines():
        if line.startswith("| small"):
            _, peephole, mode, *numbers = (cell.strip() for cell in line.strip("|").split("|"))
            rows[peephole, mode] = numbers
    assert set(rows) == {(peephole, mode) for peephole in ("None", "diagonal") for mode in ("forward", "train")}
    for (peephole, mode), (seqs, seqs_range, gflops, gflops_range, percent) in rows.items():
        values = [float(seqs), *map(float, seqs_range.split("-")), float(gflops), *map(float, gflops_range.split("-"))]
        assert all(value > 0 for value in values), (peephole, mode, values)
        assert percent.endswith("%"), (peephole, mode, percent)


TORCH_MODULE = SCRIPT.parent / "torch_module.py"


def test_torch_module_quick_run_prints_every_row_with_a_ratio():
    """bench/torch_module.py: ours against nn.LSTM, the scripted peephole cell, eager (for torch.compile) and
    keras.layers.LSTM (a Keras-on-torch subprocess), training and inference, every row measured."""
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    run = subprocess.run([sys.executable, str(TORCH_MODULE), "--quick", "--configs", "small"],
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = {}
    for line in run.stdout.splitlines():
        if line.startswith("| small"):
            _, row, mode, _, ours, _, peer, ratio, _ = (cell.strip() for cell in line.strip("|").split("|"))
            rows[row, mode] = (float(ours), float(peer), float(ratio))
    assert set(rows) == {(row, mode) for row in ("plain", "diagonal", "compiled", "keras") for mode in ("train", "infer")}
    for key, (ours, peer, ratio) in rows.items():
        assert ours > 0 and peer > 0 and abs(ratio - ours / peer) <= 0.01 * ratio + 0.005, (key, ours, peer, ratio)
    assert "--quick" in run.stdout and "2 thread(s)" in run.stdout


CPP_VS_PYTHON = SCRIPT.parent / "cpp_vs_python.py"


def test_cpp_vs_python_quick_run_times_both_on_the_same_build():
    """bench/cpp_vs_python.py builds examples/cpp/timing.cpp against the installed package and prints, per mode,
    positive medians and their ratio; the C++ program runs the build of the CPU code Python picked."""
    run = subprocess.run([sys.executable, str(CPP_VS_PYTHON), "--quick", "--threads", "1"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    header = next(line for line in run.stdout.splitlines() if line.startswith("- lstm_native"))
    cpp_isa = header.split("C++: ")[1].split(" code")[0]
    assert f"lstm_native.isa = {cpp_isa};" in header and "on 1 thread(s)" in header
    rows = {}
    for line in run.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] in ("inference", "train"):
            rows[cells[0]] = [float(value) for value in cells[1:]]
    assert set(rows) == {"inference", "train"}
    for mode, (cpp_ms, python_ms, ratio) in rows.items():
        assert cpp_ms > 0 and python_ms > 0, mode
        assert math.isclose(ratio, python_ms / cpp_ms, rel_tol=0.02, abs_tol=0.01), (mode, ratio)


GEMM_KERNELS = SCRIPT.parent / "gemm_kernels.py"


def test_gemm_kernels_quick_run_times_the_cores_products():
    """bench/gemm_kernels.py builds bench/gemm_kernels.cpp against the core's own packed product (Eigen only here:
    MKL and OpenBLAS would be downloaded) and prints a positive rate for each of its three products."""
    run = subprocess.run([sys.executable, str(GEMM_KERNELS), "--quick", "--kernels", "eigen"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = {}
    for line in run.stdout.splitlines():
        if line.startswith("| small"):
            _, product, M, K, N, eigen, best = (cell.strip() for cell in line.strip("|").split("|"))
            rows[product] = (int(M), int(K), int(N), float(eigen), float(best))
    # small: B=32, H=64, I=32: two recurrence chunks of 16 rows, projection blocks of at most 64 rows
    assert {product: row[:3] for product, row in rows.items()} == {
        "recurrence": (16, 64, 256), "projection": (64, 32, 256), "backward": (16, 256, 64)}
    assert all(row[3] > 0 and row[4] == 1.0 for row in rows.values()), rows


STREAMING = SCRIPT.parent / "streaming.py"


def test_streaming_quick_run_times_every_implementation():
    """bench/streaming.py: per-step latency of ours (C++ and Python), onnxruntime's stateful graph and nn.LSTM,
    each row a positive median no larger than its 99th percentile."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    run = subprocess.run([sys.executable, str(STREAMING), "--quick"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = {}
    for line in run.stdout.splitlines():
        if line.startswith("lstm16-in1"):
            impl = line[15:27].strip()
            median, p99 = map(float, line[27:].split()[:2])
            rows[impl] = (median, p99)
    assert set(rows) == {"ours C++", "ours Python", "onnxruntime", "torch"}
    assert all(0 < median <= p99 for median, p99 in rows.values()), rows
