#!/usr/bin/env python3
"""Quantize a Keras YOLO model (from convert.py) to a full-integer TFLite model for the Edge TPU.

    python keras_to_tflite_quant.py out/yolov3-tiny-tpu.h5 out/yolov3-tiny-tpu.tflite \\
        --dataset model_data/samples

Calibrates on real images resized exactly as inference.py does (letterbox or stretch, the model's
own), embeds the YOLO metadata (anchors, masks, classes, resize mode) in the .tflite, fixes the
heads' output range for a finer 8-bit step, then prints an Edge TPU compatibility report and the
quantization error per head.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from utils.console import add_verbose, plural, quiet_libraries
from utils.errors import ArgumentParser, UserError, run_cli
from utils.quantize import ranges
from utils.quantize.pipeline import DEFAULT_HEAD_RANGE, Settings, quantize_model

REPO_SAMPLES = Path(__file__).resolve().parent / "model_data" / "samples"


# The head range must give an 8-bit step the kernels can requantize to: a width under 0.1 (a step
# under 0.0004) makes requantization multipliers that XNNPACK rejects and other kernels overflow,
# and logits beyond +-1000 mean nothing (sigmoid saturates at +-17).
RANGE_LIMITS = (0.1, 1000.0)


def parse_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not LOW,HIGH") from None
    if not (math.isfinite(low) and math.isfinite(high)) or not low < 0 < high:
        raise argparse.ArgumentTypeError(f"'{text}': need finite LOW < 0 < HIGH")
    min_width, max_value = RANGE_LIMITS
    if high - low < min_width or max(-low, high) > max_value:
        raise argparse.ArgumentTypeError(f"'{text}': need HIGH - LOW >= {min_width:g} and both within "
                                         f"+-{max_value:g} (an 8-bit step the kernels can represent)")
    return low, high


def parse_args() -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("model", type=Path, help="Keras model from convert.py (.h5 or .keras)")
    parser.add_argument("output", type=Path, help=".tflite file to write")
    parser.add_argument("--dataset", nargs="+", metavar="DIR|GLOB|FILE",
                        help="calibration images: directories (recursive), globs or files, a Darknet list "
                             "(.txt) or a Darknet .data file (its train= list) "
                             f"(default: the repository's sample photos, {REPO_SAMPLES.name}/, with a warning)")
    parser.add_argument("--num-samples", type=int, default=100, help="calibration samples: images evenly "
                        "spread over the dataset, topped up with random crops/flips of them when the dataset is "
                        "smaller (default: %(default)s)")
    parser.add_argument("--no-augment", action="store_true", help="never top up with crops/flips")
    parser.add_argument("--calibration", type=ranges.calibration_argument, default=ranges.DEFAULT_METHOD,
                        metavar="METHOD", help=ranges.CALIBRATION_HELP + ", or auto (each of them tried on a quarter "
                        "of the dataset held out, the best kept; needs 8 images) (default: %(default)s)")
    parser.add_argument("--io-type", choices=("uint8", "int8", "float32"), default="uint8",
                        help="input/output type of the quantized model (default: %(default)s, the Edge TPU-safe choice)")
    parser.add_argument("--float", action="store_true", help="write an unquantized float32 model instead "
                        "(reference and debugging; not for the Edge TPU)")
    # Logits below -6 never make a detection (sigmoid(-6) = 0.0025) and above 10 saturate the
    # sigmoid; calibrated ranges like [-24, 6.5] spend half of the 8 bits on them.
    parser.add_argument("--output-range", type=parse_range, default=DEFAULT_HEAD_RANGE, metavar="LOW,HIGH",
                        help="fixed logit range of the quantized heads: finite, LOW < 0 < HIGH, HIGH - LOW >= "
                             f"{RANGE_LIMITS[0]:g}, within +-{RANGE_LIMITS[1]:g} (default: -6,10)")
    parser.add_argument("--no-fixed-range", action="store_true",
                        help="keep the calibrated head ranges instead of --output-range")
    parser.add_argument("--outputs", choices=("heads", "detections"), default="heads",
                        help="heads: the raw YOLO heads (this toolkit decodes them); detections: end in TFLite's "
                             "TFLite_Detection_PostProcess (boxes, classes, scores, count), as pycoral, Frigate and the "
                             "TFLite Task Library read them (default: %(default)s)")
    parser.add_argument("--classes", type=Path, help="class names, one per line: with --outputs detections, the label "
                        "file packed into the model for the TFLite Task Library")
    parser.add_argument("--max-detections", type=int, default=100,
                        help="with --outputs detections: detections kept per image (default: %(default)s)")
    parser.add_argument("--score-threshold", type=float, default=0.25,
                        help="with --outputs detections: lowest score kept, Darknet's -thresh (default: %(default)s)")
    parser.add_argument("--nms-iou", type=float, default=0.45,
                        help="with --outputs detections: per-class NMS IoU, Darknet's -nms (default: %(default)s)")
    parser.add_argument("--anchors", type=Path, help="anchors file, for a model without its _yolo.json sidecar")
    parser.add_argument("--eval-images", nargs="+", metavar="DIR|GLOB|FILE",
                        help="images for the quantization-error report (default: up to 8 calibration images)")
    parser.add_argument("--strict", action="store_true", help="exit 1 unless every op maps to the Edge TPU")
    parser.add_argument("--debug-layers", type=int, nargs="?", const=5, metavar="N",
                        help="also list the N layers (default 5) with the largest int8 error, from TensorFlow "
                             "Lite's quantization debugger, and chart every layer's in OUT_layers.png (python -m "
                             "utils.quant_debug does it alone)")
    add_verbose(parser)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    quiet_libraries(args.verbose)
    if args.num_samples < 1:
        raise UserError("--num-samples must be at least 1")
    if args.debug_layers is not None and args.debug_layers < 1:
        raise UserError("--debug-layers must be at least 1 (the number of layers to list)")
    from utils.evaluation.datasets import find_dataset_images
    from utils.files import check_output, check_writable, require_file
    from utils.media.images import evenly_spread, find_images
    from utils.yolo import ssd_outputs
    from utils.yolo.detector import read_class_names
    from utils.yolo.meta import sidecar_paths

    post = None
    if args.outputs == "detections":
        post = ssd_outputs.PostProcess(args.max_detections, args.score_threshold, args.nms_iou)
        if post.problem():
            raise UserError(post.problem())
        if args.classes is None:
            raise UserError("--outputs detections needs --classes FILE: the label file packed into the model "
                            "(the TFLite Task Library names detections from it)")
    labels = read_class_names(args.classes) if post else None
    require_file(args.model, "model")
    check_output(args.output, [args.model, sidecar_paths(args.model)[0], *([args.anchors] if args.anchors else []),
                               *([args.classes] if args.classes else [])])
    if args.output.suffix.lower() != ".tflite":
        raise UserError(f"output {args.output}: the name must end in .tflite")
    dataset = (find_dataset_images(args.dataset, "dataset", "train") if args.dataset
               else find_images([str(REPO_SAMPLES)], "dataset"))
    eval_images = find_images(args.eval_images, "eval images") if args.eval_images else evenly_spread(dataset, 8)
    check_output(args.output, [*dataset, *eval_images])
    check_writable(args.output)
    chart = args.output.with_name(f"{args.output.stem}_layers.png") if args.debug_layers else None
    if chart is not None:  # before the work: no matplotlib, or the chart would replace an input
        from utils.plotting import pyplot
        check_output(chart, [args.model, *dataset, *eval_images], "chart")
        pyplot()
    where = (f"{REPO_SAMPLES} (no --dataset)" if not args.dataset else ", ".join(args.dataset)
             if len(args.dataset) <= 3 else f"{len(args.dataset)} paths")
    print(f"dataset: {len(dataset)} images found in {where}")
    print(f"loading {args.model} (TensorFlow)", flush=True)

    from utils.quantize import debugger

    if not args.dataset and not args.float:
        print(f"warning: no --dataset: calibrating on the {len(dataset)} sample photos in {REPO_SAMPLES}. "
              "Output ranges then fit those photos only; pass --dataset with ~100 images like "
              "the ones you will run on", file=sys.stderr)
    settings = Settings(num_samples=args.num_samples, augment=not args.no_augment, method=args.calibration,
                        io_type=args.io_type, quantize=not args.float,
                        head_range=None if args.no_fixed_range else args.output_range, post=post, labels=labels,
                        labels_file=args.classes,
                        anchors=args.anchors, eval_images=eval_images, debug_layers=args.debug_layers)
    warn = lambda line: print(line, file=sys.stderr if line.startswith("warning:") else sys.stdout)  # noqa: E731
    report = quantize_model(args.model, args.output, dataset, settings, log=warn)
    if report.auto:
        print(report.auto.format())
    if report.tiny_images:
        print(f"warning: dataset: {len(report.tiny_images)} of the {report.images_read} calibration images are under "
              f"a quarter of the network input {report.meta.input_size[0]}x{report.meta.input_size[1]} on both sides "
              f"(e.g. {report.tiny_images[0]}); ranges calibrated on them fit blurs, not your camera: is --dataset "
              "the right directory?", file=sys.stderr)
    print(report.summary())
    if args.float:
        print("This float model is a reference for the CPU, not for the Edge TPU (which runs int8 models only).")
        return 0
    if report.head_errors:
        clipped = (f", reference clipped to [{report.head_range[0]:g}, {report.head_range[1]:g}]"
                   if report.head_range else "")
        print(f"Quantization error on {plural(report.fidelity.images, 'image')} (dequantized int8 heads vs the "
              f"float Keras model{clipped}):")
        for grid, mean, peak in report.head_errors:
            print(f"  head {grid[0]}x{grid[1]}: mean |d| {mean:.4f}, max |d| {peak:.4f}")
    print(report.fidelity.format())
    if report.layer_errors:
        from utils.quantize.debug_plot import layer_error_chart
        print(debugger.format_errors(report.layer_errors, args.debug_layers))
        layer_error_chart(report.layer_errors, chart, f"Per-layer int8 error of {args.output.name} "
                          f"({report.method} calibration, {args.num_samples} samples)")
        print(f"wrote {chart} (every layer's int8 error, in network order)")
    print(f"peak memory {report.peak_mib:.0f} MiB\n" if report.peak_mib is not None else "")
    edgetpu = report.edgetpu  # the verdict last: what a user acts on
    print(edgetpu.brief() if edgetpu.keeps_leaky_relu and not args.strict else edgetpu.format())
    return 1 if args.strict and not edgetpu.all_mapped else 0


if __name__ == "__main__":
    run_cli(main)
