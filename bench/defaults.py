#!/usr/bin/env python3
"""Choose the quantizer's defaults by agreement mAP: int8 Tiny YOLOv3 against its float model.

    python bench/defaults.py [--tiny]

Each setting quantizes the real Tiny YOLOv3 (calibrated on the sample photos and Darknet's own,
the images we have), then evaluate's agreement mAP scores it against the float Keras model's
detections at 0.25 on those photos plus the 24 frames of model_data/samples/clip.mp4, under
XNNPACK and under TFLite's built-in kernels. A good default scores high under both and moves
little between them.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.console import quiet_libraries  # noqa: E402
from utils.darknet.fetch_weights import fetch_weights  # noqa: E402
from utils.darknet.reference import reference_photos  # noqa: E402
from utils.evaluation import runner as evaluation  # noqa: E402
from utils.evaluation.datasets import Truth  # noqa: E402
from utils.yolo.detector import Detector  # noqa: E402

SETTINGS = [  # (name, --leaky, quantizer flags)
    ("keep, defaults (fixed head range, augmented)", "keep", []),
    ("keep, calibrated head range", "keep", ["--no-fixed-range"]),
    ("keep, no augmentation", "keep", ["--no-augment"]),
    ("keep, 20 samples", "keep", ["--num-samples", "20"]),
    ("prelu, defaults (fixed head range, augmented)", "prelu", []),
    ("prelu, calibrated head range", "prelu", ["--no-fixed-range"]),
]
KERNEL_SETS = ("xnnpack", "builtin")


def clip_frames(directory: Path) -> list[Path]:
    capture = cv2.VideoCapture(str(ROOT / "model_data" / "samples" / "clip.mp4"))
    paths = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        paths.append(directory / f"clip_{len(paths):02d}.png")
        cv2.imwrite(str(paths[-1]), frame)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="two settings, few calibration samples")
    args = parser.parse_args()
    quiet_libraries(False)
    weights = fetch_weights(log=lambda message: None)
    photos = reference_photos()
    names = ROOT / "model_data" / "coco.names"
    settings = SETTINGS[:2] if args.tiny else SETTINGS
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        images = photos + clip_frames(work)
        truths = [Truth.empty(path) for path in images]
        references = {}
        for name, leaky, flags in settings:
            h5 = work / f"{leaky}.h5"
            if leaky not in references:
                subprocess.run([sys.executable, "convert.py", str(ROOT / "model_data" / "yolov3-tiny.cfg"), str(weights),
                                str(h5), "--leaky", leaky], cwd=ROOT, check=True, capture_output=True)
                references[leaky] = Detector(h5, names, threshold=0.25)
            tflite = work / f"{len(rows)}.tflite"
            samples = ["--num-samples", "8"] if args.tiny and "--num-samples" not in flags else []
            subprocess.run([sys.executable, "keras_to_tflite_quant.py", str(h5), str(tflite), "--dataset",
                            *map(str, photos), *samples, *flags], cwd=ROOT, check=True, capture_output=True)
            runs = [evaluation.Run(kernels, Detector(tflite, names, threshold=evaluation.COLLECT_THRESHOLD,
                                                     kernels=kernels, threads=2), []) for kernels in KERNEL_SETS]
            result = evaluation.run(runs, truths, 80, 0.25, references[leaky])
            rows.append((name, [(r.result.map50, r.result.map50_95) for r in runs], result.objects))
    print(f"Agreement with the float model (its detections at 0.25, {rows[0][2]} objects) on {len(images)} images "
          f"({len(photos)} photos + {len(images) - len(photos)} clip frames), {time.strftime('%Y-%m-%d')}"
          + (" (tiny mode)" if args.tiny else ""))
    header = "  ".join(f"{k + ' mAP@0.5':>16} {k + ' @[.5:.95]':>18}" for k in KERNEL_SETS)
    print(f"{'setting':48} {header}")
    for name, figures, _ in rows:
        print(f"{name:48} " + "  ".join(f"{m50:16.4f} {m95:18.4f}" for m50, m95 in figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
