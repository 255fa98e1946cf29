#!/usr/bin/env python3
"""Run a YOLO model on images, a video, a camera or a network stream, on the CPU or a Coral Edge TPU.

    python inference.py --model out/yolov3-tiny-cpu.tflite --classes model_data/coco.names \\
        --image model_data/samples/dog.jpg
    python inference.py --model out/yolov3-tiny-tpu_edgetpu.tflite --classes model_data/coco.names \\
        --edge_tpu --cam 0 --serve 0.0.0.0:8080
    python inference.py --model out/yolov3-tiny-tpu_edgetpu.tflite --classes model_data/coco.names \\
        --edge_tpu --device all --video model_data/samples/clip.mp4

The model is a .tflite from keras_to_tflite_quant.py (its _edgetpu.tflite with --edge_tpu), or a
float .h5/.keras from convert.py (needs TensorFlow: requirements-convert.txt). Anchors, masks and
the resize mode come from the model's embedded metadata; --anchors is needed only for models
without it. Detections follow Darknet: objectness x class probability above -t, every class kept,
per-class NMS.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path

from utils.console import add_verbose, plural, quiet_libraries
from utils.errors import ArgumentParser, UserError, run_cli
from utils.runtime.edgetpu import device_names
from utils.runtime.interpreters import KERNELS
from utils.yolo.options import iou_problem, reconnect_problem, threshold_problem
from utils.yolo.types import RESIZE_MODES

MAX_THREADS = 4 * (os.cpu_count() or 1)

EPILOG = """
Live view: --serve 8080 serves a web page on http://127.0.0.1:8080/ with the annotated frames,
the detections, frames per second, stage times and the Edge TPU's events. --serve 0.0.0.0:8080
opens it to the network: every request then needs a token (made and printed at start, or
--serve-token). A slow or stalled viewer never slows the run; the page says when a file ends.

Progress: a camera or stream prints a status line on stderr once it is open, then every 5 s
(frames, fps, detections, faults). A video file shows a progress bar on a terminal, a line per
100 frames otherwise.

Edge TPU faults: an invoke that fails is retried once on the same device. If it fails again, the
device is closed and its frames go to the other --device entries (or wait), in order, none lost or
doubled. It is reopened after 0.5, 1, 2 ... 8 s; --reconnect N caps the attempts. With no device
left the run ends with exit status 1, its outputs complete. One stderr line per event; --json
marks a frame that failed first with failed_on and ms.lost.

Exit status: 0 done; 1 some images could not be read (each named on stderr, the others
processed), a live stream did not come back or no Edge TPU was left; 2 bad input, nothing done, or
an output (stdout included) could not be written; 130, 143, 129 stopped by SIGINT (Ctrl-C),
SIGTERM or SIGHUP: the frame in hand is finished and every output closed and renamed, a second
signal stops at once; 141 stdout closed by its reader. A recording whose name exists is never
replaced: NAME-2.mp4, or the segments' numbering goes on."""


