#!/usr/bin/env python3
"""Run a YOLO .tflite model on images, a video or a camera, on the CPU or a Coral Edge TPU.

    python inference.py --model out/yolov3-tiny.tflite --classes model_data/coco.names --image model_data/samples/dog.jpg
    python inference.py --model out/yolov3-tiny_edgetpu.tflite --classes model_data/coco.names --edge_tpu --cam 0

Anchors and masks come from the model's embedded metadata (written by keras_to_tflite_quant.py);
--anchors is needed only for models without it. Detections follow Darknet: objectness x class
probability above -t, every class kept, per-class NMS.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from utils.errors import UserError, run_cli


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--model", required=True, type=Path, help=".tflite model (or _edgetpu.tflite with --edge_tpu)")
    parser.add_argument("--anchors", type=Path, help="anchors: classic 'w,h, w,h, ...' file or a _yolo.json "
                        "(only for models without embedded metadata)")
    parser.add_argument("--classes", required=True, type=Path, help="class names, one per line")
    parser.add_argument("-t", "--threshold", type=float, default=0.25, help="score threshold (default: %(default)s)")
    parser.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (default: %(default)s)")
    parser.add_argument("--edge_tpu", action="store_true", help="run on a Coral Edge TPU (needs libedgetpu)")
    parser.add_argument("--device", help="Edge TPU device, e.g. usb:0 or pci:0 (default: the first found)")
    parser.add_argument("--quant", action="store_true", help="expect a quantized model (checked against the model)")
    parser.add_argument("--runtime", choices=("auto", "litert", "tflite_runtime", "tensorflow"), default="auto",
                        help="TFLite runtime (default: LiteRT, falling back to tflite_runtime, then TensorFlow)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads for the interpreter and the pre-processing (default: all %(default)s cores)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--cam", nargs="?", const=0, type=int, metavar="INDEX", help="camera index (default: 0)")
    source.add_argument("--image", nargs="+", metavar="PATH", help="image files or directories")
    source.add_argument("--video", type=Path, help="video file")
    parser.add_argument("--output", type=Path, help="save annotated results: an image file or directory, or a video file")
    parser.add_argument("--json", action="store_true", help="one JSON object per image/frame on stdout")
    parser.add_argument("--no-display", action="store_true", help="never open a window")
    args = parser.parse_args()
    if not 0 < args.threshold < 1:
        parser.error("-t must be between 0 and 1")
    if not 0 < args.iou <= 1:
        parser.error("--iou must be in (0, 1]")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def load(args: argparse.Namespace):
    from utils.detector import Detector, check_classes, read_class_names, resolve_meta
    from utils.runtime import Model

    names = read_class_names(args.classes)
    model = Model(args.model, args.runtime, args.threads, args.edge_tpu, args.device)
    if args.quant and not model.quantized:
        raise UserError(f"--quant given, but model {args.model} has a float32 input: quantize it with "
                        "keras_to_tflite_quant.py or drop --quant")
    if args.edge_tpu and not model.compiled:
        print(f"warning: {args.model} is not compiled for the Edge TPU, so it runs on the CPU; compile it "
              "with edgetpu_compiler", file=sys.stderr)
    meta = resolve_meta(model, args.anchors)
    check_classes(meta, names, args.classes)
    return Detector(model, meta, args.threshold, args.iou), names


def record(frame, detections, timing, names) -> dict:
    return {"source": frame.source, "frame": frame.index,
            "detections": [{"class_id": int(c), "label": names[c], "score": round(float(s), 4),
                            "box": [round(float(v), 1) for v in b]}
                           for b, s, c in zip(detections.boxes, detections.scores, detections.class_ids)],
            "ms": {"pre": round(timing.pre, 3), "invoke": round(timing.invoke, 3), "post": round(timing.post, 3)}}


def main() -> None:
    args = parse_args()
    from utils import media
    from utils.images import find_images
    from utils.draw import draw_detections, draw_fps

    log = (lambda message: print(message, file=sys.stderr)) if args.json else print
    if args.image:
        paths = find_images(args.image)
        frames, sink, stream = media.image_frames(paths), None, False
    else:
        target = str(args.video) if args.video else args.cam
        if args.video and not args.video.is_file():
            raise UserError(f"video {args.video}: no such file")
        capture = media.open_capture(target, "video" if args.video else "camera")
        fps_in, frame_count = media.video_properties(capture)
        frames, stream = media.capture_frames(capture, str(target)), True
        sink = media.VideoSink(args.output, fps_in) if args.output else None
    detector, names = load(args)
    display = not args.no_display and media.display_available()

    totals, count, started = [0.0, 0.0, 0.0], 0, time.perf_counter()
    try:
        for frame in frames:
            detections, timing = detector(frame.image)
            count += 1
            totals = [totals[0] + timing.pre, totals[1] + timing.invoke, totals[2] + timing.post]
            if args.json:
                print(json.dumps(record(frame, detections, timing, names)), flush=True)
            elif not stream:
                found = ", ".join(f"{names[c]} {s:.2f} [{', '.join(f'{v:.0f}' for v in b)}]"
                                  for b, s, c in zip(detections.boxes, detections.scores, detections.class_ids))
                print(f"{frame.source}: {found or 'nothing found'}  ({timing.total:.1f} ms)")
            if not (sink or display or (args.output and not stream)):
                continue
            annotated = draw_detections(frame.image, detections, names)
            if stream:
                draw_fps(annotated, count / (time.perf_counter() - started))
            if sink:
                sink.write(annotated)
            elif args.output:
                out = media.image_output_path(args.output, frame.source, len(paths) > 1)
                media.write_image(out, annotated)
                log(f"wrote {out}")
            if display and not media.show(annotated):
                break
            if stream and not args.json and count % 100 == 0:
                log(f"{count}{f'/{frame_count}' if args.video and frame_count else ''} frames")
    except KeyboardInterrupt:
        log("interrupted: finishing the output")
    finally:
        if sink:
            sink.close()
    elapsed = time.perf_counter() - started
    if count:
        pre, invoke, post = (t / count for t in totals)
        log(f"{count} {'frames' if stream else 'images'}: pre {pre:.2f} ms, invoke {invoke:.2f} ms, "
            f"post {post:.2f} ms per frame; {count / elapsed:.1f} FPS overall ({detector.model.runtime}"
            f"{', Edge TPU' if args.edge_tpu else ''})")
    if sink and sink.frames:
        log(f"wrote {args.output} ({sink.frames} frames)")


if __name__ == "__main__":
    run_cli(main)
