"""Data-parallel training over MPI (mpi4py): ``model.fit(..., strategy=MPIStrategy())``.

``MPIStrategy`` is a :class:`lstm_native.strategy.Strategy`: ``fit`` runs its one loop
(:mod:`lstm_native.training`) and this module supplies only what is particular to MPI, through the hooks of
that protocol: the check that the ranks agree, the broadcast at the start, the shards, the reductions and the
deadlines.

Launch the same script on every rank (``mpiexec -n 2 python script.py``). Each rank loads the same data; every
global batch of ``batch_size`` samples (the same shuffled order on all ranks) is split evenly into one
contiguous shard per rank. A step runs the forward and backward passes on the rank's shard, then ONE
non-blocking allreduce over one flat buffer that holds every gradient (scaled by shard size / global batch
size, so that the sum is the gradient of the mean loss over the global batch, as one process computes it),
the loss and metric accumulators of the epoch (summed: the logs are those of the whole data) and a small
control block (rank 0's ``stop_training`` and learning rate). Every rank then applies the same update.

* At the start of ``fit`` one allgather checks that every rank calls it alike (the numbers of samples, batches
  and validation samples, per-sample shapes, the model's config and weight shapes, the compile arguments,
  ``batch_size``, ``epochs`` and the loop's other arguments); where they differ, every rank raises the same
  ValueError, which lists the values rank by rank, before anything trains.
* Then (after ``on_train_begin``) rank 0 broadcasts the weights, the optimizer's state, the
  initial epoch and the library generator's state: the ranks start identical whatever each one loaded or
  seeded (a ``BackupAndRestore`` restore on rank 0 reaches all ranks).
* Callbacks (``EarlyStopping``, ``ModelCheckpoint``, ...) and the progress bar run on rank 0 only; its
  decisions reach all ranks: ``stop_training`` (set at a batch's end, it stops every rank before the next
  update; set at an epoch's end, after that epoch) and the learning rate (``ReduceLROnPlateau``,
  ``LearningRateScheduler``). ``model.history`` holds the reduced logs on every rank.
* Validation data is split across the ranks too and its accumulators are summed.
* Dropout masks: the layers draw their per-batch seeds from a per-rank generator seeded by (a number drawn
  from rank 0's ``lstm_native.utils`` generator, the rank): distinct per rank, reproducible after
  ``set_random_seed``. Shuffling uses a generator shared by all ranks. (A layer built with its own ``seed=``
  draws the same seeds on every rank.)
* Every collective is non-blocking with a deadline: if another rank dies or stalls, the waiting ranks raise
  ``RuntimeError`` after ``timeout`` seconds instead of hanging. The communicator cannot be used afterwards,
  and ``MPI_Finalize`` would wait for the missing rank forever, so such a process ends with status 1 at
  interpreter exit without finalizing MPI.

Not supported (ValueError): stateful layers, metrics other than the library's mean metrics, batches from a
generator, dataset or sequence (x or validation_data). ``class_weight``, ``loss_weights``, ``weighted_metrics``
and ``BackupAndRestore`` work as in one process.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import pickle
import sys
import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

from . import _arguments, data, utils
from . import metrics as metrics_module
from .strategy import Batch, FitPlan, Strategy

if TYPE_CHECKING:
    from .models import Sequential

__all__ = ["MPIStrategy"]

_exit_guard_armed = False


def _exit_without_finalize() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def _arm_exit_guard() -> None:
    """After a failed collective MPI_Finalize would wait for the lost rank: end the process before it runs
    (Python's atexit handlers run before mpi4py's finalization)."""
    global _exit_guard_armed
    if not _exit_guard_armed:
        _exit_guard_armed = True
        atexit.register(_exit_without_finalize)


def _shard(count: int, rank: int, size: int):
    return count * rank // size, count * (rank + 1) // size


def _rows(array, rows):
    return None if array is None else array[rows]


def _shown(value) -> str:
    """A value of a fit signature for an error message: itself, or a digest where it is long (a model config)."""
    text = repr(value)
    return text if len(text) <= 300 else f"<{len(text)} characters, sha256 {hashlib.sha256(text.encode()).hexdigest()[:12]}>"


def _per_sample(array) -> Optional[tuple]:
    return None if array is None else (tuple(np.shape(array)[1:]), str(np.asarray(array).dtype))


def _without_names(config):
    """A config without its "name" entries (automatic layer names count the layers each process has made)."""
    if isinstance(config, dict):
        return {key: _without_names(value) for key, value in config.items() if key != "name"}
    if isinstance(config, list):
        return [_without_names(value) for value in config]
    return config


def _fit_signature(plan: FitPlan, batches: data.ArrayBatches,
                   validation: Optional[data.ArrayBatches]) -> Dict[str, object]:
    """What every rank's fit must agree on, by name: the data's sizes, the model, the arguments that shape the
    loop (``batches`` and ``validation``: the plan's, arrays). (Equal values compare equal across processes:
    plain numbers, strings, tuples.)"""
    model = plan.model
    loss = model.loss
    return {
        "training samples": len(batches.x), "batches per epoch": batches.steps,
        "x per sample": _per_sample(batches.x), "y per sample": _per_sample(batches.y),
        "sample weights": _per_sample(batches.sample_weight),
        "validation samples": None if validation is None else len(validation.x),
        "validation per sample": None if validation is None else tuple(
            _per_sample(a) for a in (validation.x, validation.y, validation.sample_weight)),
        **plan.arguments,
        "model config": json.dumps(_without_names(model.get_config()), sort_keys=True, default=repr),
        "weights": tuple((tuple(w.value.shape), str(w.value.dtype)) for w in model.weights),
        "optimizer": json.dumps([type(model.optimizer).__name__, getattr(model.optimizer, "get_config", dict)()],
                                sort_keys=True, default=repr),
        "loss": json.dumps([type(loss).__name__, getattr(loss, "get_config", dict)()], sort_keys=True, default=repr),
        "metrics": tuple(m if isinstance(m, str) else type(m).__name__ for m in plan.metrics),
    }


class MPIStrategy(Strategy):
    """Data-parallel ``fit`` over MPI ranks; pass it as ``model.fit(..., strategy=MPIStrategy())``.

    Args:
        comm: an mpi4py communicator (default ``MPI.COMM_WORLD``); every rank of it must call ``fit`` with
            the same data, batch size and epochs.
        timeout: seconds any rank waits in one collective (the gradient allreduce of a step, a broadcast)
            before it raises ``RuntimeError`` (another rank died, stalls, or left ``fit``). Make it larger than
            the longest imbalance between ranks (e.g. rank 0 saving a checkpoint) and than a step's time.

    Attributes:
        rank, size: this process' rank and the number of ranks.
        timings: ``{"steps", "step_seconds", "allreduce_seconds"}`` of the last ``fit`` on this rank: the
            wall time of the training steps and the part of it spent in the gradient allreduce (waiting for
            the slowest rank included).
    """

    def __init__(self, comm: Any = None, timeout: float = 60.0) -> None:
        try:
            from mpi4py import MPI
        except ImportError as error:  # pragma: no cover - depends on the installation
            raise ImportError("MPIStrategy needs mpi4py and an MPI library: pip install 'lstm_native[mpi]' "
                              "(mpi4py and the mpich wheel)") from error
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timeout = _arguments.number("timeout", timeout, above=0)
        self.timings = {"steps": 0, "step_seconds": 0.0, "allreduce_seconds": 0.0}
        self._broken = False

    def __repr__(self) -> str:
        return f"MPIStrategy(rank={self.rank}, size={self.size}, timeout={self.timeout})"

    @property
    def is_chief(self) -> bool:
        """Rank 0 runs the callbacks and the progress bar."""
        return self.rank == 0

    # ------------------------------------------------------------------------------- collectives with a deadline
    def _wait(self, request, what: str) -> None:
        if self._broken:
            raise RuntimeError("MPIStrategy: an earlier collective timed out; the communicator is unusable")
        start = time.monotonic()
        deadline = start + self.timeout
        pause = 0.0
        while not request.Test():
            now = time.monotonic()
            if now > deadline:
                self._broken = True
                _arm_exit_guard()
                raise RuntimeError(
                    f"MPIStrategy: rank {self.rank} of {self.size} waited {self.timeout:g} s in {what} without the "
                    "other ranks: one of them died, stalls or left fit. Training stops; this process will exit "
                    "with status 1 (MPI cannot be finalized without the lost rank).")
            if now - start > 1e-3:  # spin first (a step's imbalance is short), then poll gently
                pause = min(2e-4, max(2e-5, pause * 2))
                time.sleep(pause)

    def _allreduce(self, send: np.ndarray, receive: np.ndarray, what: str) -> np.ndarray:
        self._wait(self.comm.Iallreduce(send, receive, op=self._MPI.SUM), what)
        return receive

    def _broadcast_object(self, obj, what: str):
        """rank 0's ``obj`` on every rank (pickled; a non-blocking broadcast of its length, then of its bytes)."""
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL) if self.is_chief else b""
        length = np.array([len(data)], dtype=np.int64)
        self._wait(self.comm.Ibcast(length, root=0), what)
        buffer = np.frombuffer(data, dtype=np.uint8).copy() if self.is_chief else np.empty(int(length[0]), np.uint8)
        self._wait(self.comm.Ibcast(buffer, root=0), what)
        return obj if self.is_chief else pickle.loads(buffer.tobytes())

    def _allgather_object(self, obj, what: str) -> list:
        """Every rank's ``obj``, in rank order (pickled; a non-blocking allgather of the lengths, then of the
        bytes)."""
        data = np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), dtype=np.uint8)
        lengths = np.empty(self.size, dtype=np.int64)
        self._wait(self.comm.Iallgather(np.array([len(data)], dtype=np.int64), lengths), what)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        received = np.empty(int(offsets[-1]), dtype=np.uint8)
        self._wait(self.comm.Iallgatherv(data, [received, (lengths.tolist(), offsets[:-1].tolist()), self._MPI.BYTE]),
                   what)
        return [pickle.loads(received[first:last].tobytes()) for first, last in zip(offsets[:-1], offsets[1:])]

    # ------------------------------------------------------------------------------------------ checks and setup
    def _check_ranks_agree(self, signature: Dict[str, object]) -> None:
        """One allgather of every rank's ``signature`` (what ``fit`` was called with); where the ranks differ,
        every rank raises the same ValueError, which lists the differences rank by rank."""
        signatures = self._allgather_object(signature, "the check that every rank calls fit alike")
        differences = [name for name in signature if any(other[name] != signature[name] for other in signatures)]
        if differences:
            raise ValueError("MPIStrategy: the ranks called fit differently (every rank must call it with the same "
                             "data sizes, model and arguments): " + "; ".join(
                                 f"{name}: " + ", ".join(f"rank {rank} {_shown(other[name])}"
                                                         for rank, other in enumerate(signatures))
                                 for name in differences))

    def _check(self, plan: FitPlan, batches: data.ArrayBatches) -> None:
        batch_size, count = batches.batch_size, len(batches.x)
        if batch_size < self.size:
            raise ValueError(f"MPIStrategy: batch_size ({batch_size}) is the global batch; it must be at least the "
                             f"number of ranks ({self.size})")
        if count < self.size:
            raise ValueError(f"MPIStrategy: {count} training samples for {self.size} ranks")
        for layer in plan.model.layers:
            for sub in [layer] + [getattr(layer, name, None) for name in ("forward_layer", "backward_layer")]:
                if getattr(sub, "stateful", False):
                    raise ValueError(f"MPIStrategy: {layer.name} is stateful; states cannot follow sharded batches")
        for identifier in plan.metrics:
            if isinstance(identifier, metrics_module.Metric) and not isinstance(identifier, metrics_module.Mean):
                raise ValueError(f"MPIStrategy: metric {identifier.name} has no (total, count) accumulators to "
                                 "reduce across ranks")

    def _synchronize_start(self, model, initial_epoch: int) -> int:
        """Rank 0's weights, optimizer state, initial epoch and generator state on every rank; returns the
        initial epoch and seeds the shuffling and per-rank generators."""
        state = None
        if self.is_chief:
            base = int(utils.generator().integers(0, 2**63))
            state = {"weights": model.get_weights(), "optimizer": model.optimizer.variables(),
                     "initial_epoch": int(initial_epoch), "base": base, "rng": utils.get_rng_state()}
        state = self._broadcast_object(state, "the start of fit (broadcast of rank 0's weights)")
        if not self.is_chief:
            model.set_weights(state["weights"])
            model.optimizer.set_state(state["optimizer"])
            utils.set_rng_state(state["rng"])
        self._shuffle_generator = np.random.default_rng([state["base"], 0])
        self._rank_generator = np.random.default_rng([state["base"], 1, self.rank])
        self._schedule = "learning_rate" not in state["optimizer"]  # a schedule: every rank computes the same rate
        return state["initial_epoch"]

    def _layout(self, model, accumulator_count: int) -> None:
        """The step's buffer: the trainable weights' gradients, (total, count) per accumulator, the control."""
        variables = model.trainable_weights
        offsets = np.cumsum([0] + [v.value.size for v in variables])
        dtype = np.result_type(*[v.value.dtype for v in variables]) if variables else np.float64
        total = int(offsets[-1]) + 2 * accumulator_count + 2
        self._variables, self._offsets = variables, offsets
        self._send, self._receive = np.zeros(total, dtype), np.empty(total, dtype)

    # --------------------------------------------------------------------------------------------- the reduction
    def _accumulator_state(self, accumulators) -> list:
        """(total, count) of each accumulator, (0, 0) for the metrics not resolved yet on this rank (it has run
        no batch: rank 0 stopping before the first step)."""
        state = [value for accumulator in accumulators for value in (accumulator.total, accumulator.count)]
        return state + [0.0] * (2 * self._accumulator_count - len(state))

    @staticmethod
    def _results(sums) -> list:
        return [float(sums[2 * k] / sums[2 * k + 1]) if sums[2 * k + 1] else 0.0 for k in range(len(sums) // 2)]

    def _control(self, model, stop: bool):
        if not self.is_chief:
            return [0.0, 0.0]
        return [1.0 if stop else 0.0, 0.0 if self._schedule else float(model.optimizer.learning_rate)]

    def _apply_control(self, model, stop: float, learning_rate: float) -> bool:
        if stop > 0:
            model.stop_training = True
        if not self.is_chief and learning_rate > 0 and np.float32(learning_rate) != np.float32(
                model.optimizer.learning_rate):
            model.optimizer.learning_rate = learning_rate
        return stop > 0

    # ---------------------------------------------------------------------------- the hooks of lstm_native.strategy
    def check_fit(self, plan: FitPlan) -> None:
        """Arrays only; every rank called fit alike; what sharding and the reduction cannot follow is refused."""
        batches, validation = plan.batches, plan.validation
        if not isinstance(batches, data.ArrayBatches) or (
                validation is not None and not isinstance(validation, data.ArrayBatches)):
            raise ValueError("strategy: data-parallel training takes arrays, not generators or datasets")
        self._check_ranks_agree(_fit_signature(plan, batches, validation))
        self._check(plan, batches)
        self._accumulator_count = 1 + len(plan.metrics)  # the loss, then the metrics

    def begin_fit(self, model: Sequential, initial_epoch: int) -> int:
        self.timings = {"steps": 0, "step_seconds": 0.0, "allreduce_seconds": 0.0}
        initial_epoch = self._synchronize_start(model, initial_epoch)
        self._layout(model, self._accumulator_count)
        return initial_epoch

    def train_batches(self, batches: data.ArrayBatches) -> Iterator[Batch]:
        """This rank's contiguous shard of each global batch (the same order on every rank)."""
        count = len(batches.x)
        order = self._shuffle_generator.permutation(count) if batches.shuffle else np.arange(count)
        for start in range(0, count, batches.batch_size):
            rows = order[start:start + batches.batch_size]
            first, last = _shard(len(rows), self.rank, self.size)
            mine = rows[first:last]
            yield Batch(batches.x[mine], batches.y[mine], _rows(batches.sample_weight, mine), len(rows))

    def evaluation_batches(self, batches: data.ArrayBatches) -> Iterator[Batch]:
        """This rank's contiguous part of the data, in batches."""
        first, last = _shard(len(batches.x), self.rank, self.size)
        for start in range(first, last, batches.batch_size):
            rows = slice(start, min(last, start + batches.batch_size))
            yield Batch(batches.x[rows], batches.y[rows], _rows(batches.sample_weight, rows), len(batches.x[rows]))

    @contextlib.contextmanager
    def step_scope(self) -> Iterator[None]:
        """Times the step; its dropout masks come from this rank's generator."""
        started = time.perf_counter()
        with utils.using_generator(self._rank_generator):
            yield
        self.timings["steps"] += 1
        self.timings["step_seconds"] += time.perf_counter() - started

    def stop_requested(self, model: Sequential) -> bool:
        return self.is_chief and model.stop_training  # set at the last batch's end: this step tells the others

    def reduce_step(self, model: Sequential, accumulators: Sequence, batch: Batch,
                    stopping: bool) -> Optional[List[float]]:
        """ONE allreduce of the scaled gradients, the accumulators and the control block; every rank then holds
        the global batch's gradients (None: rank 0 stopped training)."""
        send, offsets, gradients_end = self._send, self._offsets, int(self._offsets[-1])
        send[:gradients_end] = 0
        if len(batch.x) and not stopping:
            scale = len(batch.x) / batch.global_size
            for variable, first, last in zip(self._variables, offsets[:-1], offsets[1:]):
                if variable.grad is not None:
                    np.multiply(variable.grad.reshape(-1), scale, out=send[first:last], casting="unsafe")
        send[gradients_end:-2] = self._accumulator_state(accumulators)
        send[-2:] = self._control(model, stopping)
        communication = time.perf_counter()
        sums = self._allreduce(send, self._receive, "the gradient allreduce of a training step")
        self.timings["allreduce_seconds"] += time.perf_counter() - communication
        if self._apply_control(model, sums[-2], sums[-1]):
            return None
        for variable, first, last in zip(self._variables, offsets[:-1], offsets[1:]):
            if variable.grad is not None:
                variable.grad = sums[first:last].reshape(variable.value.shape).astype(variable.value.dtype)
        return self._results(sums[gradients_end:-2])

    def reduce_results(self, accumulators: Sequence, batches_seen: int) -> Optional[List[float]]:
        """Validation: the accumulators (and the batch counts) summed over the ranks."""
        state = np.array(self._accumulator_state(accumulators) + [batches_seen], dtype=np.float64)
        sums = self._allreduce(state, np.empty_like(state), "the validation's reduction")
        return self._results(sums[:-1]) if sums[-1] else None

    def stop_after_batch(self, model: Sequential) -> bool:
        return False  # rank 0's decision reaches the others with the next step, or at the epoch's end

    def stop_after_epoch(self, model: Sequential) -> bool:
        control = np.array(self._control(model, self.is_chief and model.stop_training), dtype=np.float64)
        control = self._allreduce(control, np.empty_like(control), "the end of an epoch")
        return self._apply_control(model, control[0], control[1])
