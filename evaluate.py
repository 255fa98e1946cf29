#!/usr/bin/env python3
"""Measure the accuracy of one or more models on labelled images: mAP@0.5 as Darknet's `detector map`
computes it, COCO's mAP@[.5:.95], and precision/recall at a threshold, side by side.

    python evaluate.py --model out/yolov3-tiny-cpu.tflite --model out/yolov3-tiny-tpu.tflite \\
        --reference out/yolov3-tiny-cpu.h5 --classes model_data/coco.names \\
        --images model_data/samples --plots out/plots
    python evaluate.py --model out/yolov3-tiny-cpu.tflite --data YOUR.data
    python evaluate.py --model out/yolov3-tiny-cpu.tflite --classes model_data/coco.names \\
        --coco YOUR_instances.json --images YOUR_val2017/

Ground truth: YOLO .txt labels (`class cx cy w h`, relative) found as Darknet finds them (images/ ->
labels/, else beside the image), a Darknet .data file (valid= and names=), a COCO instances file,
or with --reference another model's detections ("agreement": what int8 or the Edge TPU costs
against the float model, without labels). Detections are collected above 0.005 (Darknet's map
does the same), with inference.py's pre- and post-processing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from utils.console import add_verbose, plural, quiet_libraries
from utils.errors import ArgumentParser, UserError, run_cli
from utils.runtime.interpreters import KERNELS, RUNTIMES
from utils.yolo.options import iou_problem, threshold_problem
from utils.yolo.types import RESIZE_MODES


def parse_args() -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                            epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--model", action="append", required=True, type=Path,
                        help="a model to evaluate (.tflite, _edgetpu.tflite with --edge_tpu, or a float .h5/.keras); "
                             "repeat for several")
    parser.add_argument("--classes", type=Path, help="class names, one per line (default: names= of --data)")
    truth = parser.add_mutually_exclusive_group()
    truth.add_argument("--data", type=Path, help="a Darknet .data file: valid= (image list) and names=")
    truth.add_argument("--coco", type=Path, help="a COCO instances JSON; its images under --images DIR")
    truth.add_argument("--reference", type=Path, help="a model whose detections (at --reference-threshold) are "
                       "the ground truth")
    parser.add_argument("--images", nargs="+", help="image files, directories, globs or a Darknet list .txt")
    parser.add_argument("--reference-threshold", type=float, default=0.25,
                        help="score threshold of the --reference detections (default: %(default)s)")
    parser.add_argument("-t", "--threshold", type=float, default=0.25,
                        help="threshold for precision, recall and F1 (Darknet's -thresh; default: %(default)s)")
    parser.add_argument("--iou", type=float, help="NMS IoU threshold (default: 0.45, as Darknet; a --outputs "
                        "detections model applies its own)")
    parser.add_argument("--resize", choices=(*RESIZE_MODES, "both"),
                        help="how images become the input: letterbox or stretch (default: each model's own); "
                             "'both' scores each model both ways, to see which one it was trained with")
    parser.add_argument("--runtime", choices=("auto", *RUNTIMES), default="auto", help="TFLite runtime")
    parser.add_argument("--kernels", choices=(*KERNELS, "all"),
                        help="CPU kernels; 'all' evaluates each .tflite under every set and reports the spread")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads (default: %(default)s)")
    parser.add_argument("--edge_tpu", action="store_true", help="run the models on an Edge TPU")
    parser.add_argument("--device", help="Edge TPU device (usb:0, pci:0)")
    parser.add_argument("--json", action="store_true", help="the results as one JSON object on stdout (with each "
                        "model's precision-recall curve points, overall and per class)")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="precision-recall curves as PNG files in DIR: one "
                        "figure per model (all classes, then each class), and one with the models overlaid "
                        "(needs matplotlib: requirements-convert.txt)")
    add_verbose(parser)
    parser.epilog += ("\n\nExit status: 0 done; 1 some images could not be read (skipped, each named on\n"
                      "stderr), or none could (nothing evaluated); 2 bad input, nothing done, or stdout could not\n"
                      "be written.")
    args = parser.parse_args()
    if args.data is None and not args.images:
        parser.error("give --images (with labels beside them, --coco or --reference) or --data")
    if args.data is not None and args.images:
        parser.error("--data names its own images (valid=): drop --images")
    if args.classes is None and args.data is None:
        parser.error("give --classes (or --data, whose names= it uses)")
    problem = (threshold_problem(args.threshold, "--threshold") or (args.iou is not None and iou_problem(args.iou, "--iou"))
               or threshold_problem(args.reference_threshold, "--reference-threshold"))
    if problem:
        parser.error(problem)
    if not 1 <= args.threads <= 4 * (os.cpu_count() or 1):
        parser.error(f"--threads must be between 1 and {4 * (os.cpu_count() or 1)}")
    if args.device and not args.edge_tpu:
        parser.error("--device names an Edge TPU: add --edge_tpu")
    if args.edge_tpu and args.kernels == "all":
        parser.error("--kernels all is for the CPU; drop --edge_tpu")
    return args


def main() -> int:
    args = parse_args()
    quiet_libraries(args.verbose)
    from utils.evaluation import datasets
    from utils.evaluation import runner as evaluation
    from utils.files import require_file
    from utils.yolo.detector import Detector, read_class_names

    log = (lambda message: print(message, file=sys.stderr)) if args.json else print
    if args.plots is not None:  # before the work: a place that cannot be written, or no matplotlib
        from utils.files import check_writable
        from utils.plotting import pyplot
        if args.plots.exists() and not args.plots.is_dir():
            raise UserError(f"--plots {args.plots}: exists and is not a directory")
        check_writable(args.plots / "pr.png")
        pyplot()
    if args.data is not None:
        valid, names_path = datasets.read_data_file(require_file(args.data, "data file"))
        images = datasets.image_list(require_file(valid, "image list"))
    else:
        images = datasets.find_dataset_images(args.images) if args.coco is None else []
        names_path = args.classes
    names = read_class_names(args.classes or names_path)
    if args.coco is not None:
        if len(args.images) != 1 or not Path(args.images[0]).is_dir():
            raise UserError(f"--images {' '.join(args.images)}: with --coco, give the one directory of its images")
        truths, unknown, zero_area = datasets.coco_truths(require_file(args.coco, "annotations"),
                                                          Path(args.images[0]), names)
        if unknown:
            print(f"warning: {len(unknown)} COCO categories have no class of that name and are left out: "
                  f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}", file=sys.stderr)
    elif args.reference is not None:
        truths, zero_area = [datasets.Truth.empty(path) for path in images], 0  # the reference's detections
    else:
        truths, zero_area = datasets.darknet_truths(images, len(names))
    if zero_area:
        print(f"warning: {plural(zero_area, 'box')} of zero width or height left out of the ground truth (such a "
              "box can never be matched)", file=sys.stderr)

    options = dict(threshold=evaluation.COLLECT_THRESHOLD, iou=args.iou, runtime=args.runtime, threads=args.threads,
                   edge_tpu=args.edge_tpu, device=args.device)
    runs = []
    for path in args.model:
        tflite = path.suffix.lower() == ".tflite"
        for kernels in (KERNELS if args.kernels == "all" and tflite else [None if args.kernels == "all" else args.kernels]):
            for resize in (RESIZE_MODES if args.resize == "both" else [args.resize]):
                detector = Detector(path, args.classes or names_path, **options, kernels=kernels, resize=resize)
                shown = f", {detector.meta.resize}" if args.resize else ""
                runs.append(evaluation.Run(f"{path} ({detector.engine.description}{shown})", detector, []))
    reference = None
    if args.reference is not None:
        reference = Detector(args.reference, args.classes or names_path, **{**options, "threshold": args.reference_threshold})
    result = evaluation.run(runs, truths, len(names), args.threshold, reference)
    if not result.images:  # every image named was unreadable: the summary, one line, exit status 1
        print(f"0 images, {len(result.unreadable)} unreadable (exit status 1)", file=sys.stderr)
        print(f"{os.path.basename(sys.argv[0])}: nothing evaluated: no image could be read", file=sys.stderr)
        return 1
    readable = [truth for truth in truths if truth.image not in result.unreadable]
    if reference is None and args.coco is None and not any(truth.labelled for truth in readable):
        first = readable[0].image
        print(f"{plural(result.images, 'image')}, none with a label file (exit status 1)", file=sys.stderr)
        print(f"{os.path.basename(sys.argv[0])}: nothing evaluated: no label file for any image (Darknet's layout: "
              f"{datasets.label_path(first)} for {first})", file=sys.stderr)
        return 1

    source = (f"agreement with {args.reference} (its {plural(result.objects, 'detection')} at {args.reference_threshold:g})"
              if reference is not None
              else plural(result.objects, "labelled object"))
    notes = [f"{len(result.unreadable)} unreadable"] if result.unreadable else []
    if result.unlabelled:
        notes.append(f"{result.unlabelled} without a label file (no objects)")
    if args.json:
        print(json.dumps(evaluation.to_json(result, names)))
    else:
        print(f"{plural(result.images, 'image')}, {source}{'; ' + ', '.join(notes) if notes else ''}; IoU 0.5, scores from "
              f"{evaluation.COLLECT_THRESHOLD}")
        print(evaluation.format_table(result, names, args.threshold))
        for line in evaluation.kernel_spread(result):
            print(line)
    if args.plots is not None:
        from utils.evaluation.plots import write_plots
        for path in write_plots(result, names, args.plots):
            log(f"wrote {path}")
    if result.unreadable:
        log(f"{plural(len(truths), 'image')}, {len(result.unreadable)} unreadable (exit status 1)")
        return 1
    return 0


if __name__ == "__main__":
    run_cli(main)
