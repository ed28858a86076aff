"""Sequential: Keras 3's model API (compile, fit, evaluate, predict, summary) over layers with explicit
backward passes. Every LSTM computation runs in the native core."""

from __future__ import annotations

import math
import warnings
import os
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from . import cuda
from . import data
from ._arguments import boolean, choice, integer, number
from . import layers as layers_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import saving, streaming, training, utils
from ._call_guard import inference_call, training_call
from .strategy import SINGLE_PROCESS, Batch, Strategy
from .layers.base import Layer
from .layers.bidirectional import recurrent_layers
from .layers.core import InputLayer
from .layers.dense import Dense
from .variables import WeightContainer
from ._serialization import Identifier

if TYPE_CHECKING:
    from .callbacks import Callback, History

# A metric as compile takes it: a name, a saved config, a Metric or a function fn(y_true, y_pred).
MetricIdentifier = Union[Identifier, metrics_module.Metric]


def optional_count(name: str, value: Optional[int]) -> Optional[int]:
    """A batch size or a number of steps: None, or an integer >= 1."""
    return None if value is None else integer(name, value, at_least=1)


def verbosity(value: Union[str, int]) -> int:
    """Keras' ``verbose``: "auto" (1), 0 (silent), 1 (progress bar) or 2 (one line per epoch)."""
    chosen = choice("verbose", value, ("auto", 0, 1, 2))
    return 1 if chosen == "auto" else chosen


def _single_loss_weight(loss_weights) -> float:
    """The loss weight of compile's ``loss_weights`` for a model of one output: Keras takes a number, or a list,
    tuple or dict (its key naming the output) of one."""
    if loss_weights is None:
        return 1.0
    weight = loss_weights
    if isinstance(loss_weights, (list, tuple, dict)):
        if len(loss_weights) != 1:
            raise ValueError(f"loss_weights: this model has one output, so it takes one weight; got {loss_weights!r}")
        (weight,) = loss_weights.values() if isinstance(loss_weights, dict) else loss_weights
    if isinstance(weight, (bool, np.bool_)) or not isinstance(weight, (int, float, np.integer, np.floating)) \
            or not math.isfinite(weight):
        raise ValueError(f"loss_weights: expected a finite number (or a list or dict of one), got {loss_weights!r}")
    return float(weight)


def _check_keras_default(name: str, value, accepted: tuple, reason: str) -> None:
    """Refuses a value other than Keras' defaults for an argument that has no meaning in this library."""
    if not any(value is default or (isinstance(value, (bool, np.bool_, str)) and value == default)
               for default in accepted):
        raise ValueError(f"{name}={value!r} is not supported ({reason}); leave it at "
                         f"{' or '.join(map(repr, accepted))}")


def _metric_list(name: str, identifiers) -> list:
    if identifiers is None:
        return []
    if not isinstance(identifiers, (list, tuple)):
        raise ValueError(f"{name}: expected a list of metrics, got {type(identifiers).__name__} {identifiers!r}")
    return list(identifiers)


def _strategy(strategy) -> Strategy:
    """fit's ``strategy``: None (one process) or a lstm_native.strategy.Strategy."""
    if strategy is None:
        return SINGLE_PROCESS
    if not isinstance(strategy, Strategy):
        raise TypeError(f"strategy: expected a lstm_native.strategy.Strategy (e.g. distributed.MPIStrategy), got "
                        f"{type(strategy).__name__}")
    return strategy


