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
from pathlib import Path

from utils.quantize.ranges import CALIBRATION_HELP, DEFAULT_METHOD, Method, method_argument

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


def main() -> None:
    import sys

    from utils.console import add_verbose, progress, quiet_libraries
    from utils.errors import ArgumentParser, UserError
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the float Keras model (.h5/.keras from convert.py)")
    parser.add_argument("tflite", type=Path, nargs="?", help="its int8 .tflite: also compare its output heads")
    parser.add_argument("--dataset", "--images", nargs="+", required=True, dest="dataset",
                        help="calibration images (files, directories or globs), as given to the quantizer")
    parser.add_argument("--num-samples", type=int, default=100, help="calibration samples (default: %(default)s)")
    parser.add_argument("--no-augment", action="store_true", help="as the quantizer's flag")
    parser.add_argument("--calibration", type=method_argument, default=DEFAULT_METHOD, metavar="METHOD",
                        help=CALIBRATION_HELP + ", as the quantizer's flag (default: %(default)s)")
    parser.add_argument("--top", type=int, default=10, help="how many layers to list (default: %(default)s)")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw every layer's error as a bar "
                        "chart, in network order (needs matplotlib: requirements-convert.txt)")
    add_verbose(parser)
    args = parser.parse_args()
    if args.num_samples < 1 or args.top < 1:
        parser.error("--num-samples and --top must be at least 1")
    quiet_libraries(args.verbose)
    from utils.files import check_output, check_writable, require_file
    from utils.media.images import find_images, read_image
    from utils.quantize import calibration
    from utils.quantize import quantizer as quantize
    from utils.runtime.engine import Engine
    from utils.runtime.keras_engine import load_keras_model
    from utils.yolo.adapter import model_meta
    require_file(args.model, "model")
    paths = find_images(args.dataset)
    if args.plot is not None:  # before the work: a place that cannot be written, or no matplotlib
        from utils.plotting import pyplot
        if args.plot.suffix.lower() != ".png":
            raise UserError(f"--plot {args.plot}: the name must end in .png")
        check_output(args.plot, [args.model, *([args.tflite] if args.tflite else []), *paths], "plot")
        check_writable(args.plot)
        pyplot()
    print(f"loading {args.model} (TensorFlow); {len(paths)} images, {args.num_samples} samples", file=sys.stderr,
          flush=True)
    model = load_keras_model(args.model)
    meta = quantize.model_meta(model, args.model)
    samples = calibration.Calibration(calibration.plan(paths, args.num_samples, not args.no_augment))
    errors = layer_errors(model, samples.dataset(meta.input_size, meta.resize, debug_progress(progress)),
                          method=args.calibration)
    if not errors:
        raise UserError(f"dataset: none of the {len(paths)} images could be decoded")
    print(format_errors(errors, args.top))
    if args.tflite:
        images = [image for image in (read_image(p) for p in paths[:20]) if image is not None]
        print(f"Output heads of {args.tflite} against the float model on {len(images)} images:")
        output_range = model_meta(Engine(args.tflite)).output_range  # the range the file was written with
        for grid, mean, peak in quantize.head_errors(model, args.tflite, images, meta.input_size, output_range):
            print(f"  head {grid[0]}x{grid[1]}: mean |d| {mean:.4f}, max |d| {peak:.4f}")
    if args.plot is not None:
        from utils.quantize.debug_plot import layer_error_chart
        layer_error_chart(errors, args.plot, f"Per-layer int8 error of {args.model.name} ({args.calibration} "
                          f"calibration, {args.num_samples} samples)")
        print(f"wrote {args.plot} (every layer's int8 error, in network order)")
    sys.stdout.flush()


if __name__ == "__main__":
    from utils.errors import run_cli
    run_cli(main)
