"""Bias correction: remove the mean error that int8 rounding leaves in each convolution's output.
For bench/defaults.py; the quantizer does not offer it, as it lowered agreement there.

Rounding weights and activations to 8 bits shifts each output channel's mean a little; through
the layers after it the shifts add up. For each convolution in order, the int8 model (with the
corrections made so far) and the float model run the calibration samples; the difference of their
per-channel means is added to the int32 bias, in the bias's own step (input scale × weight scale).
The float values are first clipped to the int8 output's range: clipping is the range method's
choice, not an error to correct. Empirical bias correction as in Nagel et al., "Data-Free
Quantization Through Weight Equalization and Bias Correction" (2019), section 4.2.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from utils.tflite import model as tflite_model

CORRECTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def _convolutions(model: schema.ModelT) -> list[schema.OperatorT]:
    """The convolutions with a bias, in execution order (the quantizer keeps the float model's)."""
    graph = model.subgraphs[0]
    return [op for op in graph.operators
            if tflite_model.op_name(model.operatorCodes[op.opcodeIndex]) in CORRECTED_OPS
            and len(op.inputs) > 2 and op.inputs[2] >= 0]


def _channel_means(model_bytes: bytes, tensors: list[int], samples: list[np.ndarray],
                   interpreter_for: Callable[..., object],
                   clip: list[tuple[float, float]] | None = None) -> list[np.ndarray]:
    """The mean per channel, over samples and positions, of each of the ``tensors`` (dequantized;
    clipped to ``clip[i]`` where given). They are made the model's outputs, which kernels keep."""
    model = tflite_model.unpack(model_bytes)
    model.subgraphs[0].outputs = np.array(tensors, np.int32)
    interpreter = interpreter_for(model_content=tflite_model.pack(model))
    detail = interpreter.get_input_details()[0]
    outputs = interpreter.get_output_details()
    scale, zero_point = detail["quantization"]
    sums = [0.0] * len(tensors)
    for sample in samples:
        if detail["dtype"] != np.float32:
            info = np.iinfo(detail["dtype"])
            sample = np.clip(np.round(sample / scale + zero_point), info.min, info.max).astype(detail["dtype"])
        interpreter.set_tensor(detail["index"], sample)
        interpreter.invoke()
        for i, output in enumerate(outputs):
            value = interpreter.get_tensor(output["index"])
            if value.dtype != np.float32:
                out_scale, out_zero = output["quantization"]
                value = (value.astype(np.float32) - out_zero) * out_scale
            if clip:
                value = np.clip(value, *clip[i])
            sums[i] = sums[i] + value.reshape(-1, value.shape[-1]).mean(0)
    return [total / len(samples) for total in sums]


def _output_range(tensor: schema.TensorT) -> tuple[float, float]:
    q = tensor.quantization
    scale, zero = float(q.scale[0]), int(q.zeroPoint[0])
    low, high = (-128, 127) if tensor.type == schema.TensorType.INT8 else (0, 255)
    return (low - zero) * scale, (high - zero) * scale


def correct(model: schema.ModelT, float_model: bytes, dataset: Callable[[], Iterator[list[np.ndarray]]],
            interpreter_for: Callable[..., object], progress: Callable[[list], Iterator] = iter) -> list[float]:
    """Correct the biases of the int8 ``model`` in place, layer by layer, against ``float_model``
    (the calibrate-only model it was quantized from: same tensor names) on ``dataset``. Returns the
    largest correction per layer, in output steps."""
    graph = model.subgraphs[0]
    samples = [tensor for tensor, *_ in dataset()]
    convolutions = _convolutions(model)
    float_convolutions = _convolutions(tflite_model.unpack(float_model))
    if len(float_convolutions) != len(convolutions):
        raise ValueError("bias correction: the float and int8 models have different convolutions")
    clip = [_output_range(graph.tensors[op.outputs[0]]) for op in convolutions]
    reference = _channel_means(float_model, [op.outputs[0] for op in float_convolutions], samples,
                               interpreter_for, clip)
    moved = []
    for number, op in enumerate(progress(convolutions)):
        current = _channel_means(tflite_model.pack(model), [op.outputs[0]], samples, interpreter_for)[0]
        bias = graph.tensors[op.inputs[2]]
        step = np.asarray(bias.quantization.scale, np.float64)
        buffer = model.buffers[bias.buffer]
        values = np.frombuffer(bytes(buffer.data), np.int32).copy()
        shift = np.round((reference[number] - current) / step).astype(np.int64)
        values = np.clip(values + shift, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
        buffer.data = np.frombuffer(values.tobytes(), np.uint8)
        out_scale = float(graph.tensors[op.outputs[0]].quantization.scale[0])
        moved.append(float(np.abs(reference[number] - current).max() / out_scale))
    return moved


def correct_file(h5: Path, tflite: Path, images: list[Path], method, num_samples: int = 100) -> list[float]:
    """Bias-correct the int8 model ``tflite`` (quantized from ``h5`` on ``images`` with ``method``)
    in place, on the same calibration samples, under XNNPACK; the largest correction per layer."""
    from utils.quantize import calibration
    from utils.quantize import quantizer as quantize
    from utils.runtime.keras_engine import load_keras_model

    model = load_keras_model(h5)
    meta = quantize.model_meta(model, h5)
    samples = calibration.Calibration(calibration.plan(images, num_samples))
    data = samples.dataset(meta.input_size, meta.resize, lambda items: items)
    recorded = quantize.record_ranges(model, data)
    int8 = tflite_model.load(tflite)
    calibrated = quantize.with_ranges(recorded, quantize.measured_ranges(recorded, data, method))
    moved = correct(int8, calibrated, data, quantize.float_interpreter)
    tflite_model.save(int8, tflite)
    return moved
