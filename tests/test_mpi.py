"""Data-parallel fit over MPI (lstm_native.distributed.MPIStrategy), launched with mpiexec on this machine.

The scripts run tests/mpi_script.py under `mpiexec -n 1|2`; MPI comes from the `mpich` wheel (the `test` and
`mpi` extras) or the system's.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py")

SCRIPT = Path(__file__).with_name("mpi_script.py")


def _mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"  # the mpich wheel installs it next to the interpreter
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")


def _launch(ranks, *args, options=(), timeout=60, env=None):
    environment = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    command = [MPIEXEC, *options, "-n", str(ranks), sys.executable, str(SCRIPT), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)


def _run(ranks, *args, **kwargs):
    result = _launch(ranks, *args, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _weights(prefix):
    with np.load(f"{prefix}.npz") as archive:
        return [archive[name] for name in sorted(archive.files, key=lambda n: int(n.split("_")[1]))]


def _max_difference(a, b):
    return max(float(np.abs(u - v).max()) for u, v in zip(a, b))


def test_two_ranks_train_as_one_process_on_the_global_batch(tmp_path):
    """2 ranks on a global batch of 8 (4 rows each) = 1 rank on batches of 8: weights after 9 Adam steps,
    the history (loss, metric, weighted metric under sample weights and a loss weight, validation) too; float64,
    no dropout."""
    _run(2, "equivalence", tmp_path / "two")
    _run(1, "equivalence", tmp_path / "one")
    two, one = _weights(tmp_path / "two"), _weights(tmp_path / "one")
    assert _max_difference(two, one) <= 1e-6
    assert not any(np.array_equal(w, 0) for w in two)
    history_two = json.loads((tmp_path / "two.json").read_text())
    history_one = json.loads((tmp_path / "one.json").read_text())
    assert history_two.keys() == history_one.keys() == {"loss", "mae", "weighted_mae", "val_loss", "val_mae",
                                                        "val_weighted_mae"}
    for key in history_one:
        np.testing.assert_allclose(history_two[key], history_one[key], rtol=1e-12)
    # without shuffling, the plain single-process fit gives the same weights as well
    _run(2, "equivalence", tmp_path / "two_ordered", "noshuffle")
    subprocess.run([sys.executable, str(SCRIPT), "equivalence", str(tmp_path / "plain"), "local", "noshuffle"],
                   check=True, timeout=60)
    assert _max_difference(_weights(tmp_path / "two_ordered"), _weights(tmp_path / "plain")) <= 1e-6


def test_dropout_seeds_are_distinct_per_rank_and_reproducible(tmp_path):
    runs = []
    for run in ("a", "b"):
        _run(2, "dropout", tmp_path / run)
        runs.append([json.loads((tmp_path / f"{run}.{rank}.json").read_text())[-6:] for rank in (0, 1)])
    assert runs[0] == runs[1]  # the same seed, the same masks
    rank0, rank1 = runs[0]
    assert len(rank0) == len(rank1) == 6  # 3 steps x 2 epochs, one seed per step on each rank
    assert not set(rank0) & set(rank1)
    assert len(set(rank0)) == 6


def test_a_dead_rank_makes_the_others_fail_within_the_timeout(tmp_path):
    """Rank 1 calls os._exit mid-training; rank 0 raises the clear RuntimeError after the 3 s timeout and exits
    (instead of hanging in MPI_Finalize). Hydra's -disable-auto-cleanup keeps the launcher from killing rank 0
    itself, so that its own detection is what is tested."""
    version = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True).stdout
    if "HYDRA" not in version:
        pytest.skip("needs MPICH's Hydra launcher (-disable-auto-cleanup)")
    start = time.monotonic()
    result = _launch(2, "die", tmp_path / "die", options=["-disable-auto-cleanup"], timeout=45,
                     env={"MPI_TEST_TIMEOUT": "3"})
    elapsed = time.monotonic() - start
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert elapsed < 30, elapsed
    assert "RuntimeError: MPIStrategy: rank 0 of 2 waited 3 s in the gradient allreduce" in output, output
    assert "finished (unexpected)" not in output


def test_rank_0_callbacks_stop_every_rank(tmp_path):
    """A callback on rank 0 sets stop_training after batch 1: no rank applies batch 2 (2 updates everywhere);
    EarlyStopping on rank 0 stops every rank after the same epoch; histories and weights agree."""
    _run(2, "stop", tmp_path / "stop")
    rank0, rank1 = (json.loads((tmp_path / f"stop.{rank}.json").read_text()) for rank in (0, 1))
    assert rank0 == rank1
    assert rank0["batch"]["iterations"] == 2 and rank0["batch"]["epochs"] == [0]
    assert rank0["early"]["epochs"] == [0, 1] and rank0["early"]["iterations"] == 6


def test_ranks_that_call_fit_differently_all_fail_with_the_same_error(tmp_path):
    """Rank 1 holds fewer samples (or validation samples, or has another batch size, epoch count or model):
    every rank raises the same ValueError at the start of fit, naming the difference rank by rank, and no rank
    trains; the next fit of the same processes works (the ranks stay in step)."""
    _run(2, "disagree", tmp_path / "disagree", env={"MPI_TEST_TIMEOUT": "10"})
    rank0, rank1 = (json.loads((tmp_path / f"disagree.{rank}.json").read_text()) for rank in (0, 1))
    assert rank0 == rank1
    expected = {"samples": "differently (every rank must call it with the same data sizes, model and arguments): "
                           "training samples: rank 0 24, rank 1 20",
                "validation": "validation samples: rank 0 10, rank 1 8",
                "batch_size": "batches per epoch: rank 0 3, rank 1 2; batch_size: rank 0 8, rank 1 12",
                "epochs": "epochs: rank 0 3, rank 1 4",
                "model": "weights: rank 0 (((3, 24), 'float64'), ((6, 24), 'float64')"}
    for case, text in expected.items():
        assert rank0[case] is not None and rank0[case].startswith("MPIStrategy: the ranks called fit differently"), case
        assert text in rank0[case], (case, rank0[case])


def test_verbose_output_comes_from_rank_0_only(tmp_path):
    result = _run(2, "dropout", tmp_path / "verbose")
    assert result.stdout.count("Epoch 1/2") == 1 and result.stdout.count("Epoch 2/2") == 1, result.stdout


def test_strategy_arguments_are_checked(tmp_path):
    assert "checks passed" in _run(1, "checks", tmp_path / "checks").stdout
