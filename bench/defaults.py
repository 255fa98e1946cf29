#!/usr/bin/env python3
"""Choose the quantizer's defaults by agreement mAP: int8 Tiny YOLOv3 against its float model,
on images that no calibration saw.

    python bench/defaults.py [--tiny]

Each setting quantizes the real Tiny YOLOv3, calibrated on the two sample photos with their crops
and flips (as ``make demo`` does). evaluate's agreement mAP then scores it against the float Keras
model's detections at 0.25 (which equal Darknet's), under XNNPACK and under TFLite's built-in
kernels, on a held-out set: OpenCV's sample photos (Debian's opencv-doc, where installed),
Darknet's photos other than the two samples (Debian's darknet) and the 24 frames of
model_data/samples/clip.mp4. A default must score high under both kernel sets.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.console import quiet_libraries  # noqa: E402
from utils.darknet.fetch_weights import fetch_weights  # noqa: E402
from utils.evaluation import runner as evaluation  # noqa: E402
from utils.evaluation.datasets import Truth  # noqa: E402
from utils.testing.darknet_reference import reference_photos  # noqa: E402
from utils.testing.image_sets import clip_frames, opencv_photos  # noqa: E402
from utils.yolo.detector import Detector  # noqa: E402

SAMPLES = ROOT / "model_data" / "samples"
METHODS = ("minmax", "percentile:99.9", "percentile:99.99", "percentile:99.999", "mse")
SETTINGS = [  # (name, --leaky, quantizer flags)
    *[(f"{leaky}, {method}", leaky, ["--calibration", method]) for leaky in ("keep", "prelu") for method in METHODS],
    ("keep, minmax, calibrated head range", "keep", ["--calibration", "minmax", "--no-fixed-range"]),
    ("keep, minmax, no augmentation", "keep", ["--calibration", "minmax", "--no-augment"]),
]
KERNEL_SETS = ("xnnpack", "builtin")


def held_out(directory: Path) -> tuple[list[Path], str]:
    """The scoring images, none of them calibrated on, and what they are."""
    opencv = opencv_photos()
    samples = {p.name for p in SAMPLES.glob("*.jpg")}
    darknet = [p for p in reference_photos() if p.name not in samples]
    frames = clip_frames(directory)
    return opencv + darknet + frames, (f"{len(opencv)} OpenCV sample photos, {len(darknet)} Darknet photos, "
                                       f"{len(frames)} clip frames")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="two settings, few calibration samples")
    args = parser.parse_args()
    quiet_libraries(False)
    weights = fetch_weights(log=lambda message: None)
    calibration = sorted(SAMPLES.glob("*.jpg"))
    names = ROOT / "model_data" / "coco.names"
    settings = [SETTINGS[0], SETTINGS[4]] if args.tiny else SETTINGS
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        images, composition = held_out(work)
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
                            *map(str, calibration), *samples, *flags], cwd=ROOT, check=True, capture_output=True)
            runs = [evaluation.Run(kernels, Detector(tflite, names, threshold=evaluation.COLLECT_THRESHOLD,
                                                     kernels=kernels, threads=2), []) for kernels in KERNEL_SETS]
            result = evaluation.run(runs, truths, 80, 0.25, references[leaky])
            rows.append((name, [(r.result.map50, r.result.map50_95) for r in runs], result.objects))
    print(f"Agreement with the float model (its detections at 0.25, {rows[0][2]} objects) on {len(images)} held-out "
          f"images ({composition}); calibrated on {', '.join(p.name for p in calibration)} with crops and flips; "
          f"{time.strftime('%Y-%m-%d')}"
          + (" (tiny mode)" if args.tiny else ""))
    header = "  ".join(f"{k + ' mAP@0.5':>16} {k + ' @[.5:.95]':>18}" for k in KERNEL_SETS)
    print(f"{'setting':48} {header}")
    for name, figures, _ in rows:
        print(f"{name:48} " + "  ".join(f"{m50:16.4f} {m95:18.4f}" for m50, m95 in figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
