#!/usr/bin/env python3
"""Run a YOLO .tflite model on images, a video or a camera, on the CPU or a Coral Edge TPU.

    python inference.py --model out/yolov3-tiny-cpu.tflite --classes model_data/coco.names --image model_data/samples/dog.jpg
    python inference.py --model out/yolov3-tiny-tpu_edgetpu.tflite --classes model_data/coco.names --edge_tpu --cam 0
    python inference.py --model out/yolov3-tiny-tpu_edgetpu.tflite --classes model_data/coco.names --edge_tpu \\
        --device all --video model_data/samples/clip.mp4

Anchors and masks come from the model's embedded metadata (written by keras_to_tflite_quant.py);
--anchors is needed only for models without it. Detections follow Darknet: objectness x class
probability above -t, every class kept, per-class NMS.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

from utils.console import add_verbose, plural, quiet_libraries
from utils.errors import ArgumentParser, DeviceError, UserError, run_cli
from utils.runtime.edgetpu import device_names
from utils.runtime.interpreters import KERNELS
from utils.stopping import graceful_stop, signal_name
from utils.yolo.options import iou_problem, reconnect_problem, threshold_problem
from utils.yolo.types import RESIZE_MODES

MAX_THREADS = 4 * (os.cpu_count() or 1)


def parse_args() -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--model", type=Path, help=".tflite model (or _edgetpu.tflite with --edge_tpu)")
    parser.add_argument("--anchors", type=Path, help="anchors: classic 'w,h, w,h, ...' file or a _yolo.json "
                        "(only for models without embedded metadata)")
    parser.add_argument("--classes", type=Path, help="class names, one per line")
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
    source.add_argument("--image", nargs="+", metavar="PATH", help="image files or directories")
    source.add_argument("--video", metavar="FILE|URL", help="video file, or a network stream: rtsp://, rtsps://, "
                        "http(s):// (MJPEG); credentials in the URL are never printed")
    parser.add_argument("--reconnect", type=int, metavar="N", help="attempts to reopen a live source (camera or "
                        "stream) or an Edge TPU that drops, with backoff from 0.5 s up to 8 s (default: keep "
                        "trying; file sources: never)")
    parser.add_argument("--segment-minutes", type=float, metavar="M", help="write --output video in complete files "
                        "of M minutes each (NAME_0001.mp4, ...), so a days-long run never holds one growing file")
    parser.add_argument("--output", type=Path, help="save annotated results: an image file, a directory (the "
                        "source tree mirrored under it), or a video file; never one of the sources")
    parser.add_argument("--save-txt", type=Path, metavar="DIR", help="with --image: Darknet label files "
                        "('class cx cy w h', relative) of the detections, the source tree mirrored under DIR, "
                        "for evaluate.py or as pseudo-labels for Darknet")
    parser.add_argument("--json", action="store_true", help="one JSON object per image/frame on stdout")
    parser.add_argument("--no-display", action="store_true", help="never open a window")
    add_verbose(parser)
    parser.epilog += ("\n\nEdge TPU faults: an invoke that fails is retried once on the same device. If it fails "
                      "again,\nthe device is closed and its frames go to the other --device entries (or wait), in "
                      "order,\nnone lost or doubled. It is reopened after 0.5, 1, 2 ... 8 s; --reconnect N caps the "
                      "attempts.\nWith no device left the run ends with exit status 1, its outputs complete. One "
                      "stderr line\nper event; --json marks a frame that failed first with failed_on and ms.lost.")
    parser.epilog += ("\n\nExit status: 0 done; 1 some images could not be read (each named on stderr, the "
                      "others processed), a live stream did not come back or no Edge TPU was left; 2 bad input, nothing done, or an "
                      "output (stdout included) could not be written; 130, 143, 129 stopped by SIGINT (Ctrl-C), SIGTERM or SIGHUP:\n"
                      "the frame in hand is finished and every output closed and renamed, a second signal stops at "
                      "once;\n141 stdout closed by its reader. A recording whose name exists is never replaced: "
                      "NAME-2.mp4, or\nthe segments' numbering goes on.")
    args = parser.parse_args()
    if args.list_devices:
        return args
    missing = [flag for flag, value in (("--model", args.model), ("--classes", args.classes)) if value is None]
    if not (args.cam is not None or args.image or args.video):
        missing.append("one of --cam, --image, --video")
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    if args.device and not args.edge_tpu:
        parser.error("--device names an Edge TPU: add --edge_tpu")
    if args.segment_minutes is not None and not (args.segment_minutes > 0 and args.output and not args.image):
        parser.error("--segment-minutes needs a positive number of minutes and a video --output")
    if args.save_txt and not args.image:
        parser.error("--save-txt writes one label file per image: use it with --image")
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


def load(args: argparse.Namespace):
    from utils.yolo.detector import Detector

    detector = Detector(args.model, args.classes, args.threshold, args.iou, runtime=args.runtime,
                        kernels=args.kernels, threads=args.threads, edge_tpu=args.edge_tpu, device=args.device,
                        anchors=args.anchors, nms=args.nms, reconnect=args.reconnect, resize=args.resize)
    if args.quant and not detector.engine.quantized:
        raise UserError(f"--quant given, but model {args.model} has a float32 input: quantize it with "
                        "keras_to_tflite_quant.py or drop --quant")
    if args.edge_tpu and not detector.engine.compiled:
        print(f"warning: {args.model} is not compiled for the Edge TPU, so it runs on the CPU; compile it "
              "with edgetpu_compiler", file=sys.stderr)
    return detector, detector.names


def list_devices() -> int:
    from utils.runtime.edgetpu import library_name, list_devices

    devices = list_devices()
    for name, path in devices:
        print(f"{name}\t{path}")
    print(f"{len(devices)} Edge TPU{'s' if len(devices) != 1 else ''} ({library_name()})", file=sys.stderr)
    return 0


def record(frame, detections, timing, names) -> dict:
    ms = {"pre": round(timing.pre, 3), "invoke": round(timing.invoke, 3), "post": round(timing.post, 3)}
    if timing.setup:
        ms["setup"] = round(timing.setup, 3)
    if timing.failed_on:
        ms["lost"] = round(timing.lost, 3)
    device = {"device": timing.device} if timing.device else {}
    if timing.failed_on:
        device["failed_on"] = timing.failed_on
    stamp = ({"time": datetime.fromtimestamp(frame.time, timezone.utc).isoformat(timespec="milliseconds")}
             if frame.time is not None else {})
    return {"source": frame.source, "frame": frame.index, **stamp, **device,
            "detections": [{"class_id": int(c), "label": names[c], "score": round(float(s), 4),
                            "box": [round(float(v), 1) for v in b]}
                           for b, s, c in zip(detections.boxes, detections.scores, detections.class_ids)],
            "ms": ms}


def main() -> int:
    args = parse_args()
    quiet_libraries(args.verbose)
    if args.list_devices:
        return list_devices()
    from utils.evaluation import datasets
    from utils.media import sinks as media
    from utils.media import streams
    from utils.media.frames import image_frames
    from utils.media.images import find_image_entries
    from utils.yolo.draw import draw_detections, draw_fps

    log = (lambda message: print(message, file=sys.stderr)) if args.json else print
    # Every input is checked and every output planned before anything is loaded or written.
    sink, outputs, label_files, unreadable = None, [], [], []
    if args.image:
        entries = find_image_entries(args.image)
        paths = [path for path, _ in entries]
        outputs = media.plan_image_outputs(entries, args.output) if args.output else []
        label_files = datasets.label_outputs(entries, args.save_txt) if args.save_txt else []
        stream = False
    else:
        source = streams.video_source(args.video) if args.video else streams.camera_source(args.cam)
        stream = True
        if args.output:
            inputs = [Path(args.video)] if args.video and not source.live else []
            sink = (media.SegmentedVideoSink(args.output, 30.0, args.segment_minutes, inputs) if args.segment_minutes
                    else media.VideoSink(args.output, 30.0, inputs))
    detector, names = load(args)
    with graceful_stop() as stop, detector:
        if stream:
            video = streams.Stream(source, args.reconnect)
            fps_in, frame_count = video.properties()
            frames = video.frames(stop)
            if sink:
                sink.fps = fps_in
        else:
            frames = image_frames(paths, unreadable)
            destination = dict(zip(map(str, paths), outputs))
            labels_of = dict(zip(map(str, paths), label_files))
        display = not args.no_display and media.display_available()

        totals, setup, count, started = [0.0, 0.0, 0.0], 0.0, 0, time.perf_counter()
        keep_video = False  # an error discards the video; the end, a stop signal or a lost device completes it
        device_lost = None
        try:
            with closing(detector.detect_stream(frames, lambda f: f.image, stop=stop)) as results:
                for frame, detections, timing in results:
                    count += 1
                    totals = [totals[0] + timing.pre, totals[1] + timing.invoke, totals[2] + timing.post]
                    setup += timing.setup
                    if args.json:
                        print(json.dumps(record(frame, detections, timing, names)), flush=True)
                    elif not stream:
                        found = ", ".join(f"{names[c]} {s:.2f} [{', '.join(f'{v:.0f}' for v in b)}]"
                                          for b, s, c in zip(detections.boxes, detections.scores, detections.class_ids))
                        print(f"{frame.source}: {found or 'nothing found'}  ({timing.total:.1f} ms)")
                    if label_files:
                        height, width = frame.image.shape[:2]
                        datasets.write_labels(labels_of[frame.source], datasets.format_labels(detections, width, height))
                    if sink or display or outputs:
                        annotated = draw_detections(frame.image, detections, names)
                        if stream:
                            draw_fps(annotated, count / (time.perf_counter() - started))
                        if sink:
                            sink.write(annotated)
                        elif outputs:
                            media.write_image(destination[frame.source], annotated)
                            log(f"wrote {destination[frame.source]}")
                        if display and not media.show(annotated):
                            break
                    if stream and not args.json and count % 100 == 0:
                        log(f"{count}{f'/{frame_count}' if frame_count and not source.live else ''} frames")
                    if stop.is_set():
                        break
            keep_video = True
        except DeviceError as error:  # every Edge TPU failed and did not come back: the output so far stands
            keep_video, device_lost = True, error
        except KeyboardInterrupt:  # a second stop signal: the output so far still stands
            keep_video = True
            raise
        finally:
            if sink:
                sink.close(keep_video)
                if keep_video and sink.frames:
                    print(f"wrote {sink.describe()}", file=sys.stderr if args.json else sys.stdout)
    done = plural(count, 'frame' if stream else 'image')
    if device_lost:
        print(f"{device_lost}; stopped after {done}" + (", the output is complete up to there" if sink or outputs
                                                        or label_files else "") + " (exit status 1)", file=sys.stderr)
        return 1
    if stop.is_set():
        said = "interrupted" if stop.signum in (None, signal.SIGINT) else f"stopped by {signal_name(stop.signum)}"
        print(f"{said} after {done}" + ("; the outputs are complete up to there" if sink or outputs or label_files
                                        else ""), file=sys.stderr)
        return 128 + (stop.signum or signal.SIGINT)  # 130, 143, 129: the line above says it, once
    elapsed = time.perf_counter() - started
    if count:
        pre, invoke, post = (t / count for t in totals)
        once = f"; set-up, not counted: first invoke {detector.engine.warmup_ms:.1f} ms" + (
            f", resize graphs {setup:.1f} ms" if setup else "")
        log(f"{plural(count, 'frame' if stream else 'image')}: pre {pre:.2f} ms, invoke {invoke:.2f} ms, "
            f"post {post:.2f} ms per frame{once}; {count / elapsed:.1f} FPS overall ({detector.engine.description}"
            f"{', Edge TPU' if args.edge_tpu else ''}), {detector.meta.resize}")
    if label_files and count:
        log(f"wrote {count} label files under {args.save_txt}")
    if args.image:
        summary = f"{plural(len(paths), 'image')}, {len(unreadable)} unreadable"
        if not count:
            raise UserError(f"image {paths[0]}: cannot be read as an image" if len(paths) == 1
                            else f"images: none of the {len(paths)} images could be read")
        if unreadable:
            print(f"{summary} (exit status 1)", file=sys.stderr)
            return 1
        if len(paths) > 1:
            log(summary)
    if stream and video.gave_up:
        print(f"{source.name}: the stream did not come back (exit status 1)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_cli(main)
