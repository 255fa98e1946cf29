#!/usr/bin/env python3
"""Convert a Darknet YOLO model (cfg + weights) into a Keras model for quantization and the Edge TPU.

    python convert.py model_data/yolov3-tiny.cfg "$(python -m utils.fetch_weights)" \\
        out/yolov3-tiny-tpu.h5 --leaky prelu

Writes OUT (.h5 or .keras), OUT_anchors.txt (classic one-line anchors) and OUT_yolo.json
(anchors, masks, classes, input size, scale_x_y, resize mode: what the quantizer and inference.py
need).

The resize mode is how Darknet fed the model its images: "letterbox" (Darknet 2018, letter_box=1)
or "stretch" (AlexeyAB's and Hank.ai's Darknet). By default it is read from the files: letter_box
in the cfg, then the weights header (0.2.5: a fork), then fork-only cfg options.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from utils.console import add_verbose, quiet_libraries
from utils.errors import ArgumentParser, UserError, run_cli
from utils.yolo.types import RESIZE_MODES


def parse_size(text: str) -> tuple[int, int]:
    """``416`` or ``WIDTHxHEIGHT``, each a positive multiple of 32."""
    parts = text.lower().split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not N or WIDTHxHEIGHT") from None
    size = size * 2 if len(size) == 1 else size
    if len(size) != 2 or min(size) <= 0 or any(s % 32 for s in size):
        raise argparse.ArgumentTypeError(f"'{text}': width and height must be positive multiples of 32")
    return size


def parse_args() -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("cfg", type=Path, help="Darknet .cfg file")
    parser.add_argument("weights", type=Path, help="Darknet .weights file")
    parser.add_argument("output", type=Path, help="Keras model to write (.h5 or .keras)")
    parser.add_argument("--input-size", type=parse_size, metavar="WxH",
                        help="network input size, multiples of 32 (default: width/height of [net])")
    parser.add_argument("--leaky", choices=("keep", "relu", "prelu"), default="keep",
                        help="leaky ReLU handling: keep it (fast on CPU, not on the Edge TPU), "
                             "prelu (exact, Edge TPU-legal), relu (needs retraining) (default: %(default)s)")
    parser.add_argument("--resize", choices=RESIZE_MODES,
                        help="how images become the input: letterbox (Darknet 2018) or stretch (AlexeyAB's and "
                             "Hank.ai's Darknet) (default: read from the cfg and weights)")
    add_verbose(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    quiet_libraries(args.verbose)
    from utils.darknet.cfg import conv_layouts, parse_cfg
    from utils.darknet.resize_rule import resize_mode
    from utils.darknet.weights import read_weights
    from utils.files import check_output, check_writable, require_file
    from utils.yolo.meta import sidecar_paths

    require_file(args.cfg, "cfg")
    require_file(args.weights, "weights")
    if args.output.suffix.lower() not in (".h5", ".keras"):
        raise UserError(f"output {args.output}: the name must end in .h5 or .keras")
    for output in (args.output, *sidecar_paths(args.output)):
        check_output(output, [args.cfg, args.weights])
    check_writable(args.output)
    sections = parse_cfg(args.cfg)
    net = sections[0]
    input_size = args.input_size or (net.int("width", 416), net.int("height", 416))
    if any(s % 32 for s in input_size):
        raise UserError(f"cfg {args.cfg}: input size {input_size[0]}x{input_size[1]} is not a multiple of 32")
    weights = read_weights(args.weights, conv_layouts(sections))
    resize = (args.resize, "chosen with --resize") if args.resize else resize_mode(sections, args.weights)
    if args.leaky == "relu" and any(s.options.get("activation") == "leaky" for s in sections):
        print("warning: --leaky relu replaces the trained leaky ReLU; pretrained weights then need "
              "retraining (use --leaky prelu to keep them exact on the Edge TPU)", file=sys.stderr)

    import utils.darknet.conversion as conversion

    started = time.perf_counter()
    report = conversion.convert(sections, weights, input_size, args.leaky, args.output, resize)
    print(report.summary(time.perf_counter() - started))


if __name__ == "__main__":
    run_cli(main)
