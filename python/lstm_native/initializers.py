"""Weight initializers with Keras 3 names and defaults (drawn from lstm_native.utils' seeded generator)."""

from __future__ import annotations

import math

import numpy as np

from . import _serialization, utils


def compute_fans(shape) -> tuple:
    """(fan_in, fan_out) as Keras computes them: receptive field × the last two dims for rank > 2."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


# Random values are drawn in float64 (the generator's native output, so a seed gives the same weights in any
# dtype and release) but never all at once: a chunk of this many values at a time is cast into the result,
# which alone has the full size (Embedding(10**7, 64) in float32 is 2.4 GB; one float64 draw was 4.8 GB more).
_DRAW_CHUNK = 1 << 18


def _drawn(shape, dtype, draw, transform=None) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` filled in order with ``draw(n)`` (n float64 values of one stream),
    each chunk passed through ``transform`` (float64 -> float64) before its cast."""
    result = np.empty(shape, dtype=dtype)
    flat = result.reshape(-1)
    for first in range(0, flat.size, _DRAW_CHUNK):
        values = draw(min(_DRAW_CHUNK, flat.size - first))
        flat[first : first + values.size] = values if transform is None else transform(values)
    return result


class Initializer:
    def __call__(self, shape, dtype=np.float32) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=np.float32):
        return np.full(shape, self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


class Zeros(Constant):
    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {}


class Ones(Constant):
    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape, dtype=np.float32):
        rng = utils.generator(self.seed)
        return _drawn(shape, dtype, lambda n: rng.uniform(self.minval, self.maxval, n))

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=np.float32):
        rng = utils.generator(self.seed)
        return _drawn(shape, dtype, lambda n: rng.normal(self.mean, self.stddev, n))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(RandomNormal):
    """Normal, redrawn beyond two standard deviations: a first pass draws every value, then the values
    outside [-2, 2] (about 4.6%, whose float64 values alone are kept) are redrawn until none is."""

    def __call__(self, shape, dtype=np.float32):
        rng = utils.generator(self.seed)
        scale = lambda values: self.mean + self.stddev * values  # noqa: E731
        outside_chunks = []

        def first_pass(n):
            values = rng.normal(0.0, 1.0, n)
            outside_chunks.append(np.flatnonzero(np.abs(values) > 2))
            return values

        result = _drawn(shape, dtype, first_pass, scale)
        flat = result.reshape(-1)
        outside = np.concatenate([k + first for k, first in zip(outside_chunks, range(0, flat.size, _DRAW_CHUNK))]
                                 + [np.empty(0, np.int64)])
        redrawn = np.empty(outside.size)
        pending = np.arange(outside.size)
        while pending.size:
            redrawn[pending] = rng.normal(0.0, 1.0, pending.size)
            pending = pending[np.abs(redrawn[pending]) > 2]
        flat[outside] = scale(redrawn)
        return result


class VarianceScaling(Initializer):
    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"mode: expected 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(f"distribution: expected 'truncated_normal', 'untruncated_normal' or 'uniform', "
                             f"got {distribution!r}")
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def __call__(self, shape, dtype=np.float32):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return RandomUniform(-limit, limit, self.seed)(shape, dtype)
        if self.distribution == "untruncated_normal":
            return RandomNormal(0.0, math.sqrt(variance), self.seed)(shape, dtype)
        # 0.8796... is the standard deviation of a unit normal truncated to [-2, 2]
        return TruncatedNormal(0.0, math.sqrt(variance) / 0.87962566103423978, self.seed)(shape, dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


def _variance_scaling(scale, mode, distribution):
    class Named(VarianceScaling):
        def __init__(self, seed=None):
            super().__init__(scale, mode, distribution, seed)

        def get_config(self):
            return {"seed": self.seed}

    return Named


GlorotUniform = _variance_scaling(1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling(1.0, "fan_avg", "truncated_normal")
HeUniform = _variance_scaling(2.0, "fan_in", "uniform")
HeNormal = _variance_scaling(2.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling(1.0, "fan_in", "uniform")
LecunNormal = _variance_scaling(1.0, "fan_in", "truncated_normal")
for _cls, _name in ((GlorotUniform, "GlorotUniform"), (GlorotNormal, "GlorotNormal"), (HeUniform, "HeUniform"),
                    (HeNormal, "HeNormal"), (LecunUniform, "LecunUniform"), (LecunNormal, "LecunNormal")):
    _cls.__name__ = _cls.__qualname__ = _name


class Orthogonal(Initializer):
    """Keras' orthogonal: QR of a normal matrix, signs fixed by diag(R); for a (H, 4H) kernel the rows are
    orthonormal."""

    def __init__(self, gain=1.0, seed=None):
        self.gain, self.seed = gain, seed

    def __call__(self, shape, dtype=np.float32):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the shape must have rank >= 2, got {tuple(shape)}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        # The QR runs in float64 on the whole matrix: the float64 temporaries are inherent (and the matrix is
        # a recurrent kernel, (units, 4 units), not a table of millions of rows).
        a = utils.generator(self.seed).normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(dtype)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=np.float32):
        if len(shape) != 2:
            raise ValueError(f"Identity: the shape must have rank 2, got {tuple(shape)}")
        identity = np.eye(*shape, dtype=dtype)
        identity *= self.gain
        return identity

    def get_config(self):
        return {"gain": self.gain}


_ALIASES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "uniform": RandomUniform, "random_uniform": RandomUniform,
    "normal": RandomNormal, "random_normal": RandomNormal, "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal, "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal, "identity": Identity,
}
_ALIASES.update({cls.__name__: cls for cls in set(_ALIASES.values())})


def get(identifier) -> Initializer:
    """An initializer from a Keras name ("glorot_uniform", "Orthogonal", ...), a ``{"class_name", "config"}``
    dict (as layers' get_config writes it), an instance or a callable."""
    if isinstance(identifier, Initializer) or callable(identifier) and not isinstance(identifier, type):
        return identifier
    if isinstance(identifier, dict):
        return _serialization.deserialize(identifier, _ALIASES, "initializer")
    if isinstance(identifier, str) and identifier in _ALIASES:
        return _ALIASES[identifier]()
    raise ValueError(f"Could not interpret initializer identifier: {identifier!r}")
