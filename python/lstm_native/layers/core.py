"""Input, Dropout, Embedding and Masking: the layers around an LSTM."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from numpy.typing import DTypeLike

from .. import utils
from .._serialization import Identifier
from .base import Layer, Shape


class InputLayer(Layer):
    """Declares the input shape (without the batch dimension) of a Sequential model."""

    def __init__(self, shape: Optional[Sequence[Optional[int]]] = None, batch_size: Optional[int] = None,
                 dtype: Optional[DTypeLike] = None, input_shape: Optional[Sequence[Optional[int]]] = None,
                 name: Optional[str] = None, **kwargs: Any) -> None:
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise ValueError("InputLayer: give shape=(timesteps, features) (the batch dimension excluded)")
        super().__init__(input_shape=tuple(shape), batch_size=batch_size, name=name, **kwargs)
        self.input_dtype = np.dtype(dtype or "float32")  # integer ids for an Embedding are fine here
        self.built = True

    def forward(self, x: np.ndarray, training: bool = False, mask: Optional[np.ndarray] = None) -> np.ndarray:
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy

    def compute_mask(self, inputs: np.ndarray, mask: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        return mask

    def get_config(self) -> dict:
        batch_input_shape = self.batch_input_shape
        assert batch_input_shape is not None  # an InputLayer always has one (its shape is required)
        return {"shape": list(batch_input_shape[1:]), "batch_size": batch_input_shape[0],
                "dtype": self.input_dtype.name, "name": self.name}


def Input(shape: Optional[Sequence[Optional[int]]] = None, batch_size: Optional[int] = None, dtype: Optional[DTypeLike] = None,
          name: Optional[str] = None) -> InputLayer:
    """Keras' Input for Sequential models: ``model.add(Input(shape=(T, I)))``."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name)


class Dropout(Layer):
    """Inverted dropout: in training, zeroes a fraction `rate` of the inputs and scales the rest by 1/(1-rate)."""

    supports_masking = True

    def __init__(self, rate: float, noise_shape: Optional[Sequence[Optional[int]]] = None, seed: Optional[int] = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"rate: expected a value in [0, 1), got {rate!r}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed
        self._rng = None if seed is None else np.random.default_rng(seed)
        self._scaled_keep = None

    def forward(self, x: np.ndarray, training: bool = False, mask: Optional[np.ndarray] = None) -> np.ndarray:
        if not training:  # inference writes no state: many threads may run it at once
            return x
        if self.rate == 0:
            self._scaled_keep = None
            return x
        shape = x.shape if self.noise_shape is None else tuple(
            d if n is None else n for d, n in zip(x.shape, self.noise_shape))
        rng = self._rng or utils.generator()
        self._scaled_keep = (rng.random(shape) >= self.rate).astype(x.dtype) / x.dtype.type(1 - self.rate)
        return x * self._scaled_keep

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy if self._scaled_keep is None else dy * self._scaled_keep


class Embedding(Layer):
    """Maps integer ids (batch, timesteps) to vectors; with mask_zero=True id 0 is padding and masked."""

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Identifier = "uniform",
                 embeddings_regularizer: Optional[Identifier] = None, mask_zero: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        self.input_dim, self.output_dim, self.mask_zero = int(input_dim), int(output_dim), mask_zero
        self.embeddings_initializer, self.embeddings_regularizer = embeddings_initializer, embeddings_regularizer
        self._ids: Optional[np.ndarray] = None

    def build(self, input_shape: Shape) -> None:
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer, self.embeddings_regularizer)
        self.built = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, inputs: np.ndarray, mask: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        return self._ids_of(inputs) != 0 if self.mask_zero else None

    def _ids_of(self, x) -> np.ndarray:
        return utils.integer_ids(x, f"{self.name}: ids", upper=self.input_dim)

    def forward(self, x: np.ndarray, training: bool = False, mask: Optional[np.ndarray] = None) -> np.ndarray:
        ids = self._ids_of(x)
        if training:  # inference writes no state: many threads may run it at once
            self._ids = ids
        return self.embeddings.value[ids]

    def backward(self, dy: np.ndarray) -> None:
        grad = np.zeros_like(self.embeddings.value)
        np.add.at(grad, self._saved(self._ids).ravel(), dy.reshape(-1, self.output_dim))
        self.embeddings.grad = grad
        self._ids = None
        return None  # integer ids have no gradient


class Masking(Layer):
    """Masks every timestep whose features all equal mask_value (and zeroes it), as Keras does."""

    supports_masking = True

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask_value = mask_value
        self._keep: Optional[np.ndarray] = None

    def compute_mask(self, inputs: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
        return np.any(np.asarray(inputs) != self.mask_value, axis=-1)

    def forward(self, x: np.ndarray, training: bool = False, mask: Optional[np.ndarray] = None) -> np.ndarray:
        keep = self.compute_mask(x)[..., None]
        if training:  # inference writes no state: many threads may run it at once
            self._keep = keep
        return x * keep

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self._saved(self._keep)
