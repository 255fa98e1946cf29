"""Keras → TFLite: full-integer quantization calibrated on real images, metadata, fixed head ranges."""
from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema

from utils.errors import UserError
from utils.quantize import detection_graph, ranges
from utils.runtime.interpreters import interpreter_api, smoke_test
from utils.tflite import model as tflite_model
from utils.tflite import task_metadata
from utils.yolo.letterbox import Preprocessor
from utils.yolo.meta import METADATA_NAME, YoloMeta, load_meta_file, resolve_meta, sidecar_paths
from utils.yolo.ssd_outputs import EXTRAS_KEY, PostProcess

IO_TYPES = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}


def model_meta(model: keras.Model, model_path: Path, anchors_path: Path | None = None) -> YoloMeta:
    """The model's YOLO metadata (its ``_yolo.json`` sidecar, or ``--anchors``), checked against its outputs."""
    shapes = [tuple(o.shape) for o in model.outputs]
    if any(len(s) != 4 or s[0] not in (1, None) for s in shapes):
        raise UserError(f"model {model_path}: outputs {shapes} are not YOLO heads (1, grid_h, grid_w, channels)")
    meta_path, _ = sidecar_paths(model_path)
    own = load_meta_file(meta_path) if meta_path.is_file() else None
    input_size = (model.inputs[0].shape[2], model.inputs[0].shape[1])
    return resolve_meta(model_path, input_size, {(s[2], s[1]): s[3] for s in shapes}, own, anchors_path,
                        f"no {meta_path.name} beside it (write it with convert.py, or pass --anchors)")


@contextlib.contextmanager
def converter_for(model: keras.Model, dataset: Callable | None, io_type: str = "uint8", quantize: bool = True,
                  post: PostProcess | None = None, meta: YoloMeta | None = None) -> Iterator[tf.lite.TFLiteConverter]:
    """The converter: full int8 (8-bit ``io_type`` input and outputs) calibrated on ``dataset``, or
    float; with ``post``, of the model ending in TFLite_Detection_PostProcess (float outputs)."""
    with detection_graph.saved_model(model, meta, post) if post else contextlib.nullcontext() as directory:
        if post:
            converter = tf.lite.TFLiteConverter.from_saved_model(directory)
            converter.allow_custom_ops = True
        else:
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = IO_TYPES[io_type]
            converter.inference_output_type = tf.float32 if post else IO_TYPES[io_type]
        yield converter


def _convert(converter: tf.lite.TFLiteConverter) -> bytes:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its signatures
            return converter.convert()
    except Exception as error:
        raise UserError(f"TFLite conversion failed: {str(error).strip().splitlines()[-1][:200]}") from None


def record_ranges(model: keras.Model, dataset: Callable, io_type: str = "uint8", post: PostProcess | None = None,
                  meta: YoloMeta | None = None) -> bytes:
    """The calibrate-only model: float, with each activation's min and max over ``dataset``
    recorded, ready for TFLite's quantizer (the API its debugger drives)."""
    with converter_for(model, dataset, io_type, post=post, meta=meta) as converter:
        converter._experimental_calibrate_only = True
        return _convert(converter)


def float_interpreter(**options):
    """A float interpreter on XNNPACK with every core (the range measurements run on it)."""
    return interpreter_api("litert").interpreter("xnnpack", num_threads=os.cpu_count(), **options)


def measured_ranges(model_bytes: bytes, dataset: Callable, method: ranges.Method) -> dict[int, tuple[float, float]]:
    """The ranges ``method`` moves in the calibrate-only model (none for minmax: the recorded ones stand)."""
    return ranges.measure(model_bytes, dataset, method, float_interpreter)


def with_ranges(model_bytes: bytes, chosen: dict[int, tuple[float, float]], post: PostProcess | None = None,
                meta: YoloMeta | None = None, head_range: tuple[float, float] | None = None) -> bytes:
    """The calibrate-only model with the ranges ``chosen`` (and, with ``post``, the detection tail's)."""
    chosen = dict(chosen)
    if post:
        chosen.update(detection_ranges(tflite_model.unpack(model_bytes).subgraphs[0], meta, head_range))
    return ranges.apply(model_bytes, chosen) if chosen else model_bytes