class Sequential(WeightContainer):
    """A linear stack of layers, with Keras 3's training API.

    ``device`` ("cpu" or "cuda"; ValueError where CUDA is not available) sets the device of every LSTM in the
    model, those added later and those inside Bidirectional included; None (default) leaves each layer's own.
    Not part of get_config.
    """

    def __init__(self, layers: Optional[Iterable[Layer]] = None, name: Optional[str] = None,
                 device: Optional[str] = None):
        self.name = name or "sequential"
        self.device = None if device is None else cuda.check_device(device, unavailable=ValueError)
        self._layers: List[Layer] = []
        self._input_layer: Optional[InputLayer] = None
        self.built = False
        self.compiled = False
        self.stop_training = False
        self.history: Optional[History] = None
        self.optimizer: Optional[optimizers_module.Optimizer] = None  # set by compile, as the loss
        self.loss: Optional[losses_module.Loss] = None
        self._initial_epoch: Optional[int] = None  # set by BackupAndRestore to resume an interrupted fit
        for layer in layers or []:
            self.add(layer)

    # -- structure ---------------------------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        """Appends a layer (an ``InputLayer`` only first); TypeError for anything that is not a layer."""
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
        try:
            shape = self._declared_input_shape()
            if shape is not None and not self.built:
                self.build(shape)
            elif self.built and layer is not self._input_layer:  # only the new layer: adding stays linear
                self._build_next(layer)
        except Exception:  # a layer that cannot follow the others is not added
            if layer is self._input_layer:
                self._input_layer = None
            else:
                self._layers.pop()
            raise

    @property
    def layers(self) -> List[Layer]:
        """The model's layers, in order (without the InputLayer, as in Keras)."""
        return list(self._layers)

    def _declared_input_shape(self):
        if self._input_layer is not None:
            return self._input_layer.batch_input_shape
        if self._layers and self._layers[0].batch_input_shape is not None:
            return self._layers[0].batch_input_shape
        return None

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        """Builds every layer, in order, for inputs of ``input_shape`` (batch dimension first)."""
        self._built_shape = tuple(input_shape)
        self._output_shapes: List[tuple] = []
        for layer in self._layers:
            self._build_next(layer)
        self.built = True

    def _build_next(self, layer: Layer) -> None:
        """Builds ``layer`` (unless built) on the output of the layers before it, whose shapes are known."""
        shape = self._output_shapes[-1] if self._output_shapes else self._built_shape
        if not layer.built:
            layer.build(shape)
        shape = layer.compute_output_shape(shape)
        if isinstance(shape, list):
            raise ValueError(f"{layer.name}: a layer with several outputs (return_state=True, or Bidirectional "
                             "with merge_mode=None) cannot be used in a Sequential model")
        self._output_shapes.append(shape)

    @property
    def weights(self):
        """Every layer's weights, layer by layer."""
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self):
        """Every layer's trainable weights, layer by layer."""
        return [w for layer in self._layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        """Every layer's non-trainable weights, layer by layer."""
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    def summary(self, print_fn: Callable[[str], Any] = print) -> None:
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
            raise ValueError(f"x: expected an array with a batch dimension, got shape {x.shape} (a "
                             f"{type(x.item()).__name__})")
        if np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_:  # ids for an Embedding stay integers
            x = x.astype(self._layers[0].dtype if self._layers else np.float32, copy=False)
        if not self.built:
            self.build((None,) + x.shape[1:])
        self._check_input_shape(x.shape)
        return x

    def _check_input_shape(self, shape) -> None:
        """Keras' check of an input against the declared input shape: another rank or feature count is an
        error, another number of timesteps (which an LSTM handles) a warning, since it is often a mistake."""
        declared = self._declared_input_shape()
        if declared is None:
            return
        given = (None,) + tuple(shape[1:])
        if len(given) != len(declared):
            raise ValueError(f"x: the model expects inputs of shape {tuple(declared)}, got {tuple(shape)}")
        if len(declared) > 2 and declared[-1] is not None and given[-1] != declared[-1]:
            raise ValueError(f"x: expected features {declared[-1]} (the model's inputs have shape {tuple(declared)}), "
                             f"got {given[-1]} (shape {tuple(shape)})")
        if any(d is not None and g != d for g, d in zip(given[1:], declared[1:])):  # the batch size may differ
            warnings.warn(f"Model {self.name!r} was built for inputs of shape {tuple(declared)}, but is called on "
                          f"inputs of shape {given}", UserWarning, stacklevel=4)

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

    @inference_call
    def __call__(self, x, training: bool = False):
        return self._forward(self._prepare_x(x), training=training)[0]

    @inference_call
    def trace(self, x: ArrayLike, layer: Union[Layer, str, int]) -> dict:
        """Gate traces of one LSTM layer (given as the layer, its name or its index in ``layers``) for the
        input x: {"i", "f", "g", "o", "c", "h"}, each (batch, timesteps, units). The layers before it run as
        in ``predict``; see ``LSTM.trace``."""
        index = layer if isinstance(layer, int) else next(
            (k for k, l in enumerate(self._layers) if l is layer or l.name == layer), None)
        if index is None or not 0 <= index < len(self._layers) or not hasattr(self._layers[index], "trace"):
            raise ValueError(f"layer: expected an LSTM layer of this model (object, name or index), got {layer!r}")
        x, mask = self._forward(self._prepare_x(x), training=False, stop=index)
        return self._layers[index].trace(x, mask=mask)  # type: ignore[attr-defined]  # hasattr checked above

    @inference_call
    def predict(self, x: data.Data, batch_size: Optional[int] = None, verbose: Union[str, int] = "auto",
                steps: Optional[int] = None, callbacks: Optional[Iterable[Callback]] = None) -> np.ndarray:
        """The model's outputs for x: an array (in batches of ``batch_size``, default 32) or batches from a
        generator, dataset or sequence (see :mod:`lstm_native.data`; ``steps`` caps their number). As in Keras,
        ``verbose`` shows a progress bar (1, "auto"), one line at the end (2) or nothing (0), and ``callbacks``
        get their ``on_predict_*`` hooks, each batch's end with the logs ``{"outputs": the batch's outputs}``."""
        verbose = verbosity(verbose)
        batches = self._batches("x", x, None, None, batch_size, steps, shuffle=False)
        return training.predict(self, batches, training.inference_callbacks(self, callbacks, verbose, batches.steps))

    @inference_call
    def stream(self, batch_size: int = 1) -> streaming.Stream:
        """A streaming session of ``batch_size`` independent streams: the model run one step (or chunk of
        steps) at a time, every LSTM's state kept between calls, equal to ``predict`` on the sequence so far.
        It takes the current weights. See :mod:`lstm_native.streaming`."""
        return streaming.Stream(self, batch_size)

    # -- training ----------------------------------------------------------------------------------------
    def compile(self, optimizer: Union[str, Dict[str, Any], optimizers_module.Optimizer] = "rmsprop",
                loss: Union[str, Dict[str, Any], losses_module.Loss, None] = None,
                metrics: Optional[Sequence[MetricIdentifier]] = None,
                loss_weights: Union[float, Sequence[float], Mapping[str, float], None] = None,
                weighted_metrics: Optional[Sequence[MetricIdentifier]] = None, run_eagerly: bool = False,
                jit_compile: Union[str, bool] = "auto", **kwargs: Any) -> None:
        """Keras' compile. As in Keras, ``metrics`` are computed without sample or class weights and
        ``weighted_metrics`` with them (a metric in both lists logs as "name" and "weighted_name"); both
        honour an output mask. ``loss_weights`` (a number, or a list or dict of one: this model has one
        output) scales the loss and its gradient, not the regularization penalties. ``run_eagerly`` and
        ``jit_compile`` take Keras' defaults only: every step runs in the native core, with no graph to trace
        or compile."""
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to compile: {kwargs}")
        _check_keras_default("run_eagerly", run_eagerly, (False,),
                             "lstm_native traces no graph that could be run eagerly instead")
        _check_keras_default("jit_compile", jit_compile, ("auto", False),
                             "lstm_native has no XLA: the cell is compiled C++ already")
        if loss is None:
            raise ValueError("compile: a loss is required")
        if optimizer is None:  # fit would have nothing to apply the gradients with
            raise ValueError("compile: an optimizer is required (a name such as 'adam', or an Optimizer)")
        self._loss_weight = _single_loss_weight(loss_weights)
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        self.loss_weights = loss_weights
        self._metric_identifiers = _metric_list("metrics", metrics)
        self._weighted_metric_identifiers = _metric_list("weighted_metrics", weighted_metrics)
        self._metrics: Optional[List[Tuple[str, metrics_module.Metric, bool]]] = None  # resolved on the first batch, when y's shape is known: [(log name, metric, weighted)]
        self.compiled = True

    def _resolve_metrics(self, y_true, y_pred) -> List[Tuple[str, metrics_module.Metric, bool]]:
        """Resolves the compiled metrics (once), named in the logs as Keras names them: a repeated name gets "_1",
        "_2", ...; a weighted metric whose name is taken gets "weighted_" in front. Returns them."""
        if self._metrics is not None:
            return self._metrics
        self._metrics = resolved = []
        taken: Dict[str, int] = {}
        for identifiers, weighted in ((self._metric_identifiers, False), (self._weighted_metric_identifiers, True)):
            for identifier in identifiers:
                metric = metrics_module.get(identifier, y_true=y_true, y_pred=y_pred)
                name = metric.name
                if name in taken and weighted:
                    name = f"weighted_{name}"
                if name in taken:
                    taken[name] += 1
                    name = f"{name}_{taken[name] - 1}"
                else:
                    taken[name] = 1
                resolved.append((name, metric, weighted))
        return resolved

    def _sample_weights(self, y, sample_weight, class_weight) -> Optional[np.ndarray]:
        if class_weight is None:
            return None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
        y = np.asarray(y)
        classes = y.argmax(axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(len(y), -1)[:, 0]
        if np.issubdtype(classes.dtype, np.floating):  # Keras rounds a probability (0.7: class 1)
            classes = np.round(classes)
        classes = utils.integer_ids(classes, "y (the classes that class_weight weighs)")
        weights = np.array([class_weight.get(int(c), 1.0) for c in classes], dtype=np.float32)
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
        """The batch's loss (times the loss weight, plus the penalties); runs the backward pass of every layer,
        leaving the gradients in the weights."""
        last, loss = self._layers[-1], self._compiled_loss()
        activation = getattr(getattr(last, "activation", None), "name", None)
        fused = (loss.logits_activation is not None
                 and activation == loss.logits_activation and not getattr(loss, "from_logits", False))
        # Only a Dense has an activation a loss can take the logits of (an LSTM's is tanh).
        if fused and isinstance(last, Dense):  # cross-entropy straight from the logits: stable at any logit
            # A loss with a logits_activation has value_and_grad_from_logits (lstm_native.losses' contract).
            value, dlogits = loss.value_and_grad_from_logits(  # type: ignore[attr-defined]
                y, last.last_logits, sample_weight)
            self._backward(last.backward_from_logits(self._scaled_by_loss_weight(dlogits)), first_layer_done=True)
        else:
            value, dy_pred = loss.value_and_grad(y, y_pred, sample_weight)
            self._backward(self._scaled_by_loss_weight(dy_pred))
        return self._loss_weight * float(value) + self._regularization()

    def _compiled_loss(self) -> losses_module.Loss:
        if self.loss is None:
            raise RuntimeError(f"{self.name}: compile the model before training or evaluating it")
        return self.loss

    def _scaled_by_loss_weight(self, gradient):
        return gradient if self._loss_weight == 1 else gradient * gradient.dtype.type(self._loss_weight)

    def _evaluation_loss(self, y, y_pred, sample_weight, mask) -> float:
        """The loss of a batch at inference: the weighted loss plus the penalties, as Keras reports it."""
        loss = self._compiled_loss()(y, y_pred, sample_weight=self._masked_weights(sample_weight, mask, reduce=True))
        return self._loss_weight * float(loss) + self._penalty()

    @training_call
    def train_on_batch(self, x: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None,
                       class_weight: Optional[Dict[int, float]] = None,
                       return_dict: bool = False) -> Union[float, List[float], Dict[str, float]]:
        """One training step on one batch, as Keras': the loss, a list of the loss and metrics, or their dict
        with ``return_dict=True``."""
        x = self._prepare_x(x)
        sample_weight = self._sample_weights(y, sample_weight, class_weight)
        trackers = self._fresh_trackers()
        self._reset_metrics(trackers)  # as Keras: the logs are this batch's
        logs = training.train_step(self, SINGLE_PROCESS, Batch(x, np.asarray(y), sample_weight, len(x)), trackers)
        return logs if return_dict else list(logs.values()) if len(logs) > 1 else logs["loss"]

    def _fresh_trackers(self):
        return {"loss": metrics_module.Mean(name="loss")}

    def _update_trackers(self, trackers, loss, y, y_pred, sample_weight, mask) -> None:
        """Adds a batch to the loss tracker and the metrics (the weighted ones by ``sample_weight``, all of
        them by the output mask, as Keras does)."""
        resolved = self._resolve_metrics(y, y_pred)
        trackers["loss"].update_state(loss, sample_weight=len(y))
        unweighted = self._masked_weights(None, mask, reduce=False)
        weighted = self._masked_weights(sample_weight, mask, reduce=False)
        for _, metric, is_weighted in resolved:
            metric.update_state(y, y_pred, sample_weight=weighted if is_weighted else unweighted)

    def _logs(self, loss, metric_results) -> Dict[str, float]:
        """{"loss": loss, then each compiled metric's log name: its result}."""
        logs = {"loss": float(loss)}
        logs.update({name: float(result) for (name, _, _), result in zip(self._metrics or [], metric_results)})
        return logs

    def _compiled_metrics(self) -> list:
        """The resolved metrics (none before the first batch), in the order of the logs."""
        return [metric for _, metric, _ in self._metrics or []]

    def _reset_metrics(self, trackers) -> None:
        trackers["loss"].reset_state()
        for metric in self._compiled_metrics():
            metric.reset_state()

    def _batches(self, name: str, x, y, sample_weight, batch_size, steps, shuffle: bool, needs_y: bool = False,
                 steps_name: str = "steps", batch_size_name: str = "batch_size"):
        """x (and y, sample_weight) as batches: ArrayBatches of arrays, SourceBatches of a generator, dataset or
        sequence. Every argument is checked here, before anything runs."""
        batch_size = optional_count(batch_size_name, batch_size)
        steps = optional_count(steps_name, steps)
        if data.is_batch_source(x):
            for argument, value in ((batch_size_name, batch_size), ("y", y), ("sample_weight", sample_weight)):
                if value is not None:
                    raise ValueError(f"{argument}: not used when {name} yields batches (a generator, dataset or "
                                     f"sequence): each batch comes as {name} yields it, as (x, y, sample_weight)")
            return data.SourceBatches(x, steps, name, self._prepare_x)
        if steps is not None:
            raise ValueError(f"{steps_name}: counts the batches of a generator, dataset or sequence; an array is "
                             f"one pass of {batch_size_name} samples")
        x = self._prepare_x(x)
        if needs_y:
            if y is None:
                raise ValueError(f"y: {name} needs targets: pass y, or batches of (x, y)")
            y = np.asarray(y)
        data.check_samples("y", y, len(x))
        data.check_samples("sample_weight", sample_weight, len(x))
        if len(x) == 0:
            raise ValueError(f"{name} holds no samples")
        return data.ArrayBatches(name, x, y, data.finite_weights("sample_weight", sample_weight), batch_size or 32,
                                 shuffle)

    def _validation_batches(self, validation_data, validation_split, x, y, sample_weight, batch_size,
                            validation_batch_size, validation_steps):
        """(training x, y, sample_weight, validation batches or None): validation_split takes the last samples,
        before shuffling (Keras)."""
        if validation_data is None and validation_split > 0:
            if data.is_batch_source(x):
                raise ValueError("validation_split: not available when x yields batches; pass validation_data")
            x, y = self._prepare_x(x), None if y is None else np.asarray(y)
            data.check_samples("y", y, len(x))
            data.check_samples("sample_weight", sample_weight, len(x))
            split = int(math.floor(len(x) * (1 - validation_split)))
            if split == len(x):
                raise ValueError(f"validation_split={validation_split} leaves no validation sample of {len(x)}")
            validation_data = (x[split:], None if y is None else y[split:]) + (
                () if sample_weight is None else (sample_weight[split:],))
            x, y = x[:split], None if y is None else y[:split]
            sample_weight = None if sample_weight is None else sample_weight[:split]
        if validation_data is None:
            return x, y, sample_weight, None
        name = "validation_data"
        names: Dict[str, Any] = dict(steps_name="validation_steps", batch_size_name="validation_batch_size")
        if data.is_batch_source(validation_data):
            return x, y, sample_weight, self._batches(name, validation_data, None, None, validation_batch_size,
                                                      validation_steps, shuffle=False, **names)
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(f"{name}: expected (x, y), (x, y, sample_weight) or a generator, dataset or sequence, "
                             f"got {type(validation_data).__name__}")
        val_batch_size = batch_size if validation_batch_size is None else validation_batch_size
        return x, y, sample_weight, self._batches(name, validation_data[0], validation_data[1],
                                                  (tuple(validation_data) + (None,))[2], val_batch_size,
                                                  validation_steps, shuffle=False, needs_y=True, **names)

    @training_call
    def fit(self, x: Optional[data.Data] = None, y: Optional[ArrayLike] = None, batch_size: Optional[int] = None,
            epochs: int = 1, verbose: Union[str, int] = "auto", callbacks: Optional[Iterable[Callback]] = None,
            validation_split: float = 0.0, validation_data: Optional[data.Data] = None, shuffle: bool = True,
            class_weight: Optional[Dict[int, float]] = None, sample_weight: Optional[ArrayLike] = None,
            initial_epoch: int = 0, steps_per_epoch: Optional[int] = None, validation_steps: Optional[int] = None,
            validation_batch_size: Optional[int] = None, validation_freq: int = 1,
            strategy: Optional[Strategy] = None) -> History:
        """Keras' fit over arrays, or over batches from a generator, dataset or sequence (see
        :mod:`lstm_native.data`; ``steps_per_epoch`` then caps an epoch). Every argument is checked before the
        first step. ``strategy`` (lstm_native.distributed.MPIStrategy) trains data-parallel over MPI ranks."""
        if not self.compiled:
            raise RuntimeError("fit: compile the model first")
        strategy = _strategy(strategy)
        batch_size = optional_count("batch_size", batch_size)
        epochs = integer("epochs", epochs, at_least=0)
        initial_epoch = integer("initial_epoch", initial_epoch, at_least=0)
        validation_freq = integer("validation_freq", validation_freq, at_least=1)
        validation_batch_size = optional_count("validation_batch_size", validation_batch_size)
        validation_split = number("validation_split", validation_split, at_least=0, below=1)
        verbose = verbosity(verbose)
        shuffle = boolean("shuffle", shuffle)
        self._check_class_weight(class_weight)
        x, y, sample_weight, validation = self._validation_batches(
            validation_data, validation_split, x, y, sample_weight, batch_size, validation_batch_size,
            validation_steps)
        batches = self._batches("x", x, y, sample_weight, batch_size, steps_per_epoch, shuffle, needs_y=True,
                                steps_name="steps_per_epoch")
        arguments = {"batch_size": batches.batch_size if isinstance(batches, data.ArrayBatches) else None,
                     "epochs": epochs, "initial_epoch": initial_epoch, "shuffle": shuffle,
                     "validation_batch_size": validation_batch_size, "validation_freq": validation_freq,
                     "class_weight": class_weight}
        return training.fit(self, batches, validation, callbacks, strategy, verbose, arguments)

    @staticmethod
    def _check_class_weight(class_weight) -> None:
        if class_weight is None:
            return
        if not isinstance(class_weight, dict):
            raise TypeError(f"class_weight: expected a dict {{class index: weight}}, got {type(class_weight).__name__}")
        for key, weight in class_weight.items():
            if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
                raise ValueError(f"class_weight: keys must be class indices (integers >= 0), got {key!r}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number)) or not (
                    math.isfinite(weight) and weight >= 0):
                raise ValueError(f"class_weight[{key}]: expected a finite weight >= 0, got {weight!r}")

    @inference_call
    def evaluate(self, x: Optional[data.Data] = None, y: Optional[ArrayLike] = None, batch_size: Optional[int] = None,
                 verbose: Union[str, int] = "auto", sample_weight: Optional[ArrayLike] = None,
                 steps: Optional[int] = None, callbacks: Optional[Iterable[Callback]] = None,
                 return_dict: bool = False) -> Union[float, List[float], Dict[str, float]]:
        """The loss and metrics over x and y (arrays, in batches of ``batch_size``), or over the batches of a
        generator, dataset or sequence (``steps`` caps their number). As in Keras, ``verbose`` shows a progress
        bar (1, "auto"), one line at the end (2) or nothing (0), and ``callbacks`` get their ``on_test_*``
        hooks with the logs so far."""
        if not self.compiled:
            raise RuntimeError("evaluate: compile the model first")
        verbose = verbosity(verbose)
        batches = self._batches("x", x, y, sample_weight, batch_size, steps, shuffle=False, needs_y=True)
        logs = training.evaluate(self, batches,
                                 callback_list=training.inference_callbacks(self, callbacks, verbose, batches.steps))
        if not logs:
            raise ValueError("evaluate: x yielded no batches")
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    # -- configuration and files ----------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The model's name and every layer's config (with the InputLayer's), as ``save`` stores it."""
        layers = ([self._input_layer] if self._input_layer is not None else []) + self._layers
        return {"name": self.name, "layers": [layers_module.serialize(layer) for layer in layers]}

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        """The model (built if its first layer declares the input shape) of a get_config dict."""
        return cls([layers_module.deserialize(entry) for entry in config["layers"]], name=config["name"])

    def save(self, filepath: Union[str, os.PathLike], include_optimizer: bool = True) -> None:
        """Saves the model to one safetensors file (see lstm_native.saving): config, weights and, if
        ``include_optimizer`` and compiled, the compile arguments and the optimizer's state. The write is
        atomic; a symlink is written through (the file it points to is replaced); a name with another format's
        extension (.keras, .h5, ...) and a target that is not a regular file raise ValueError."""
        saving.save_model(self, filepath, include_optimizer=include_optimizer)

    def save_weights(self, filepath: Union[str, os.PathLike]) -> None:
        """Saves the weights only, for load_weights into a model of the same architecture."""
        saving.save_weights(self, filepath)

    def load_weights(self, filepath: Union[str, os.PathLike], allow_nonfinite: bool = False) -> None:
        """Loads the weights of a file from save_weights or save (its optimizer state, if any, is left out).
        NaN or infinite weights are refused (ValueError) unless ``allow_nonfinite``."""
        saving.load_weights(self, filepath, allow_nonfinite=allow_nonfinite)


def load_model(filepath: Union[str, os.PathLike], compile: bool = True, allow_nonfinite: bool = False) -> Sequential:
    """The model that ``model.save`` wrote, compiled (with its optimizer's state) when saved so and
    ``compile`` is True. Every part of the file is checked first; a bad file raises ValueError, and so do
    NaN or infinite weights and optimizer slots unless ``allow_nonfinite`` (a non-finite learning rate is
    refused always). What a file may hold, and its limits: lstm_native.file_rules."""
    return saving.read_model(filepath, Sequential.from_config, compile=compile, allow_nonfinite=allow_nonfinite)
