"""TFLite's int8 ops in numpy, with the rounding of each kernel set as a parameter.

An int8 op that rescales (CONV_2D, LEAKY_RELU, PRELU) multiplies int32 values by a real factor and
rounds. The kernel sets round in different ways (``utils.quantize.kernel_rounding`` finds which):

- ``double``: gemmlowp's, in TFLite's reference kernels: a Q31 multiplier applied by a rounding
  doubling high multiply, then a rounding right shift: two roundings, ties away from zero.
- ``double-up``: the same two roundings with ties toward +infinity, as TFLite's built-in CONV_2D
  computes them on x86 (LiteRT and tflite_runtime).
- ``single``: one 64-bit product, one rounding shift (TFLite's ``TFLITE_SINGLE_ROUNDING``): the
  convolutions of LiteRT's built-in kernels and of XNNPACK on arm64, as ``make check-arm64`` found.
- ``fp32``: XNNPACK's on x86: the value converted to float32, times the float32 factor, rounded half
  to even.
- ``q8`` (LEAKY_RELU only): XNNPACK's on x86, the factors held with 8 fractional bits.

``run`` executes a whole int8 model (the ops of YOLO's graphs) under chosen schemes, optionally
moving values by a step after each rounding: what another machine's rounding would do.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from utils.tflite import model as tflite

SCHEMES = ("double", "double-up", "single", "fp32", "q8")
INTEGER_AND_FLOAT = SCHEMES[:4]  # q8 is LEAKY_RELU's only
RESCALING_OPS = ("CONV_2D", "LEAKY_RELU", "PRELU")
Perturb = Callable[[np.ndarray], np.ndarray]  # rounded values -> values moved by a step here and there


def quantize_multiplier(real) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's ``QuantizeMultiplier``: (Q31 multiplier, shift), real = multiplier * 2**(shift - 31)."""
    mantissa, shift = np.frexp(np.asarray(real, np.float64))
    multiplier = np.floor(mantissa * (1 << 31) + 0.5).astype(np.int64)  # std::round, for positives
    overflow = multiplier == (1 << 31)
    multiplier = np.where(overflow, multiplier // 2, multiplier)
    shift = np.where(overflow, shift + 1, shift).astype(np.int64)
    tiny = shift < -31
    return np.where(tiny, 0, multiplier), np.where(tiny, 0, shift)


def _truncating_shift(value: np.ndarray, bits: int) -> np.ndarray:
    """C's integer division by 2**bits (toward zero)."""
    return np.where(value >= 0, value >> bits, -((-value) >> bits))


def _double_rounding(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    a = np.clip(x.astype(np.int64) << left, -(1 << 31), (1 << 31) - 1)
    product = a * multiplier
    high = _truncating_shift(product + np.where(product >= 0, 1 << 30, 1 - (1 << 30)), 31)
    mask = (np.int64(1) << right) - 1
    return (high >> right) + ((high & mask) > (mask >> 1) + (high < 0))


def _double_rounding_up(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    high = ((x.astype(np.int64) << left) * multiplier + (1 << 30)) >> 31
    return (high + ((np.int64(1) << right) >> 1)) >> right


def _single_rounding(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    total = 31 - shift
    return (x.astype(np.int64) * multiplier + (np.int64(1) << (total - 1))) >> total


def rescale(x: np.ndarray, real32: np.ndarray, scheme: str, real: np.ndarray | None = None) -> np.ndarray:
    """``x`` (int32 values) times a factor (broadcast along the last axis), rounded as ``scheme``
    does. ``real32`` is the factor as float32 arithmetic gives it (XNNPACK's), ``real`` as double
    arithmetic does (TFLite's; default: ``real32``)."""
    if scheme == "fp32":
        return np.rint(x.astype(np.float32) * np.asarray(real32, np.float32)).astype(np.int64)
    multiplier, shift = quantize_multiplier(np.float64(real32) if real is None else real)
    apply = {"double": _double_rounding, "double-up": _double_rounding_up, "single": _single_rounding}[scheme]
    return apply(x, multiplier, shift)


class Graph:
    """One unpacked .tflite model: its tensors' names and quantization, constants, ops and options."""

    def __init__(self, path: Path):
        self.model = tflite.load(path)
        self.graph = self.model.subgraphs[0]

    def name(self, index: int) -> str:
        name = self.graph.tensors[index].name
        return name.decode() if isinstance(name, bytes) else name

    def quantization(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        q = self.graph.tensors[index].quantization
        return np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.int64)

    def dtype(self, index: int) -> np.dtype:
        return np.dtype(tflite.type_name(self.graph.tensors[index].type))

    def constant(self, index: int) -> np.ndarray | None:
        tensor = self.graph.tensors[index]
        data = self.model.buffers[tensor.buffer].data
        if data is None or len(data) == 0:
            return None
        return np.frombuffer(np.asarray(data, np.uint8).tobytes(), self.dtype(index)).reshape(tensor.shape)

    def ops(self):
        """(index, op name, operator) in execution order."""
        for index, op in enumerate(self.graph.operators):
            yield index, tflite.op_name(self.model.operatorCodes[op.opcodeIndex]), op


def clipped(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` saturated to ``dtype``'s range, as the int8 kernels saturate their outputs."""
    limits = np.iinfo(dtype)
    return np.clip(values, limits.min, limits.max).astype(dtype)


def _same_padding(size: int, out: int, stride: int, kernel: int) -> tuple[int, int]:
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_2d(graph: Graph, op, x: np.ndarray, schemes: list[str]) -> dict[str, np.ndarray]:
    """CONV_2D (per-channel int8 weights, SAME or VALID padding) under each scheme, before clipping."""
    kernel = graph.constant(op.inputs[1]).astype(np.float64)
    bias = graph.constant(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else 0
    in_scale, in_zero = graph.quantization(op.inputs[0])
    out_scale, out_zero = graph.quantization(op.outputs[0])
    kernel_scale = graph.quantization(op.inputs[1])[0]
    options, out_shape = op.builtinOptions, graph.graph.tensors[op.outputs[0]].shape
    (kh, kw), (sh, sw), (oh, ow) = kernel.shape[1:3], (options.strideH, options.strideW), out_shape[1:3]
    pads = [(0, 0), _same_padding(x.shape[1], oh, sh, kh), _same_padding(x.shape[2], ow, sw, kw), (0, 0)]
    padded = np.pad(x.astype(np.float64) - in_zero[0], pads)
    acc = np.zeros((x.shape[0], oh, ow, kernel.shape[0]))
    for i in range(kh):
        for j in range(kw):  # exact: int8 products summed in float64 stay far below 2**53
            acc += padded[:, i:i + sh * oh:sh, j:j + sw * ow:sw, :] @ kernel[:, i, j, :].T
    acc = (acc + bias).astype(np.int64)
    real = np.float64(in_scale[0]) * kernel_scale.astype(np.float64) / np.float64(out_scale[0])
    real32 = in_scale[0] * kernel_scale / out_scale[0]
    return {scheme: rescale(acc, real32, scheme, real) + out_zero[0] for scheme in schemes}


def leaky_relu(graph: Graph, op, x: np.ndarray, schemes: list[str]) -> dict[str, np.ndarray]:
    in_scale, in_zero = graph.quantization(op.inputs[0])
    out_scale, out_zero = graph.quantization(op.outputs[0])
    alpha = np.float32(op.builtinOptions.alpha)
    centred = x.astype(np.int64) - in_zero[0]
    positive = centred >= 0
    identity, negative = in_scale[0] / out_scale[0], in_scale[0] * alpha / out_scale[0]
    results = {}
    for scheme in schemes:
        if scheme == "q8":  # XNNPACK's multipliers: the factors in 8 fractional bits, the input one scaled by alpha
            factor = np.where(positive, np.rint(np.float32(256) * identity), np.rint(np.float32(256) * (identity * alpha)))
            results[scheme] = ((out_zero[0] << 8) + 128 + centred * factor.astype(np.int64)) >> 8
        else:
            results[scheme] = np.where(positive, rescale(centred, identity, scheme),
                                       rescale(centred, negative, scheme)) + out_zero[0]
    return results


def prelu(graph: Graph, op, x: np.ndarray, schemes: list[str]) -> dict[str, np.ndarray]:
    in_scale, in_zero = graph.quantization(op.inputs[0])
    out_scale, out_zero = graph.quantization(op.outputs[0])
    alpha_scale, alpha_zero = graph.quantization(op.inputs[1])
    alpha = graph.constant(op.inputs[1]).astype(np.int64) - alpha_zero[0]
    centred = x.astype(np.int64) - in_zero[0]
    identity, negative = in_scale[0] / out_scale[0], in_scale[0] * alpha_scale[0] / out_scale[0]
    return {scheme: np.where(centred >= 0, rescale(centred, identity, scheme),
                             rescale(centred * alpha, negative, scheme)) + out_zero[0] for scheme in schemes}


RESCALING = {"CONV_2D": conv_2d, "LEAKY_RELU": leaky_relu, "PRELU": prelu}


def _max_pool(graph: Graph, op, x: np.ndarray) -> np.ndarray:
    o = op.builtinOptions
    (oh, ow), (kh, kw), (sh, sw) = graph.graph.tensors[op.outputs[0]].shape[1:3], (o.filterHeight, o.filterWidth), (o.strideH, o.strideW)
    limits = np.iinfo(x.dtype)
    pads = [(0, 0), _same_padding(x.shape[1], oh, sh, kh), _same_padding(x.shape[2], ow, sw, kw), (0, 0)]
    padded = np.pad(x, pads, constant_values=limits.min)
    return np.max([padded[:, i:i + sh * oh:sh, j:j + sw * ow:sw, :] for i in range(kh) for j in range(kw)], axis=0)


def _resize_nearest(graph: Graph, op, x: np.ndarray) -> np.ndarray:
    oh, ow = graph.graph.tensors[op.outputs[0]].shape[1:3]
    return x.repeat(oh // x.shape[1], axis=1).repeat(ow // x.shape[2], axis=2)  # YOLO's upsample: whole factors


def _requantized(graph: Graph, source: int, target: int, x: np.ndarray) -> np.ndarray:
    """``x`` from ``source``'s quantization to ``target``'s (a plain offset when only the zero point differs)."""
    (s_scale, s_zero), (t_scale, t_zero) = graph.quantization(source), graph.quantization(target)
    if s_scale[0] == t_scale[0]:
        return clipped(x.astype(np.int64) - s_zero[0] + t_zero[0], graph.dtype(target))
    real = np.float64(s_scale[0]) / np.float64(t_scale[0])
    return clipped(rescale(x.astype(np.int64) - s_zero[0], np.float32(real), "double", real) + t_zero[0],
                    graph.dtype(target))


def run(graph: Graph, image: np.ndarray, schemes: dict[str, str], perturb: Perturb | None = None) -> dict[str, np.ndarray]:
    """Every tensor of the model on ``image`` (its input tensor), by name: each rescaling op rounded as
    ``schemes[op name]`` says, and its rounded values passed through ``perturb`` when given."""
    tensors = {graph.graph.inputs[0]: image}
    for _, name, op in graph.ops():
        x, out = tensors[op.inputs[0]], op.outputs[0]
        if name in RESCALING:
            scheme = schemes[name].lstrip("~").split("=")[0].split(" ")[0]  # as kernel_rounding.by_op writes them
            values = RESCALING[name](graph, op, x, [scheme])[scheme]
            tensors[out] = clipped(perturb(values) if perturb else values, graph.dtype(out))
        elif name == "MAX_POOL_2D":
            tensors[out] = _max_pool(graph, op, x)
        elif name == "RESIZE_NEAREST_NEIGHBOR":
            tensors[out] = _resize_nearest(graph, op, x)
        elif name == "CONCATENATION":
            parts = [_requantized(graph, i, out, tensors[i]) for i in op.inputs]
            tensors[out] = np.concatenate(parts, axis=op.builtinOptions.axis)
        elif name in ("QUANTIZE", "DEQUANTIZE") and graph.dtype(out).kind in "iu":
            tensors[out] = _requantized(graph, op.inputs[0], out, x)
        else:
            raise ValueError(f"{name} is not one of the ops numpy_kernels runs")
    return {graph.name(index): value for index, value in tensors.items()}
