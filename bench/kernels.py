#!/usr/bin/env python3
"""int8 results under each CPU kernel set: how many detections move between XNNPACK, TFLite's
built-in and reference kernels, and what each costs.

    python bench/kernels.py [--tiny]

The real Tiny YOLOv3, quantized twice (leaky kept, and PReLU), on the sample photos and Darknet's
own. A detection (score >= 0.30) "moves" between two kernel sets when the other has no detection
of its class at score >= 0.30 with IoU >= 0.5. The float model (what Darknet computes) is the
reference for "vs float".
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.console import quiet_libraries  # noqa: E402
from utils.darknet.fetch_weights import fetch_weights  # noqa: E402
from utils.machine import cpu_description  # noqa: E402
from utils.media.images import read_image  # noqa: E402
from utils.runtime.interpreters import KERNELS  # noqa: E402
from utils.testing import model_cache  # noqa: E402
from utils.testing.darknet_reference import reference_photos  # noqa: E402
from utils.yolo.detector import Detector  # noqa: E402
from utils.yolo.nms import iou_matrix  # noqa: E402
from utils.yolo.types import Detections  # noqa: E402

MIN_SCORE, MIN_IOU = 0.30, 0.5
TFLITE_RUNTIME_PYTHON = ROOT / ".venv-tflite-runtime" / "bin" / "python"  # make .venv-tflite-runtime/.installed


def compare(a: Detections, b: Detections) -> tuple[int, list[float]]:
    """(detections of ``a`` with no same-class detection in ``b`` at IoU >= MIN_IOU, |score difference|
    of the others to their best match), both at score >= MIN_SCORE."""
    a, b = a.take(a.scores >= MIN_SCORE), b.take(b.scores >= MIN_SCORE)
    if not len(b) or not len(a):
        return len(a), []
    overlap = np.where(a.class_ids[:, None] == b.class_ids[None, :], iou_matrix(a.boxes, b.boxes), 0)
    best = overlap.argmax(1)
    matched = overlap[np.arange(len(a)), best] >= MIN_IOU
    return int((~matched).sum()), np.abs(a.scores[matched] - b.scores[best[matched]]).tolist()


def moved(a: list[Detections], b: list[Detections]) -> tuple[int, float]:
    """Over all images: detections that move (either way) and the largest score change of the rest."""
    count, deltas = 0, [0.0]
    for x, y in zip(a, b):
        for first, second in ((x, y), (y, x)):
            lost, changes = compare(first, second)
            count, deltas = count + lost, deltas + changes
    return count, max(deltas)


def tflite_runtime_run(model: Path, paths: list[Path]) -> tuple[list[list], float] | None:
    """(JSON detections per photo, median invoke ms) of inference.py on tflite_runtime alone, or None."""
    if not (TFLITE_RUNTIME_PYTHON.parents[1] / ".installed").exists():  # python appears before pip is done
        return None
    result = subprocess.run([str(TFLITE_RUNTIME_PYTHON), "inference.py", "--model", str(model), "--json",
                             "--classes", str(ROOT / "model_data" / "coco.names"), "--threads", "2", "--no-display",
                             "-t", str(MIN_SCORE), "--runtime", "tflite_runtime", "--image", *map(str, paths)],
                            cwd=ROOT, check=True, capture_output=True, text=True)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    return [r["detections"] for r in records], float(np.median([r["ms"]["invoke"] for r in records]))


def as_json(detections: Detections) -> list:
    """Rounded as inference.py's JSON rounds them."""
    return [[int(c), round(float(s), 4), [round(float(v), 1) for v in b]]
            for b, s, c in zip(detections.boxes, detections.scores, detections.class_ids)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="two photos, few calibration samples and repetitions")
    args = parser.parse_args()
    quiet_libraries(False)
    weights = fetch_weights(log=lambda message: None)
    paths = reference_photos()[:2] if args.tiny else reference_photos()
    images = [read_image(p) for p in paths]
    samples, reps = ("8", 3) if args.tiny else ("100", 20)
    print(f"Kernel sets on int8 Tiny YOLOv3, {len(images)} photos ({', '.join(p.name for p in paths)}); "
          f"{cpu_description()}, {time.strftime('%Y-%m-%d')}{' (tiny mode)' if args.tiny else ''}")
    print(f"{'model':8} {'kernels':10} {'detections':>10} {'vs float':>9} {'invoke ms':>9}")
    for leaky in ("keep", "prelu"):
        cfg, convert_args = ROOT / "model_data" / "yolov3-tiny.cfg", ["--leaky", leaky]
        int8 = model_cache.built(cfg, weights, convert_args, ["--num-samples", samples], paths)
        float_model = model_cache.built(cfg, weights, convert_args, ["--float"])
        reference = Detector(float_model, threshold=MIN_SCORE, threads=2, kernels="builtin")
        truth = [reference.detect(image) for image in images]
        found = {}
        for kernels in KERNELS:
            detector = Detector(int8, threshold=MIN_SCORE, threads=2, kernels=kernels)
            found[kernels] = [detector.detect(image) for image in images]
            invoke = np.median([detector.detect_timed(images[0])[1].invoke for _ in range(reps)])
            count = sum(len(d) for d in found[kernels])
            lost, _ = moved(truth, found[kernels])
            print(f"{leaky:8} {kernels:10} {count:>10} {lost:>9} {invoke:9.2f}")
        alone = tflite_runtime_run(int8, paths)
        if alone is None:
            print(f"{leaky:8} tflite_runtime: not measured ({TFLITE_RUNTIME_PYTHON.parents[1]} not installed)")
        else:
            same = [[[d["class_id"], d["score"], d["box"]] for d in image] for image in alone[0]] == \
                [as_json(d) for d in found["builtin"]]
            print(f"{leaky:8} {'tflite_runtime 2.14 (builtin)':30} invoke {alone[1]:.2f} ms; detections "
                  f"{'identical to' if same else 'DIFFERENT from'} LiteRT's builtin kernels")
        for a, b in combinations(KERNELS, 2):
            count, change = moved(found[a], found[b])
            print(f"{leaky:8} {a} vs {b}: {count} detections move; the others' scores change by up to {change:.3f}")
    print(f"('vs float': detections >= {MIN_SCORE} in one of the int8 and float models without a same-class "
          f"match at IoU >= {MIN_IOU} in the other)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
