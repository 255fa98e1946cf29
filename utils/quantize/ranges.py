"""Activation ranges for int8: the calibration's min/max, a percentile of each tensor's histogram,
or the range with the least quantization error.

The converter records every activation tensor's min and max over the calibration set in a
calibrate-only model. ``measure`` runs that model again on the same samples, builds a histogram of
each tensor over its recorded range, and chooses a narrower range from it; ``apply`` writes the
choice back as the tensor's min/max. TFLite's quantizer then derives every scale from those
(bias scales, requantization, and ops whose input and output must share a scale), so the result
is as consistent as the min/max model.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from utils.tflite import model as tflite_model

BINS = 2048
SAMPLED_VALUES = 1 << 18  # a larger tensor adds every k-th value per image: a few million values per tensor in all
DEFAULT_PERCENTILE = 99.99
METHODS = ("minmax", "percentile", "mse")
MIN_PERCENTILE = 90.0
# bench/defaults.py cross-validates over four image sources: no method stays within 0.005 mAP@0.5 of
# the best everywhere (another 10 calibration crops move a cell by up to 0.05); mse has the smallest
# worst case and the best mean at 0.5 (README, "Choosing the quantizer's defaults").
DEFAULT_METHOD = "mse"


@dataclass(frozen=True)
class Method:
    name: str = "minmax"
    percentile: float | None = None

    def __str__(self) -> str:
        return f"percentile:{self.percentile:g}" if self.name == "percentile" else self.name

    def describe(self) -> str:
        if self.name == "percentile":
            return f"each tensor's {self.percentile:g}th percentile, both tails"
        return {"minmax": "the calibration set's min and max", "mse": "the least quantization error per tensor"}[self.name]


def parse_method(text: str) -> Method:
    """``minmax``, ``percentile[:P]`` (90 <= P <= 100) or ``mse``; ValueError with the reason otherwise."""
    name, _, value = text.strip().lower().partition(":")
    if name not in METHODS:
        raise ValueError(f"'{text}' is not one of minmax, percentile[:P], mse")
    if name != "percentile":
        if value:
            raise ValueError(f"'{text}': only percentile takes a value (percentile:P)")
        return Method(name)
    try:
        percentile = float(value) if value else DEFAULT_PERCENTILE
    except ValueError:
        raise ValueError(f"'{text}': the percentile must be a number, as in percentile:99.99") from None
    if not MIN_PERCENTILE <= percentile <= 100:
        raise ValueError(f"'{text}': the percentile must be between {MIN_PERCENTILE:g} and 100 (below, more than a "
                         "tenth of each tensor's values are clipped: percentile:50.001 finds nothing)")
    return Method(name, percentile)


def method_argument(text: str) -> Method:
    """``parse_method`` as an argparse ``type``: a bad value is one usage line and exit status 2."""
    try:
        return parse_method(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


AUTO = "auto"  # keras_to_tflite_quant.py only: the method chosen on held-out images (utils/quantize/auto.py)


def calibration_argument(text: str) -> Method | str:
    """``method_argument``, or ``auto``."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        return parse_method(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).replace(", mse", ", mse, auto")) from None


CALIBRATION_HELP = ("activation ranges: minmax (the calibration set's min and max), percentile[:P] (each tensor's "
                    f"Pth percentile, 90 <= P <= 100; default {DEFAULT_PERCENTILE:g}) or mse (the range with the "
                    "least quantization error)")


def ranged_tensors(graph) -> dict[int, tuple[float, float]]:
    """{tensor index: (min, max)} of the activations the calibration recorded, the inputs excepted
    (their range is the image's)."""
    found = {}
    for index, tensor in enumerate(graph.tensors):
        q = tensor.quantization
        if q is not None and q.min is not None and q.max is not None and len(q.min) == 1 and index not in graph.inputs:
            found[index] = (float(q.min[0]), float(q.max[0]))
    return found


