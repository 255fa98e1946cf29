"""``python -m utils.quant_debug``: which layer loses accuracy in int8 (the code is ``utils.quantize.debugger``).

    python -m utils.quant_debug MODEL.h5 [MODEL.tflite] --dataset IMAGES... [--num-samples N] [--top K]
        [--calibration METHOD] [--plot FILE.png]
"""
from __future__ import annotations

import sys
from pathlib import Path

from utils.console import add_verbose, progress, quiet_libraries
from utils.errors import ArgumentParser, UserError, run_cli
from utils.quantize import debugger
from utils.quantize.ranges import CALIBRATION_HELP, DEFAULT_METHOD, method_argument


def main() -> None:
    parser = ArgumentParser(description=debugger.__doc__.split("\n\n")[0])
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
    errors = debugger.layer_errors(model, samples.dataset(meta.input_size, meta.resize, debugger.debug_progress(progress)),
                          method=args.calibration)
    if not errors:
        raise UserError(f"dataset: none of the {len(paths)} images could be decoded")
    print(debugger.format_errors(errors, args.top))
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
    run_cli(main)
