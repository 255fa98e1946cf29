"""Quantization-aware fine-tuning without labels: the float model's weights nudged so that its int8
version follows the float model's heads. For bench/defaults.py; the quantizer does not offer it, as
it did not raise agreement there (README, "Choosing the quantizer's defaults").

A copy of the model rounds its activations to the 8-bit ranges the calibration chose (fake
quantization, with straight-through gradients) and its kernels to per-channel int8 as TFLite does.
It is trained on the calibration samples to reproduce the float model's head outputs (mean squared
error on the logits, clipped to the heads' fixed range): distillation, so no labels are needed.
The tuned weights go back into the float model, which the quantizer then calibrates as usual.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from utils.quantize.debugger import layer_name
from utils.quantize.ranges import ranged_tensors
from utils.tflite import model as tflite_model


def activation_ranges(calibrated: bytes) -> dict[str, tuple[float, float]]:
    """{Keras layer name: (min, max)} of the calibrate-only model's chosen activation ranges."""
    graph = tflite_model.unpack(calibrated).subgraphs[0]
    found = {}
    for index, bounds in ranged_tensors(graph).items():
        found.setdefault(layer_name(graph.tensors[index].name.decode()), bounds)
    return found


def _fake_quant(x, bounds: tuple[float, float]):
    low, high = min(bounds[0], 0.0), max(bounds[1], 0.0)
    return tf.quantization.fake_quant_with_min_max_args(x, min=low, max=max(high, low + 1e-6), num_bits=8)


class FakeQuantConv(keras.layers.Layer):
    """A Conv2D whose kernel is rounded to per-channel int8 and whose output to its 8-bit range."""

    def __init__(self, conv: keras.layers.Conv2D, bounds: tuple[float, float] | None, **kwargs):
        super().__init__(name=conv.name + "_fq", **kwargs)
        self.conv, self.bounds = conv, bounds

    def call(self, x):
        kernel = self.conv.kernel
        limit = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(kernel), axis=[0, 1, 2]), 1e-8))
        kernel = tf.quantization.fake_quant_with_min_max_vars_per_channel(kernel, -limit, limit, num_bits=8,
                                                                          narrow_range=True)
        y = tf.nn.conv2d(x, kernel, self.conv.strides, self.conv.padding.upper(), dilations=self.conv.dilation_rate)
        y = y + self.conv.bias
        return _fake_quant(y, self.bounds) if self.bounds else y


class FakeQuantOutput(keras.layers.Layer):
    """Any other layer, its output rounded to its 8-bit range."""

    def __init__(self, layer: keras.layers.Layer, bounds: tuple[float, float], **kwargs):
        super().__init__(name=layer.name + "_fq", **kwargs)
        self.layer, self.bounds = layer, bounds

    def call(self, *args):
        return _fake_quant(self.layer(*args), self.bounds)


def fake_quantized(model: keras.Model, ranges: dict[str, tuple[float, float]]) -> keras.Model:
    """A clone of ``model`` that computes as its int8 version would (approximately), sharing its weights."""
    def wrap(layer):
        if isinstance(layer, keras.layers.Conv2D) and layer.groups == 1:
            return FakeQuantConv(layer, ranges.get(layer.name))
        if isinstance(layer, keras.layers.InputLayer) or layer.name not in ranges:
            return layer
        return FakeQuantOutput(layer, ranges[layer.name])
    return keras.models.clone_model(model, clone_function=wrap)


def tune(model: keras.Model, calibrated: bytes, dataset: Callable[[], Iterator[list[np.ndarray]]],
         head_range: tuple[float, float] | None, epochs: int = 2, batch: int = 4, learning_rate: float = 1e-5,
         progress: Callable[[list], Iterator] = iter) -> list[float]:
    """Fine-tune ``model``'s weights in place; returns the loss of each epoch."""
    samples = np.concatenate([tensor for tensor, *_ in dataset()])
    targets = [np.asarray(t) for t in _as_list(model(samples, training=False))]
    if head_range:
        targets = [np.clip(t, *head_range) for t in targets]
    student = fake_quantized(model, activation_ranges(calibrated))
    optimizer = keras.optimizers.Adam(learning_rate)
    weights = [w for w in student.trainable_weights]
    losses = []
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        order = rng.permutation(len(samples))
        total = 0.0
        for start in progress(range(0, len(samples), batch)):
            pick = order[start:start + batch]
            with tf.GradientTape() as tape:
                outputs = _as_list(student(samples[pick], training=True))
                if head_range:
                    outputs = [tf.clip_by_value(o, *head_range) for o in outputs]
                loss = tf.add_n([tf.reduce_mean(tf.square(o - t[pick])) for o, t in zip(outputs, targets)])
            optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
            total += float(loss) * len(pick)
        losses.append(total / len(samples))
    return losses


def _as_list(outputs) -> list:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def tune_file(h5: Path, tuned: Path, images: list[Path], method, num_samples: int = 100,
              epochs: int = 2) -> list[float]:
    """Write to ``tuned`` (with its ``_yolo.json``) the model ``h5`` fine-tuned on the calibration
    samples of ``images`` against the ranges ``method`` chooses there; the loss of each epoch."""
    from utils.quantize import calibration
    from utils.quantize import quantizer as quantize
    from utils.quantize.pipeline import DEFAULT_HEAD_RANGE
    from utils.runtime.keras_engine import load_keras_model
    from utils.yolo.meta import sidecar_paths

    model = load_keras_model(h5)
    meta = quantize.model_meta(model, h5)
    samples = calibration.Calibration(calibration.plan(images, num_samples))
    data = samples.dataset(meta.input_size, meta.resize, lambda items: items)
    recorded = quantize.record_ranges(model, data)
    losses = tune(model, quantize.with_ranges(recorded, quantize.measured_ranges(recorded, data, method)), data,
                  DEFAULT_HEAD_RANGE, epochs=epochs)
    model.save(tuned)
    shutil.copy(sidecar_paths(h5)[0], sidecar_paths(tuned)[0])
    return losses