def calibrated(model: keras.Model, dataset: Callable, io_type: str = "uint8", method: ranges.Method = ranges.Method(ranges.DEFAULT_METHOD),
               post: PostProcess | None = None, meta: YoloMeta | None = None,
               head_range: tuple[float, float] | None = None) -> bytes:
    """The calibrate-only model with each activation's range by ``method`` (its min/max over
    ``dataset``, moved by the method). ``head_range`` is given to the logit heads inside a model
    with ``post`` (a heads model gets it on its outputs, in ``finish``)."""
    model_bytes = record_ranges(model, dataset, io_type, post, meta)
    return with_ranges(model_bytes, measured_ranges(model_bytes, dataset, method), post, meta, head_range)


def detection_ranges(graph, meta: YoloMeta, head_range: tuple[float, float] | None) -> dict[int, tuple[float, float]]:
    """Ranges for a model ending in TFLite_Detection_PostProcess: the logit heads inside get
    ``head_range``; the box encodings after them keep their calibrated min/max (a narrower range
    would clip the boxes of objects at the frame's edge), and the class scores cover [0, 1] (a
    calibrated maximum under 1 would cap every higher score)."""
    heads = {(1, h.grid[1], h.grid[0], c) for h, c in zip(meta.heads, meta.channels_per_head())
             if tuple(h.grid) in logit_heads(meta)}
    chosen = {}
    for index, recorded in ranges.ranged_tensors(graph).items():
        shape = tuple(graph.tensors[index].shape) if graph.tensors[index].shape is not None else ()
        if shape in heads and head_range:
            chosen[index] = head_range
        elif len(shape) == 3:  # [1, candidates, k]: the decoding after the heads
            chosen[index] = (0.0, 1.0) if shape[2] == meta.classes and recorded[0] >= 0 else recorded
    return chosen


def quantize_calibrated(model_bytes: bytes, io_type: str = "uint8", numeric_verify: bool = False,
                        float_outputs: bool = False) -> bytes:
    """TFLite's quantizer on a calibrate-only model, called as the converter calls it, so that min/max
    ranges give the converter's own int8 model (tests/test_calibration_ranges.py). With
    ``numeric_verify``, the quantization debugger's instrumented model instead."""
    from tensorflow.lite.python.convert import mlir_quantize
    try:
        if numeric_verify:
            return mlir_quantize(model_bytes, enable_numeric_verify=True)
        output_type = tf.float32 if float_outputs else IO_TYPES[io_type]
        return mlir_quantize(model_bytes, False, input_data_type=IO_TYPES[io_type], output_data_type=output_type)
    except Exception as error:
        raise UserError(f"TFLite quantization failed: {str(error).strip().splitlines()[-1][:200]}") from None


def to_tflite(model: keras.Model, dataset: Callable | None, io_type: str = "uint8", quantize: bool = True,
              method: ranges.Method = ranges.Method(ranges.DEFAULT_METHOD), post: PostProcess | None = None,
              meta: YoloMeta | None = None, head_range: tuple[float, float] | None = None) -> bytes:
    """The model as TFLite: float, or full int8 with activation ranges by ``method``; raw heads, or
    with ``post`` the four outputs of TFLite_Detection_PostProcess (its heads inside given ``head_range``)."""
    if not quantize:
        with converter_for(model, dataset, io_type, quantize=False, post=post, meta=meta) as converter:
            return _convert(converter)
    return quantize_calibrated(calibrated(model, dataset, io_type, method, post, meta, head_range), io_type,
                               float_outputs=post is not None)


def _set_range(tensor: schema.TensorT, low: float, high: float) -> None:
    """Quantization of an 8-bit tensor covering [low, high] (zero exactly representable)."""
    scale = (high - low) / 255.0
    offset = -128 if tensor.type == schema.TensorType.INT8 else 0
    zero_point = int(np.clip(round(offset - low / scale), offset, offset + 255))
    tensor.quantization.scale = np.array([scale], np.float32)
    tensor.quantization.zeroPoint = np.array([zero_point], np.int64)
    tensor.quantization.min = tensor.quantization.max = None


def logit_heads(meta: YoloMeta) -> set[tuple[int, int]]:
    """Grids of the heads that output logits. A ``new_coords`` head ends in LOGISTIC, whose int8
    output TFLite fixes to [0, 1] (scale 1/256): those keep their own quantization."""
    return {tuple(h.grid) for h in meta.heads if not h.new_coords}


