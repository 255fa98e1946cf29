#!/usr/bin/env python3
"""Every supported Darknet model on this machine: size, Edge TPU fit, CPU time; and NMS under load.

    python bench/models.py            # all models (about 45 minutes here: it quantizes each twice)
    python bench/models.py --tiny     # Tiny YOLOv3 and YOLOv7-tiny only, few samples

For each cfg: convert (real weights for Tiny YOLOv3, random weights in Darknet's layout for the
others) with --leaky keep and --leaky prelu, quantize both, read the Edge TPU report of the prelu
model, and time the keep model on the CPU (LiteRT, 2 threads, dog.jpg already decoded: letterbox
+ invoke, median over repetitions; decode and NMS depend on the scene and are timed in
bench/bench.py on real weights). Then times NMS on the candidates of an untrained YOLOv7-tiny
(OpenCV's own decoding of random weights), the worst case an untrained custom model gives.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.darknet.cfg import conv_layouts, parse_cfg  # noqa: E402
from utils.darknet.fetch_weights import fetch_weights  # noqa: E402
from utils.darknet.weights import write_weights  # noqa: E402
from utils.quantize import edgetpu_check  # noqa: E402
from utils.yolo.detector import Detector  # noqa: E402
from utils.yolo.letterbox import letterbox_float  # noqa: E402
from utils.yolo.nms import nms  # noqa: E402
from utils.yolo.types import Detections  # noqa: E402

MODELS = ("yolov3-tiny", "yolov3-tiny-prn", "yolov4-tiny", "yolov4-tiny-3l", "yolov7-tiny", "yolov3", "yolov3-spp")
PHOTO = ROOT / "model_data" / "samples" / "dog.jpg"


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(args[:2])} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def build(name: str, leaky: str, weights: Path, workdir: Path, samples: int) -> Path:
    h5, tflite = workdir / f"{name}-{leaky}.h5", workdir / f"{name}-{leaky}.tflite"
    run("convert.py", str(ROOT / "model_data" / f"{name}.cfg"), str(weights), str(h5), "--leaky", leaky)
    run("keras_to_tflite_quant.py", str(h5), str(tflite), "--dataset", str(ROOT / "model_data" / "samples"),
        "--num-samples", str(samples), "--eval-images", str(PHOTO))
    return tflite


def cpu_ms(path: Path, reps: int) -> float:
    adapter = Detector(path, threads=2).adapters[0]
    image = cv2.imread(str(PHOTO))
    times = []
    for _ in range(reps + 3):
        _, _, pre, invoke, _ = adapter.timed_run(image)
        times.append(pre + invoke)
    return float(np.median(times[3:]))


def model_row(name: str, workdir: Path, samples: int, reps: int) -> str:
    cfg = ROOT / "model_data" / f"{name}.cfg"
    sections = parse_cfg(cfg)
    if name == "yolov3-tiny":
        weights, source = fetch_weights(log=lambda message: None), "real"
    else:
        weights, source = workdir / f"{name}.weights", "random"
        write_weights(weights, conv_layouts(sections), np.random.default_rng(1))
    report = edgetpu_check.check(build(name, "prelu", weights, workdir, samples))
    keep = build(name, "keep", weights, workdir, samples)
    net = sections[0]
    mib = report.parameter_bytes / 2 ** 20
    fits = (f"yes, {8 - mib:.2f} MiB spare" if report.parameter_bytes <= edgetpu_check.ON_CHIP_BYTES
            else f"no, {mib - 8:.2f} MiB over")
    mapped = "yes" if report.all_mapped else f"no: {report.first_unmapped.name}"
    heads = sum(s.kind == "yolo" for s in sections)
    return (f"| `{name}.cfg` | {net.int('width')}x{net.int('height')} | {heads} | {mib:.2f} | {fits} | {mapped} "
            f"| {cpu_ms(keep, reps):.1f} | {source} |")


def untrained_candidates(workdir: Path, count: int) -> tuple[Detections, tuple[int, int]]:
    """The ``count`` best (box, class) pairs of a random-weight YOLOv7-tiny on dog.jpg, as OpenCV decodes them."""
    cfg = ROOT / "model_data" / "yolov7-tiny.cfg"
    weights = workdir / "yolov7-tiny-nms.weights"
    write_weights(weights, conv_layouts(parse_cfg(cfg)), np.random.default_rng(1))
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    image = cv2.imread(str(PHOTO))
    height, width = image.shape[:2]
    # YOLOv7-tiny is a stretch model: OpenCV's boxes, relative to the input, are then relative to the photo.
    net.setInput(letterbox_float(image, (416, 416), "stretch").transpose(0, 3, 1, 2).copy())
    rows = np.concatenate(net.forward(net.getUnconnectedOutLayersNames()))
    scores = rows[:, 5:]
    cut = np.sort(scores.ravel())[-count]
    candidate, class_ids = np.nonzero(scores >= cut)
    centre = rows[candidate, :4] * [width, height, width, height]
    boxes = np.concatenate([centre[:, :2] - centre[:, 2:] / 2, centre[:, :2] + centre[:, 2:] / 2], 1)
    return Detections(boxes.astype(np.float32), scores[candidate, class_ids].astype(np.float32), class_ids), (width, height)


def nms_rows(workdir: Path, reps: int) -> list[str]:
    rows = []
    for count in (2_000, 20_000, 100_000):
        detections, size = untrained_candidates(workdir, count)
        for kind in ("iou", "diou"):
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                kept = nms(detections, 0.45, kind, 0.6, size)
                times.append((time.perf_counter() - start) * 1e3)
            classes = len(np.unique(detections.class_ids))
            rows.append(f"| {len(detections):,} | {classes} | {kind} | {np.median(times):.1f} | {len(kept):,} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="two models, few samples: checks that the bench runs")
    args = parser.parse_args()
    models, samples, reps = (("yolov3-tiny", "yolov7-tiny"), 4, 5) if args.tiny else (MODELS, 20, 50)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        print("| cfg | input | heads | parameters (MiB, int8) | fits the ~8 MiB cache | all ops on the Edge TPU "
              "with `--leaky prelu` | CPU int8 ms per frame (letterbox + invoke) | weights |")
        print("|---|---|---|---|---|---|---|---|")
        for name in models:
            print(model_row(name, workdir, samples, reps), flush=True)
        print("\n| candidates | classes | NMS | median ms | kept |")
        print("|---|---|---|---|---|")
        for row in nms_rows(workdir, reps if args.tiny else 20):
            print(row, flush=True)


if __name__ == "__main__":
    main()
