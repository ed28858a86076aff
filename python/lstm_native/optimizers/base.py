"""The optimizer base class: Keras 3's ``BaseOptimizer`` step (gradient clipping, decoupled weight decay, the
update rule, the iteration counter) on numpy arrays, updating :class:`~lstm_native.variables.Variable` values in place.
"""

from __future__ import annotations

import re
import warnings
from numbers import Real
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..variables import Variable
from . import schedules

# What an optimizer's learning_rate may be: a number or a schedule evaluated at the step count.
LearningRate = Union[float, schedules.LearningRateSchedule]


def keras_cast(x, dtype) -> np.generic:
    """A Python number as Keras' ``ops.cast(x, dtype)`` makes it: through a float32 tensor (Keras' floatx).
    Keras casts its learning rate, weight decay, SGD's momentum, Adam's betas and Adagrad's initial accumulator
    value this way, so that float64 variables see these hyperparameters rounded to float32."""
    return np.dtype(dtype).type(np.float32(x))


def _snake_case(name: str) -> str:
    """Keras' ``to_snake_case`` (which makes "AdamW" "adam_w" and "RMSprop" "rm_sprop")."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


class Optimizer:
    """Base class of the optimizers.

    Args:
        learning_rate: a float (kept in float32, as Keras keeps it in a float32 variable) or a
            :class:`~lstm_native.optimizers.schedules.LearningRateSchedule`, evaluated at ``iterations``.
        weight_decay: if set, every updated variable first decays: ``value -= value * weight_decay * lr``
            (see :meth:`exclude_from_weight_decay`).
        clipnorm: clip each gradient to this L2 norm.
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: scale all gradients of a step together so that their joint L2 norm is at most this.
            At most one of the three clip options may be set.
        name: the optimizer's name (default: the class name in snake case, as Keras but without a uniquifying
            suffix).

    Subclasses define ``_slot_initial_values()`` (slot name -> initial value), ``_update_step`` and
    ``get_config``. Slots (the per-variable state, e.g. Adam's moments) are created at a variable's first
    update, in that variable's dtype, and are keyed by the variable's ``path``.
    """

    def __init__(self, learning_rate: LearningRate, weight_decay: Optional[float] = None,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None, name: Optional[str] = None) -> None:
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}"
            )
        self.name = name if name is not None else _snake_case(type(self).__name__)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self._iterations = 0
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            self._learning_rate = learning_rate
        elif isinstance(learning_rate, Real) and not isinstance(learning_rate, bool):
            self._learning_rate = np.float32(learning_rate)
        else:
            raise ValueError(
                "Argument `learning_rate` should be float, or an instance of LearningRateSchedule. "
                f"Received instead: learning_rate={learning_rate}"
            )
        self._slots: Dict[str, Dict[str, np.ndarray]] = {}
        self._owners: Dict[str, Variable] = {}
        self._exclude_from_decay: List[Variable] = []
        self._exclude_from_decay_pattern: Optional[re.Pattern] = None

    # ---------------------------------------------------------------- learning rate and counter

    @property
    def iterations(self) -> int:
        """The number of updates applied so far."""
        return self._iterations

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next update (a schedule is evaluated at ``iterations``)."""
        return float(self._current_learning_rate())

    @learning_rate.setter
    def learning_rate(self, learning_rate) -> None:
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            self._learning_rate = learning_rate
        elif isinstance(self._learning_rate, schedules.LearningRateSchedule):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` constructor "
                "argument, hence its learning rate is not settable. If you need the learning rate to be settable, "
                "you should instantiate the optimizer with a float `learning_rate` argument."
            )
        else:
            self._learning_rate = np.float32(learning_rate)

    def _current_learning_rate(self):
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return self._learning_rate(self._iterations)
        return self._learning_rate

    # ---------------------------------------------------------------- weight decay

    def exclude_from_weight_decay(self, var_list: Optional[Iterable] = None,
                                  var_names: Optional[Sequence[str]] = None) -> None:
        """Exempts variables from weight decay: those in ``var_list`` (by identity) and those whose ``name``
        contains (``re.search``) any of the strings in ``var_names``. Replaces any earlier exclusion."""
        self._exclude_from_decay = list(var_list or [])
        self._exclude_from_decay_pattern = re.compile("|".join(set(var_names))) if var_names else None

    def _use_weight_decay(self, variable: Variable) -> bool:
        if any(variable is excluded for excluded in self._exclude_from_decay):
            return False
        pattern = self._exclude_from_decay_pattern
        return pattern is None or pattern.search(variable.name) is None

    # ---------------------------------------------------------------- the step

    def apply(self, variables: Iterable[Variable]) -> None:
        """One update of the trainable ``variables`` from their ``.grad`` (those whose grad is None are skipped).

        Raises ValueError when there are trainable variables but none of them has a gradient.
        """
        trainable = [v for v in variables if v.trainable]
        if not trainable:
            return
        pairs = [(v.grad, v) for v in trainable if v.grad is not None]
        if not pairs:
            raise ValueError("No gradients provided for any variable.")
        self._apply_pairs(pairs)

    def apply_gradients(self, grads_and_vars: Iterable[Tuple[Optional[np.ndarray], Variable]]) -> int:
        """One update from ``(gradient, variable)`` pairs, as Keras' ``apply_gradients``: pairs whose gradient is
        None are left out with a warning. Variables that are not trainable are left alone. Returns ``iterations``."""
        pairs = [(g, v) for g, v in grads_and_vars if v.trainable]
        if pairs:
            missing = [v.path for g, v in pairs if g is None]
            given = [(g, v) for g, v in pairs if g is not None]
            if not given:
                raise ValueError("No gradients provided for any variable.")
            if missing:
                warnings.warn(f"Gradients do not exist for variables {missing} when minimizing the loss.",
                              stacklevel=2)
            self._apply_pairs(given)
        return self._iterations

    def _apply_pairs(self, pairs: List[Tuple[np.ndarray, Variable]]) -> None:
        grads = []
        for grad, variable in pairs:
            grad = np.asarray(grad)
            if grad.shape != variable.value.shape:
                raise ValueError(f"{variable.path}: gradient shape {grad.shape} != variable shape "
                                 f"{variable.value.shape}")
            grads.append(grad)
        variables = [variable for _, variable in pairs]
        slots = [self._slots_of(variable) for variable in variables]  # before any update: a failure changes nothing
        grads = self._clip_gradients(grads)
        learning_rate = self._current_learning_rate()
        for variable, grad, variable_slots in zip(variables, grads, slots):
            value = variable.value
            lr = value.dtype.type(learning_rate)
            if self.weight_decay is not None and self._use_weight_decay(variable):
                value -= value * keras_cast(self.weight_decay, value.dtype) * lr
            self._update_step(grad.astype(value.dtype, copy=False), value, variable_slots, lr)
        self._iterations += 1

    def _clip_gradients(self, grads: List[np.ndarray]) -> List[np.ndarray]:
        if self.clipnorm and self.clipnorm > 0:
            return [self._clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                norm = np.sqrt(np.sum(np.stack([np.sum(np.square(g)) for g in grads])))
                scale = self.global_clipnorm * np.minimum(1.0 / norm, 1.0 / self.global_clipnorm)
                scale = scale + (norm - norm)  # NaN for a non-finite norm, as Keras
            return [g * scale for g in grads]
        if self.clipvalue and self.clipvalue > 0:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    @staticmethod
    def _clip_by_norm(grad: np.ndarray, clipnorm: float) -> np.ndarray:
        l2sum = np.sum(np.square(grad))
        l2norm = np.sqrt(l2sum) if l2sum > 0 else l2sum
        return grad * clipnorm / np.maximum(l2norm, clipnorm)

    def _update_step(self, grad: np.ndarray, value: np.ndarray, slots: Dict[str, np.ndarray], lr) -> None:
        """Updates ``value`` (and ``slots``) in place; ``grad`` and ``lr`` are in ``value``'s dtype."""
        raise NotImplementedError

    def _slot_initial_values(self) -> Dict[str, float]:
        """Slot name -> initial value, for every slot this optimizer keeps per variable."""
        raise NotImplementedError

    def _slots_of(self, variable) -> Dict[str, np.ndarray]:
        path = variable.path
        owner = self._owners.setdefault(path, variable)
        if owner is not variable:
            raise ValueError(f"Optimizer '{self.name}' already updates another variable with path '{path}': "
                             "paths must be unique (use a new optimizer for new variables).")
        slots = self._slots.get(path)
        if slots is None:
            value = variable.value
            slots = {name: np.full(value.shape, keras_cast(init, value.dtype), dtype=value.dtype)
                     for name, init in self._slot_initial_values().items()}
            self._slots[path] = slots
        else:
            for name, array in slots.items():
                if array.shape != variable.value.shape:
                    raise ValueError(f"Optimizer state '{path}/{name}' has shape {array.shape}, the variable "
                                     f"{variable.value.shape}")
                slots[name] = array.astype(variable.value.dtype, copy=False)
        return slots

    # ---------------------------------------------------------------- state

    def variables(self) -> Dict[str, np.ndarray]:
        """The optimizer's state as named numpy arrays (copies): ``"iterations"`` (int64 scalar),
        ``"learning_rate"`` (float32 scalar, absent with a schedule) and ``"<variable path>/<slot>"`` for every
        slot. :meth:`set_state` restores it, so that training resumes exactly."""
        state = {"iterations": np.array(self._iterations, dtype=np.int64)}
        if not isinstance(self._learning_rate, schedules.LearningRateSchedule):
            state["learning_rate"] = np.array(self._learning_rate, dtype=np.float32)
        for path, slots in self._slots.items():
            for name, array in slots.items():
                state[f"{path}/{name}"] = array.copy()
        return state

    def set_state(self, state: Dict[str, np.ndarray]) -> None:
        """Restores a state from :meth:`variables` (possibly of another optimizer instance of the same
        configuration, before its first update). Slots of variables absent from ``state`` start afresh."""
        state = dict(state)
        if "iterations" not in state:
            raise ValueError("Optimizer state lacks 'iterations'")
        iterations = int(state.pop("iterations"))
        learning_rate = state.pop("learning_rate", None)
        if learning_rate is not None and isinstance(self._learning_rate, schedules.LearningRateSchedule):
            raise ValueError("Optimizer state has a 'learning_rate' but this optimizer uses a schedule")
        expected = set(self._slot_initial_values())
        slots: Dict[str, Dict[str, np.ndarray]] = {}
        for key, array in state.items():
            path, _, name = key.rpartition("/")
            if not path or name not in expected:
                raise ValueError(f"Unknown optimizer state entry '{key}' for {type(self).__name__} "
                                 f"(slots: {sorted(expected)})")
            slots.setdefault(path, {})[name] = np.array(array)
        for path, path_slots in slots.items():
            if set(path_slots) != expected:
                raise ValueError(f"Optimizer state for '{path}' has slots {sorted(path_slots)}, "
                                 f"expected {sorted(expected)}")
            owner = self._owners.get(path)
            if owner is not None and any(a.shape != owner.value.shape for a in path_slots.values()):
                raise ValueError(f"Optimizer state for '{path}' does not match the variable's shape "
                                 f"{owner.value.shape}")
        self._iterations = iterations
        if learning_rate is not None:
            self._learning_rate = np.float32(learning_rate)
        self._slots = slots

    # ---------------------------------------------------------------- configuration

    def get_config(self) -> dict:
        """Keras' optimizer config: the constructor arguments (a schedule serialized), as ``save`` stores them."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            learning_rate = schedules.serialize(self._learning_rate)
        else:
            learning_rate = float(self._learning_rate)
        return {
            "name": self.name,
            "learning_rate": learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
        }

    @classmethod
    def from_config(cls, config: dict) -> "Optimizer":
        """The optimizer that a :meth:`get_config` dict describes."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} iterations={self._iterations}>"