def fix_output_ranges(model: schema.ModelT, output_range: tuple[float, float],
                      grids: set[tuple[int, int]] | None = None) -> None:
    """Give every quantized head output (and the int8 tensor feeding it) the range ``output_range``,
    or only the heads whose (grid_w, grid_h) is in ``grids``.

    Kernels derive their requantization from these parameters, so the head convolutions simply
    write with a finer step; logits outside the range saturate, where they cannot change a detection.
    """
    graph = model.subgraphs[0]
    producers = {out: op for op in graph.operators for out in op.outputs}
    eight_bit = (schema.TensorType.INT8, schema.TensorType.UINT8)
    for output in graph.outputs:
        shape = graph.tensors[output].shape
        if grids is not None and (int(shape[2]), int(shape[1])) not in grids:
            continue
        chain = [output]
        op = producers.get(output)
        name = tflite_model.op_name(model.operatorCodes[op.opcodeIndex])
        if name in ("QUANTIZE", "DEQUANTIZE"):
            chain.append(op.inputs[0])
        consumers = [o for o in graph.operators if any(i in chain[1:] for i in o.inputs)]
        if len(consumers) > 1:
            raise UserError("cannot fix the output range: a head tensor has other consumers")
        for index in chain:
            if graph.tensors[index].type in eight_bit:
                _set_range(graph.tensors[index], *output_range)


def finish(tflite: bytes, meta: YoloMeta, output: Path, output_range: tuple[float, float] | None,
           post: PostProcess | None = None, labels: list[str] | None = None) -> None:
    """Embed the YOLO metadata (and fix head ranges) and write ``output`` atomically. With ``post``,
    the detection outputs are put in the consumers' order and the Task Library's metadata and the
    label file ``labels`` are packed in."""
    model = tflite_model.unpack(tflite)
    files = None
    if post:
        detection_graph.finish(model)
        meta.extras[EXTRAS_KEY] = post.to_dict()
        labels_file = "labels.txt"
        quantized = model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]].quantization
        scale = float(quantized.scale[0]) if quantized is not None and quantized.scale is not None else 1 / 255
        info = task_metadata.DetectorInfo(output.stem, "YOLO (Darknet) with TFLite_Detection_PostProcess outputs, "
                                          "converted by tinyyolo-edgetpu", tuple(meta.input_size), 0.0, 1 / scale,
                                          labels_file, labels or [])
        tflite_model.set_metadata(model, task_metadata.METADATA_NAME, task_metadata.metadata_buffer(info))
        files = {labels_file: "".join(f"{name}\n" for name in labels)} if labels else None
    elif output_range:
        fix_output_ranges(model, output_range, logit_heads(meta))
    tflite_model.set_metadata(model, METADATA_NAME, meta.to_json().encode())
    tflite_model.save(model, output, verify=smoke_test, files=files)


def head_errors(keras_model: keras.Model, tflite_path: Path, images: list[np.ndarray],
                net_size: tuple[int, int], output_range: tuple[float, float] | None = None,
                ) -> list[tuple[tuple[int, int], float, float]]:
    """Per head (grid, mean |Δ|, max |Δ|) between the TFLite model's dequantized outputs and Keras'.

    With a fixed output range the float reference is clipped to it first: logits outside it
    saturate by design.
    """
    from utils.runtime.engine import Engine
    from utils.yolo.adapter import YoloAdapter, model_meta
    engine = Engine(tflite_path)
    meta = model_meta(engine)
    quantized = YoloAdapter(engine, meta)
    fixed = logit_heads(meta)
    float_pre = Preprocessor(net_size, resize=meta.resize)
    sums: dict[tuple[int, int], list[float]] = {}
    for image in images:
        x, _ = float_pre(image)
        reference = keras_model(x, training=False)
        reference = reference if isinstance(reference, (list, tuple)) else [reference]
        outputs = {tuple(spec.grid): head for spec, head in zip(meta.heads, quantized.run(quantized.prepare(image)[0]))}
        for ref in reference:
            ref = np.asarray(ref)
            grid = (ref.shape[2], ref.shape[1])
            if output_range and grid in fixed:
                ref = np.clip(ref, *output_range)
            head = outputs[grid]
            delta = np.abs(head.dequantize(head.data) - ref)
            entry = sums.setdefault(grid, [0.0, 0.0, 0])
            entry[0] += float(delta.sum())
            entry[1] = max(entry[1], float(delta.max()))
            entry[2] += delta.size
    return [(grid, total / count, peak) for grid, (total, peak, count) in sums.items()]