def parse_args() -> argparse.Namespace:
    intro, examples = __doc__.split("\n\n", 1)
    parser = ArgumentParser(description=intro,
                            epilog=examples.rstrip() + "\n" + EPILOG)
    parser.add_argument("--model", type=Path, help=".tflite model (its _edgetpu.tflite with --edge_tpu), or a float "
                        ".h5/.keras from convert.py (needs TensorFlow)")
    parser.add_argument("--anchors", type=Path, help="anchors: classic 'w,h, w,h, ...' file or a _yolo.json "
                        "(only for models without embedded metadata)")
    parser.add_argument("--classes", type=Path, help="class names, one per line (optional for a --outputs "
                        "detections model: its names are packed in it)")
    parser.add_argument("-t", "--threshold", type=float, default=0.25, help="score threshold (default: %(default)s)")
    parser.add_argument("--iou", type=float, help="NMS IoU threshold (default: 0.45, as Darknet; a --outputs "
                        "detections model applies its own)")
    parser.add_argument("--nms", choices=("greedy", "diou"), help="NMS rule: greedy (Darknet's do_nms_sort, IoU) "
                        "or diou (diounms_sort, for models whose [yolo] sets nms_kind) (default: the model's own)")
    parser.add_argument("--resize", choices=RESIZE_MODES, help="how an image becomes the input: letterbox "
                        "(Darknet 2018) or stretch (AlexeyAB's and Hank.ai's Darknet) (default: the model's own, "
                        "as convert.py recorded it)")
    parser.add_argument("--edge_tpu", action="store_true", help="run on a Coral Edge TPU (needs libedgetpu)")
    parser.add_argument("--device", help="Edge TPU(s): usb:0, pci:0, a list usb:0,usb:1 (each device takes the "
                        "next frame when free, results stay in order) or all (default: the first found)")
    parser.add_argument("--list-devices", action="store_true", help="print the Edge TPUs the runtime sees and exit")
    parser.add_argument("--quant", action="store_true", help="expect a quantized model (checked against the model)")
    parser.add_argument("--runtime", choices=("auto", "litert", "tflite_runtime", "tensorflow"), default="auto",
                        help="TFLite runtime (default: LiteRT, falling back to tflite_runtime, then TensorFlow)")
    parser.add_argument("--kernels", choices=KERNELS, help="CPU kernels: xnnpack (fastest), builtin (TFLite's "
                        "own; tflite_runtime's only int8 kernels) or reference (slow); int8 results differ "
                        "slightly between them (default: xnnpack, builtin on tflite_runtime)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help=f"CPU threads for the interpreter and the pre-processing, 1 to {MAX_THREADS} "
                             "(4 x the cores) (default: all %(default)s cores)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--cam", nargs="?", const="0", metavar="INDEX|DEVICE",
                        help="camera index or device path such as /dev/video2 (default: 0)")
    source.add_argument("--image", nargs="+", metavar="PATH", help="image files, directories (searched "
                        "recursively) or globs such as 'photos/*.jpg' (quoted: the script expands them)")
    source.add_argument("--video", metavar="FILE|URL", help="video file, or a network stream: rtsp://, rtsps://, "
                        "http(s):// (MJPEG); credentials in the URL are never printed")
    parser.add_argument("--reconnect", type=int, metavar="N", help="attempts to reopen a live source (camera or "
                        "stream) or an Edge TPU that drops, with backoff from 0.5 s up to 8 s (default: keep "
                        "trying; file sources: never)")
    parser.add_argument("--segment-minutes", type=float, metavar="M", help="write --output video in complete files "
                        "of M minutes each (NAME_0001.mp4, ...), so a days-long run never holds one growing file")
    parser.add_argument("--output", metavar="PATH", help="save annotated results: an image file, a directory (the "
                        "source tree mirrored under it), or a video file; never one of the sources")
    parser.add_argument("--save-txt", type=Path, metavar="DIR", help="with --image: Darknet label files "
                        "('class cx cy w h', relative) of the detections, the source tree mirrored under DIR, "
                        "for evaluate.py or as pseudo-labels for Darknet")
    parser.add_argument("--json", action="store_true", help="one JSON object per image/frame on stdout")
    parser.add_argument("--serve", metavar="[HOST:]PORT", help="live view in a web browser: 8080 (this machine "
                        "only), 0.0.0.0:8080 (the network, with a token) or 0 (a free port)")
    parser.add_argument("--serve-token", metavar="TOKEN", help="the token --serve beyond localhost requires "
                        "(default: a new random one, printed at start)")
    parser.add_argument("--no-display", action="store_true", help="never open a window")
    add_verbose(parser)
    args = parser.parse_args()
    if args.list_devices:
        return args
    missing = [flag for flag, value in (("--model", args.model),) if value is None]
    if not (args.cam is not None or args.image or args.video):
        missing.append("one of --cam, --image, --video")
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    if args.device and not args.edge_tpu:
        parser.error("--device names an Edge TPU: add --edge_tpu")
    if args.output is not None:
        args.output = output_path(parser, args.output)
    if args.segment_minutes is not None and not (args.segment_minutes > 0 and args.output and not args.image):
        parser.error("--segment-minutes needs a positive number of minutes and a video --output")
    if args.save_txt and not args.image:
        parser.error("--save-txt writes one label file per image: use it with --image")
    if args.serve_token is not None and args.serve is None:
        parser.error("--serve-token is the live view's token: add --serve [HOST:]PORT")
    if args.device:
        try:
            device_names(args.device)
        except UserError as error:
            parser.error(str(error))
    problem = (threshold_problem(args.threshold, "-t") or (args.iou is not None and iou_problem(args.iou, "--iou"))
               or reconnect_problem(args.reconnect, "--reconnect"))
    if problem:
        parser.error(problem)
    if not 1 <= args.threads <= MAX_THREADS:
        parser.error(f"--threads must be between 1 and {MAX_THREADS}")
    return args


def output_path(parser: ArgumentParser, text: str) -> Path:
    """``--output`` is a file or a directory; a URL is refused, named as given (credentials masked)."""
    if "://" in text:
        from utils.media.streams import masked

        parser.error(f"--output {masked(text)}: outputs are files or directories; to watch the run from "
                     "elsewhere, use --serve [HOST:]PORT (a web page), or --json for the detections")
    return Path(text)


def list_devices() -> int:
    from utils.runtime.edgetpu import library_name, list_devices

    devices = list_devices()
    for name, path in devices:
        print(f"{name}\t{path}")
    print(f"{plural(len(devices), 'Edge TPU')} ({library_name()})", file=sys.stderr)
    return 0


def main() -> int:
    args = parse_args()
    quiet_libraries(args.verbose)
    if args.list_devices:
        return list_devices()
    from utils.app.run import InferenceOptions, run

    options = InferenceOptions(**{f.name: getattr(args, f.name) for f in fields(InferenceOptions) if hasattr(args, f.name)},
                               display=not args.no_display)
    return run(options)


if __name__ == "__main__":
    run_cli(main)
