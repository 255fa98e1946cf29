"""Which layer loses accuracy in int8: TensorFlow Lite's quantization debugger, layer by layer.

    python -m utils.quant_debug MODEL.h5 [MODEL.tflite] --dataset IMAGES... [--num-samples N] [--top K]
        [--calibration METHOD]

The debugger quantizes the Keras model again with the same calibration (it needs the converter,
not the finished file) and runs each int8 op beside its float original on the images, so every
layer's error is its own, not the sum of the layers before it. Layers are ranked by their RMS
error in 8-bit steps (RMSE / scale): pure rounding gives 0.29 (1/sqrt(12)); a layer far above
that loses information there (a range too wide for its values, or clipped ones). With
MODEL.tflite, that file's output heads are also compared with the float model.
"""
from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from utils.quantize.ranges import DEFAULT_METHOD, Method

ROUNDING_ONLY = 12 ** -0.5  # RMS of a uniform rounding error, in steps


@dataclass
class LayerError:
    op: str
    tensor: str
    steps: float          # RMS error / scale
    max_abs_error: float
    mean_error: float     # bias
    scale: float
    elements: int


DEBUG_PASSES = ("debugging layers: calibrating again", "debugging layers: int8 beside float, pass 1 of 2",
                "debugging layers: int8 beside float, pass 2 of 2")


def debug_progress(progress: Callable[[list, str], Iterator]) -> Callable[[list], Iterator]:
    """A progress label per pass the debugger makes over the samples (``progress(items, label)``)."""
    passes = iter(DEBUG_PASSES)
    return lambda items: progress(items, next(passes, DEBUG_PASSES[-1]))


def layer_name(tensor: str, heads: list[str] = ()) -> str:
    """The Keras layer behind a converted tensor name ("darknet_1/conv_13_1/BiasAdd;..." -> "conv_13");
    a model output ("StatefulPartitionedCall_1:1") is named by ``heads`` (``head_names``)."""
    output = re.fullmatch(r"StatefulPartitionedCall(?:_\d+)?:(\d+)", tensor)
    if output and int(output.group(1)) < len(heads):
        return heads[int(output.group(1))]
    parts = tensor.split(";")[0].split("/")
    name = parts[1] if len(parts) > 1 else parts[0]
    return re.sub(r"(_\d+)_\d+$", r"\1", name)


def head_names(model) -> list[str]:
    """The model's outputs as the report names them: "head 13x13 (yolo_0)"."""
    return [f"head {output.shape[1]}x{output.shape[2]} ({name})" for output, name in zip(model.outputs, model.output_names)]


def layer_errors(model, dataset: Callable, io_type: str = "uint8", method: Method = Method(DEFAULT_METHOD)) -> list[LayerError]:
    """Every quantized layer of ``model`` (calibrated on ``dataset``, activation ranges by
    ``method``), worst first."""
    import tensorflow as tf

    from utils.quantize.quantizer import calibrated, quantize_calibrated
    instrumented = quantize_calibrated(calibrated(model, dataset, io_type, method), numeric_verify=True)
    with contextlib.redirect_stdout(io.StringIO()):
        debugger = tf.lite.experimental.QuantizationDebugger(quant_debug_model_content=instrumented,
                                                             debug_dataset=dataset)
        debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    errors, heads = [], head_names(model)
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(row["scale"] or 0)
        if scale <= 0:
            continue
        errors.append(LayerError(row["op_name"], layer_name(row["tensor_name"], heads),
                                 float(row["mean_squared_error"]) ** 0.5 / scale,
                                 float(row["max_abs_error"]), float(row["mean_error"]), scale,
                                 int(float(row["num_elements"]))))
    return sorted(errors, key=lambda e: e.steps, reverse=True)


def format_errors(errors: list[LayerError], top: int) -> str:
    lines = [f"Per-layer int8 error against float ({len(errors)} layers; RMS error in 8-bit steps, rounding alone "
             f"is {ROUNDING_ONLY:.2f}), the {min(top, len(errors))} largest:",
             f"  {'steps':>6} {'max |err|':>9} {'bias':>8} {'scale':>9}  layer (op)"]
    for e in errors[:top]:
        lines.append(f"  {e.steps:6.2f} {e.max_abs_error:9.4f} {e.mean_error:8.4f} {e.scale:9.5f}  {e.tensor} ({e.op})")
    return "\n".join(lines)