class Histogram:
    """Counts of one tensor's values in BINS equal bins over its calibrated [low, high]."""

    def __init__(self, low: float, high: float):
        self.low, self.high = min(low, 0.0), max(high, 0.0)
        self.counts = np.zeros(BINS, np.int64)

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.low, self.high, BINS + 1)

    def add(self, values: np.ndarray) -> None:
        width = self.high - self.low
        if width <= 0:
            return
        values = values.ravel()
        values = values[::max(1, values.size // SAMPLED_VALUES)]
        index = ((values - self.low) * (BINS / width)).astype(np.int64)
        self.counts += np.bincount(np.clip(index, 0, BINS - 1), minlength=BINS)


def percentile_range(histogram: Histogram, percentile: float) -> tuple[float, float]:
    """The (100 - P)th and Pth percentiles, widened to include zero."""
    cumulative = np.cumsum(histogram.counts)
    total, edges = cumulative[-1], histogram.edges
    if total == 0 or percentile >= 100:
        return histogram.low, histogram.high
    tail = total * (100 - percentile) / 100
    low = edges[np.searchsorted(cumulative, tail, side="right")]
    high = edges[np.searchsorted(cumulative, total - tail, side="left") + 1]
    return min(float(low), 0.0), max(float(high), 0.0)


def mse_range(histogram: Histogram, stride: int = 8) -> tuple[float, float]:
    """The [low, high] (bin edges, zero included) with the least expected squared error of 8-bit
    quantization: clipping for the values outside, step²/12 of rounding for those inside."""
    counts, edges = histogram.counts.astype(np.float64), histogram.edges
    if counts.sum() == 0:
        return histogram.low, histogram.high
    centres = (edges[:-1] + edges[1:]) / 2
    zero = int(np.clip(np.searchsorted(edges, 0.0), 0, BINS))
    lows = np.unique(np.r_[np.arange(0, zero + 1, stride), zero])     # candidate edges at or below zero
    highs = np.unique(np.r_[np.arange(zero, BINS + 1, stride), BINS])  # and at or above it
    n, s1, s2 = (np.r_[0.0, np.cumsum(v)] for v in (counts, counts * centres, counts * centres ** 2))
    # Clipping error below edge a: sum over bins left of a of n (c - a)^2; above edge b likewise.
    a, b = edges[lows], edges[highs]
    below = s2[lows] - 2 * a * s1[lows] + a ** 2 * n[lows]
    above = (s2[-1] - s2[highs]) - 2 * b * (s1[-1] - s1[highs]) + b ** 2 * (n[-1] - n[highs])
    inside = n[highs][None, :] - n[lows][:, None]
    step = (b[None, :] - a[:, None]) / 255
    error = below[:, None] + above[None, :] + inside * step ** 2 / 12
    i, k = np.unravel_index(np.argmin(error), error.shape)
    return float(a[i]), float(b[k])


def histograms(calibrated: bytes, dataset: Callable[[], Iterator[list[np.ndarray]]],
               interpreter_for: Callable[..., object]) -> dict[int, Histogram]:
    """{tensor index: histogram over ``dataset``} of every recorded activation of the calibrate-only
    model ``calibrated`` (one pass serves any number of methods). ``interpreter_for(model_content=...)``
    makes a float interpreter; the activations are made outputs of the model it runs, so that any
    kernels (XNNPACK's, 7 times faster here) keep them."""
    model = tflite_model.unpack(calibrated)
    graph = model.subgraphs[0]
    recorded = ranged_tensors(graph)
    graph.outputs = np.array(sorted(recorded), np.int32)
    interpreter = interpreter_for(model_content=tflite_model.pack(model))
    input_index = interpreter.get_input_details()[0]["index"]
    found = {index: Histogram(*bounds) for index, bounds in recorded.items()}
    for (tensor, *_) in dataset():
        interpreter.set_tensor(input_index, tensor)
        interpreter.invoke()
        for index, histogram in found.items():
            histogram.add(interpreter.get_tensor(index))
    return found


def choose(found: dict[int, Histogram], method: Method) -> dict[int, tuple[float, float]]:
    """{tensor index: (min, max)} by ``method`` from the histograms of ``histograms``; none for
    minmax, whose recorded ranges stand."""
    if method.name == "minmax":
        return {}
    if method.name == "percentile":
        return {index: percentile_range(h, method.percentile) for index, h in found.items()}
    return {index: mse_range(h) for index, h in found.items()}


def measure(calibrated: bytes, dataset: Callable[[], Iterator[list[np.ndarray]]], method: Method,
            interpreter_for: Callable[..., object]) -> dict[int, tuple[float, float]]:
    """{tensor index: (min, max)} by ``method`` for every recorded activation of the calibrate-only
    model ``calibrated``, from histograms over ``dataset`` (the samples it was calibrated on); none
    for minmax, which needs no histograms."""
    if method.name == "minmax":
        return {}
    return choose(histograms(calibrated, dataset, interpreter_for), method)


def apply(calibrated: bytes, ranges: dict[int, tuple[float, float]]) -> bytes:
    """The calibrate-only model with its recorded min/max replaced by ``ranges``."""
    model = tflite_model.unpack(calibrated)
    graph = model.subgraphs[0]
    for index, (low, high) in ranges.items():
        graph.tensors[index].quantization.min = np.array([low], np.float32)
        graph.tensors[index].quantization.max = np.array([high], np.float32)
    return tflite_model.pack(model)
