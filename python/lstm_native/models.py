"""Sequential: Keras 3's model API (compile, fit, evaluate, predict, summary) over layers with explicit
backward passes. Every LSTM computation runs in the native core."""

from __future__ import annotations

import math
from typing import Dict, List, Optional

import numpy as np

from . import callbacks as callbacks_module
from . import cuda
from . import layers as layers_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import saving, utils
from .layers.base import Layer
from .layers.bidirectional import recurrent_layers
from .layers.core import InputLayer
from .variables import WeightContainer


def _batches(count: int, batch_size: int):
    for first in range(0, count, batch_size):
        yield first, min(count, first + batch_size)


def _check_samples(name: str, array, count: int) -> None:
    if array is not None and len(array) != count:
        raise ValueError(f"{name}: expected {count} samples (as many as x), got {len(array)}")


class Sequential(WeightContainer):
    """A linear stack of layers, with Keras 3's training API.

    ``device`` ("cpu" or "cuda"; ValueError where CUDA is not available) sets the device of every LSTM in the
    model, those added later and those inside Bidirectional included; None (default) leaves each layer's own.
    Not part of get_config.
    """

    def __init__(self, layers=None, name: Optional[str] = None, device: Optional[str] = None):
        self.name = name or "sequential"
        self.device = None if device is None else cuda.check_device(device, unavailable=ValueError)
        self._layers: List[Layer] = []
        self._input_layer: Optional[InputLayer] = None
        self.built = False
        self.compiled = False
        self.stop_training = False
        self.history = None
        self.optimizer = None
        self.loss = None
        self._initial_epoch = None  # set by BackupAndRestore to resume an interrupted fit
        for layer in layers or []:
            self.add(layer)

    # -- structure ---------------------------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"add: expected a layer, got {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError("add: an InputLayer must come first")
            self._input_layer = layer
        else:
            self._layers.append(layer)
        if self.device is not None:
            for lstm in recurrent_layers(layer):
                lstm.device = self.device
        shape = self._declared_input_shape()
        if shape is not None and not self.built:
            self.build(shape)
        elif self.built:
            self._build_layers(self._built_shape)

    @property
    def layers(self) -> List[Layer]:
        return list(self._layers)

    def _declared_input_shape(self):
        if self._input_layer is not None:
            return self._input_layer.batch_input_shape
        if self._layers and self._layers[0].batch_input_shape is not None:
            return self._layers[0].batch_input_shape
        return None

    def build(self, input_shape) -> None:
        self._built_shape = tuple(input_shape)
        self._build_layers(self._built_shape)
        self.built = True

    def _build_layers(self, input_shape) -> None:
        shape = input_shape
        self._output_shapes = []
        for layer in self._layers:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
            if isinstance(shape, list):
                raise ValueError(f"{layer.name}: a layer with several outputs (return_state=True) cannot be "
                                 "used in a Sequential model")
            self._output_shapes.append(shape)

    @property
    def weights(self):
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self._layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    def summary(self, print_fn=print) -> None:
        """Prints the layers, their output shapes and parameter counts, as Keras does."""
        if not self.built:
            raise ValueError("summary: the model is not built yet; give the first layer an input_shape or call "
                             "build()/fit() first")
        rows = [(f"{layer.name} ({type(layer).__name__})", str(shape), f"{layer.count_params():,}")
                for layer, shape in zip(self._layers, self._output_shapes)]
        header = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(r[k]) for r in rows + [header]) + 2 for k in range(3)]
        line = "─" * sum(widths)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        print_fn("".join(h.ljust(w) for h, w in zip(header, widths)))
        print_fn(line)
        for row in rows:
            print_fn("".join(cell.ljust(w) for cell, w in zip(row, widths)))
        print_fn(line)
        trainable = sum(w.value.size for w in self.trainable_weights)
        print_fn(f" Total params: {self.count_params():,}")
        print_fn(f" Trainable params: {trainable:,}")
        print_fn(f" Non-trainable params: {self.count_params() - trainable:,}")
        for layer in self._layers:
            lstms = recurrent_layers(layer)
            saving = sum(lstm.projection_saving() for lstm in lstms)
            if saving:
                print_fn(f" {layer.name}: proj_size={lstms[0].proj_size} of units={lstms[0].units} saves {saving:,} params")

    # -- computation -------------------------------------------------------------------------------------
    def _prepare_x(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError(f"x: expected an array with a batch dimension, got shape {x.shape}")
        if np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_:  # ids for an Embedding stay integers
            x = x.astype(self._layers[0].dtype if self._layers else np.float32, copy=False)
        if not self.built:
            self.build((None,) + x.shape[1:])
        return x

    def _forward(self, x, training: bool, stop: Optional[int] = None):
        """(output, its mask or None) of the stack, or of its layers before index ``stop``."""
        mask = None
        for layer in self._layers[:stop]:
            next_mask = layer.compute_mask(x, mask)
            x = layer.forward(x, training=training, mask=mask)
            mask = next_mask
        return x, mask

    def _backward(self, dy, first_layer_done: bool = False) -> None:
        layers = self._layers[:-1] if first_layer_done else self._layers
        for layer in reversed(layers):
            dy = layer.backward(dy)

    def __call__(self, x, training: bool = False):
        return self._forward(self._prepare_x(x), training=training)[0]

    def trace(self, x, layer) -> dict:
        """Gate traces of one LSTM layer (given as the layer, its name or its index in ``layers``) for the
        input x: {"i", "f", "g", "o", "c", "h"}, each (batch, timesteps, units). The layers before it run as
        in ``predict``; see ``LSTM.trace``."""
        index = layer if isinstance(layer, int) else next(
            (k for k, l in enumerate(self._layers) if l is layer or l.name == layer), None)
        if index is None or not 0 <= index < len(self._layers) or not hasattr(self._layers[index], "trace"):
            raise ValueError(f"layer: expected an LSTM layer of this model (object, name or index), got {layer!r}")
        x, mask = self._forward(self._prepare_x(x), training=False, stop=index)
        return self._layers[index].trace(x, mask=mask)

    def predict(self, x, batch_size: Optional[int] = None, verbose="auto", callbacks=None) -> np.ndarray:
        x = self._prepare_x(x)
        batch_size = batch_size or 32
        outputs = [self._forward(x[first:last], training=False)[0] for first, last in _batches(len(x), batch_size)]
        if not outputs:
            raise ValueError("predict: x holds no samples")
        return np.concatenate(outputs, axis=0)

    # -- training ----------------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, jit_compile="auto", **kwargs) -> None:
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to compile: {kwargs}")
        if loss is None:
            raise ValueError("compile: a loss is required")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        self._metric_identifiers = list(metrics or [])
        self._metrics = None  # resolved on the first batch, when y's shape is known
        self.compiled = True

    def _resolve_metrics(self, y_true, y_pred) -> None:
        if self._metrics is None:
            self._metrics = [metrics_module.get(m, y_true=y_true, y_pred=y_pred) for m in self._metric_identifiers]

    def _sample_weights(self, y, sample_weight, class_weight) -> Optional[np.ndarray]:
        if class_weight is None:
            return None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
        y = np.asarray(y)
        classes = y.argmax(axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(len(y), -1)[:, 0]
        weights = np.array([class_weight.get(int(c), 1.0) for c in classes.astype(np.int64)], dtype=np.float32)
        return weights if sample_weight is None else weights * np.asarray(sample_weight, dtype=np.float32)

    def _penalty(self) -> float:
        """The weight regularizers' total penalty and the layers' activity penalties of the last forward pass
        (each layer's `losses`), which Keras adds to the loss; layers backpropagate their own."""
        weights = sum(w.regularizer(w.value) for w in self.trainable_weights if w.regularizer is not None)
        return float(weights + sum(sum(getattr(layer, "losses", ())) for layer in self._layers))

    def _regularization(self) -> float:
        """Adds each regularizer's gradient into its weight's grad and returns the total penalty."""
        for variable in self.trainable_weights:
            if variable.regularizer is not None:
                variable.grad = variable.grad + variable.regularizer.gradient(variable.value)
        return self._penalty()

    @staticmethod
    def _masked_weights(sample_weight, mask, reduce: bool):
        """Keras' treatment of an output mask (e.g. padded steps of a sequence output): it multiplies the
        sample weights, and for the loss, whose reduction averages over every element, it is scaled by
        total/valid so that the mean runs over the valid elements only."""
        if mask is None:
            return sample_weight
        weights = mask.astype(np.float32)
        if reduce:
            weights *= np.float32(weights.size) / (weights.sum() + np.float32(1e-7))
        if sample_weight is None:
            return weights
        sample_weight = np.asarray(sample_weight, dtype=np.float32)
        return weights * sample_weight.reshape(sample_weight.shape + (1,) * (weights.ndim - sample_weight.ndim))

    def _loss_and_backward(self, y, y_pred, sample_weight) -> float:
        """The batch's loss; runs the backward pass of every layer, leaving the gradients in the weights."""
        last = self._layers[-1]
        activation = getattr(getattr(last, "activation", None), "name", None)
        fused = (getattr(self.loss, "logits_activation", None) is not None
                 and activation == self.loss.logits_activation and not getattr(self.loss, "from_logits", False))
        if fused:  # cross-entropy straight from the logits: stable at any logit (as Keras' _keras_logits)
            value, dlogits = self.loss.value_and_grad_from_logits(y, last.last_logits, sample_weight)
            self._backward(last.backward_from_logits(dlogits), first_layer_done=True)
        else:
            value, dy_pred = self.loss.value_and_grad(y, y_pred, sample_weight)
            self._backward(dy_pred)
        return float(value) + self._regularization()

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        x = self._prepare_x(x)
        sample_weight = self._sample_weights(y, sample_weight, class_weight)
        logs = self._train_step(x, np.asarray(y), sample_weight, self._fresh_trackers())
        return logs if return_dict else list(logs.values()) if len(logs) > 1 else logs["loss"]

    def _fresh_trackers(self):
        return {"loss": metrics_module.Mean(name="loss")}

    def _train_step(self, x, y, sample_weight, trackers) -> Dict[str, float]:
        y_pred, mask = self._forward(x, training=True)
        loss = self._loss_and_backward(y, y_pred, self._masked_weights(sample_weight, mask, reduce=True))
        self.optimizer.apply(self.trainable_weights)
        return self._update_trackers(trackers, loss, y, y_pred, self._masked_weights(sample_weight, mask, False))

    def _update_trackers(self, trackers, loss, y, y_pred, metric_weight) -> Dict[str, float]:
        self._resolve_metrics(y, y_pred)
        trackers["loss"].update_state(loss, sample_weight=len(y))
        for metric in self._metrics:
            metric.update_state(y, y_pred, sample_weight=metric_weight)
        logs = {"loss": trackers["loss"].result()}
        logs.update({metric.name: metric.result() for metric in self._metrics})
        return {k: float(v) for k, v in logs.items()}

    def _reset_metrics(self, trackers) -> None:
        trackers["loss"].reset_state()
        for metric in self._metrics or []:
            metric.reset_state()

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1,
            strategy=None):
        """Keras' fit; ``strategy`` (lstm_native.distributed.MPIStrategy) trains data-parallel over MPI ranks."""
        if not self.compiled:
            raise RuntimeError("fit: compile the model first")
        if steps_per_epoch is not None or validation_steps is not None:
            raise ValueError("steps_per_epoch/validation_steps: only whole passes over numpy arrays are supported")
        x, y = self._prepare_x(x), np.asarray(y)
        _check_samples("y", y, len(x))
        _check_samples("sample_weight", sample_weight, len(x))
        if not 0 <= validation_split < 1:
            raise ValueError(f"validation_split: expected a value in [0, 1), got {validation_split}")
        if validation_data is None and validation_split > 0:  # the last samples, before shuffling (Keras)
            split = int(math.floor(len(x) * (1 - validation_split)))
            validation_data = (x[split:], y[split:]) + (() if sample_weight is None else (sample_weight[split:],))
            x, y = x[:split], y[:split]
            sample_weight = None if sample_weight is None else sample_weight[:split]
        if len(x) == 0:
            raise ValueError("fit: x holds no training samples")
        sample_weight = self._sample_weights(y, sample_weight, class_weight)
        batch_size = batch_size or 32
        steps = math.ceil(len(x) / batch_size)
        verbose = 1 if verbose == "auto" else verbose
        if strategy is not None:  # the same loop, data-parallel: shards, one allreduce per step, rank 0's callbacks
            return strategy.fit(self, x, y, sample_weight, batch_size, epochs, verbose, callbacks, validation_data,
                                shuffle, initial_epoch, validation_batch_size, validation_freq)
        callback_list = callbacks_module.CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=epochs,
            steps=steps)
        trackers = self._fresh_trackers()
        self.stop_training = False
        callback_list.on_train_begin()
        if self._initial_epoch is not None:
            initial_epoch, self._initial_epoch = self._initial_epoch, None
        logs: Dict[str, float] = {}
        for epoch in range(initial_epoch, epochs):
            self._reset_metrics(trackers)
            callback_list.on_epoch_begin(epoch)
            order = utils.generator().permutation(len(x)) if shuffle else np.arange(len(x))
            for step, (first, last) in enumerate(_batches(len(x), batch_size)):
                callback_list.on_train_batch_begin(step)
                rows = order[first:last]
                batch_weight = None if sample_weight is None else sample_weight[rows]
                logs = self._train_step(x[rows], y[rows], batch_weight, trackers)
                callback_list.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            epoch_logs = dict(logs)
            if validation_data is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self.evaluate(*validation_data, batch_size=validation_batch_size or batch_size,
                                         verbose=0, return_dict=True)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            callback_list.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        callback_list.on_train_end(epoch_logs if epochs > initial_epoch else logs)
        return self.history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        if not self.compiled:
            raise RuntimeError("evaluate: compile the model first")
        x, y = self._prepare_x(x), np.asarray(y)
        _check_samples("y", y, len(x))
        _check_samples("sample_weight", sample_weight, len(x))
        if len(x) == 0:
            raise ValueError("evaluate: x holds no samples")
        sample_weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
        trackers = self._fresh_trackers()
        self._reset_metrics(trackers)  # as Keras: evaluation restarts the compiled metrics
        batch_size = batch_size or 32
        logs: Dict[str, float] = {}
        for first, last in _batches(len(x), batch_size):
            y_pred, mask = self._forward(x[first:last], training=False)
            batch_weight = None if sample_weight is None else sample_weight[first:last]
            loss_weight = self._masked_weights(batch_weight, mask, reduce=True)
            loss = float(self.loss(y[first:last], y_pred, sample_weight=loss_weight)) + self._penalty()
            logs = self._update_trackers(trackers, loss, y[first:last], y_pred,
                                         self._masked_weights(batch_weight, mask, reduce=False))
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    # -- configuration and files ----------------------------------------------------------------------------
    def get_config(self) -> dict:
        layers = ([self._input_layer] if self._input_layer is not None else []) + self._layers
        return {"name": self.name, "layers": [layers_module.serialize(layer) for layer in layers]}

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        """The model (built if its first layer declares the input shape) of a get_config dict."""
        return cls([layers_module.deserialize(entry) for entry in config["layers"]], name=config["name"])

    def save(self, filepath, include_optimizer: bool = True) -> None:
        """Saves the model to one safetensors file (see lstm_native.saving): config, weights and, if
        ``include_optimizer`` and compiled, the compile arguments and the optimizer's state. The write is
        atomic; a symlink is written through (the file it points to is replaced); a name with another format's
        extension (.keras, .h5, ...) and a target that is not a regular file raise ValueError."""
        saving.save_model(self, filepath, include_optimizer=include_optimizer)

    def save_weights(self, filepath) -> None:
        """Saves the weights only, for load_weights into a model of the same architecture."""
        saving.save_weights(self, filepath)

    def load_weights(self, filepath) -> None:
        """Loads the weights of a file from save_weights or save (its optimizer state, if any, is left out)."""
        saving.load_weights(self, filepath)


def load_model(filepath, compile: bool = True) -> Sequential:
    """The model that ``model.save`` wrote, compiled (with its optimizer's state) when saved so and
    ``compile`` is True. Every part of the file is checked first; a bad file raises ValueError."""
    return saving.load_model(filepath, compile=compile)
