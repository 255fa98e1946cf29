#!/usr/bin/env python3
"""Letterbox or stretch: how far apart Darknet's two resizes put the detections, and how exactly this
toolkit reproduces each, against references it did not write.

    python bench/resize_modes.py            # needs Debian's darknet (make darknet); about 5 minutes

With the real Tiny YOLOv3 weights, on four image sets (the sample photos, Darknet's other photos,
OpenCV's sample photos from Debian's opencv-doc where installed, the clip's frames):

1. libdarknet letterboxed (Darknet 2018) against libdarknet stretched (AlexeyAB's and Hank.ai's
   resize, with the same library's resize_image): agreement mAP per set;
2. this toolkit's float and int8 models in each mode against libdarknet in the same mode, and in
   stretch mode against OpenCV 4's Darknet importer fed ``blobFromImage`` without crop (its
   INTER_LINEAR resize is not Darknet's: a second, inexact reference): agreement and the largest box
   and score differences over detections matched by class and IoU >= 0.5, per reference score >= 0.3.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.console import quiet_libraries  # noqa: E402
from utils.darknet.fetch_weights import fetch_weights  # noqa: E402
from utils.evaluation.metrics import agreement  # noqa: E402
from utils.machine import cpu_description  # noqa: E402
from utils.testing import darknet_reference  # noqa: E402
from utils.testing.agreement import largest_differences  # noqa: E402
from utils.testing.image_sets import clip_frames, opencv_photos  # noqa: E402
from utils.yolo.detector import Detector  # noqa: E402
from utils.yolo.types import Detections  # noqa: E402

CFG = ROOT / "model_data" / "yolov3-tiny.cfg"
SAMPLES = ROOT / "model_data" / "samples"
MODES = ("letterbox", "stretch")


def image_sets(directory: Path) -> dict[str, list[Path]]:
    samples = sorted(SAMPLES.glob("*.jpg"))
    names = {p.name for p in samples}
    return {"sample photos": samples,
            "Darknet's photos": [p for p in darknet_reference.reference_photos() if p.name not in names],
            "OpenCV's photos": opencv_photos(),
            "clip frames": clip_frames(directory)}


def as_detections(found: list[tuple]) -> Detections:
    return Detections(np.array([f[2] for f in found], np.float32).reshape(-1, 4),
                      np.array([f[1] for f in found], np.float32), np.array([f[0] for f in found], np.int64))


def opencv_stretch(net, image: np.ndarray, threshold: float = 0.25) -> Detections:
    """OpenCV's Darknet importer on blobFromImage(crop=False): its own [yolo] decoding, boxes per axis,
    then this toolkit's NMS rule (Darknet's per-class greedy IoU 0.45) on them."""
    from utils.yolo.nms import nms
    height, width = image.shape[:2]
    net.setInput(cv2.dnn.blobFromImage(image, 1 / 255, (416, 416), swapRB=True, crop=False))
    rows = np.concatenate([o.reshape(-1, o.shape[-1]) for o in net.forward(net.getUnconnectedOutLayersNames())])
    boxes, scores, classes = [], [], []
    for row in rows:
        for class_id in np.flatnonzero(row[5:] > threshold):
            cx, cy, w, h = row[:4] * (width, height, width, height)
            boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
            scores.append(row[5 + class_id])
            classes.append(class_id)
    found = Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                       np.array(classes, np.int64))
    return nms(found, 0.45, "iou", 0.6, (width, height)).clipped((width, height))


def main() -> int:
    quiet_libraries(False)
    if not darknet_reference.available():
        raise SystemExit("Debian's darknet is not installed (make darknet): libdarknet is the reference here")
    weights = fetch_weights(log=lambda message: None)
    names = ROOT / "model_data" / "coco.names"
    print(f"CPU: {cpu_description()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sets = image_sets(work)
        images = {name: [cv2.imread(str(p)) for p in paths] for name, paths in sets.items()}
        sizes = {name: [(i.shape[1], i.shape[0]) for i in found] for name, found in images.items()}
        darknet = darknet_reference.Darknet(CFG, weights)
        reference = {mode: {name: [as_detections(darknet.detect(i, 80, 0.25, resize=mode)) for i in found]
                            for name, found in images.items()} for mode in MODES}
        collected = {mode: {name: [as_detections(darknet.detect(i, 80, 0.005, resize=mode)) for i in found]
                            for name, found in images.items()} for mode in MODES}
        print("\n1. libdarknet letterboxed (truth, 0.25) against libdarknet stretched, same weights")
        print("| image set | images | mAP@0.5 | mAP@[.5:.95] |\n|---|---|---|---|")
        for name in sets:
            m50, m95 = agreement(reference["letterbox"][name], collected["stretch"][name], sizes[name])
            print(f"| {name} | {len(sets[name])} | {m50:.4f} | {m95:.4f} |")
        everything = [d for name in sets for d in reference["letterbox"][name]]
        m50, m95 = agreement(everything, [d for name in sets for d in collected["stretch"][name]],
                             [s for name in sets for s in sizes[name]])
        print(f"| all | {len(everything)} | {m50:.4f} | {m95:.4f} |")

        models: dict[tuple[str, str], Callable] = {}
        opencv = cv2.dnn.readNetFromDarknet(str(CFG), str(weights))
        for mode in MODES:
            h5 = work / f"{mode}.h5"
            subprocess.run([sys.executable, "convert.py", str(CFG), str(weights), str(h5), "--resize", mode],
                           cwd=ROOT, check=True, capture_output=True)
            for kind, flags in (("float", ["--float"]), ("int8", [])):
                tflite = work / f"{mode}-{kind}.tflite"
                subprocess.run([sys.executable, "keras_to_tflite_quant.py", str(h5), str(tflite), "--dataset",
                                str(SAMPLES), *flags], cwd=ROOT, check=True, capture_output=True)
                models[kind, mode] = Detector(tflite, names, threshold=0.005, threads=2).detect
        print("\n2. this toolkit against the references (all images; box and score: largest difference)")
        print("| model | resize | reference | mAP@0.5 | mAP@[.5:.95] | box px | score |\n|---|---|---|---|---|---|---|")
        every_image = [i for name in sets for i in images[name]]
        every_size = [s for name in sets for s in sizes[name]]
        for (kind, mode), detect in models.items():
            found = [detect(i) for i in every_image]
            strict = [d.take(np.flatnonzero(d.scores >= 0.25)) for d in found]
            targets = [("libdarknet", [d for name in sets for d in reference[mode][name]])]
            if mode == "stretch":
                targets.append(("OpenCV blobFromImage", [opencv_stretch(opencv, i) for i in every_image]))
            for label, truth in targets:
                m50, m95 = agreement(truth, found, every_size)
                box, score = largest_differences(truth, strict, 0.3)
                print(f"| Tiny YOLOv3 {kind} | {mode} | {label} | {m50:.4f} | {m95:.4f} | {box:.3g} | {score:.3g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
