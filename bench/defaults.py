#!/usr/bin/env python3
"""Choose the quantizer's default by cross-validation: int8 Tiny YOLOv3 against its float model,
calibrated on one image source and scored on the others.

    python bench/defaults.py [--tiny] [--in-source] [--methods M ...] [--json FILE]
    python bench/defaults.py --weights-only    # what rounding the weights alone costs

A method may carry a rounding step: ``mse+bias`` (bias correction, utils/testing/bias_correction.py)
or ``mse+finetune`` (2 epochs of label-free quantization-aware fine-tuning, utils/testing/finetune.py).
``mse@90`` calibrates on 90 samples instead of 100 (other crops and flips): the noise floor of a
comparison.

``--in-source`` calibrates on the even-numbered images of each source and scores on its
odd-numbered ones: a camera calibrated on its own frames, the case ``--calibration auto`` is for.

Four independent sources: Darknet's photos with the clip's frames (a zoom into two of them),
OpenCV's sample photos, frames of OpenCV's pedestrian video and of its animated film (Debian's
darknet and opencv-doc). Each split calibrates on one source (topped up with crops and flips to
100 samples, as the quantizer does) and scores on the images of the three others, by agreement
mAP with the float Keras model's detections at 0.25 (which are Darknet's), under XNNPACK and
under TFLite's built-in kernels, for the leaky (CPU) and the PReLU (Edge TPU) model. A default
must be within 0.005 mAP@0.5 of the best method in every cell and never below minmax by more.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.console import quiet_libraries  # noqa: E402
from utils.darknet.fetch_weights import fetch_weights  # noqa: E402
from utils.evaluation.metrics import agreement  # noqa: E402
from utils.evaluation.runner import COLLECT_THRESHOLD  # noqa: E402
from utils.machine import cpu_description  # noqa: E402
from utils.media.images import read_image  # noqa: E402
from utils.quantize import ranges  # noqa: E402
from utils.quantize.auto import AUTO  # noqa: E402
from utils.quantize.pipeline import Settings, quantize_model  # noqa: E402
from utils.testing.bias_correction import correct_file  # noqa: E402
from utils.testing.darknet_reference import reference_photos  # noqa: E402
from utils.testing.finetune import tune_file  # noqa: E402
from utils.testing.image_sets import animation_frames, clip_frames, opencv_photos, pedestrian_frames  # noqa: E402
from utils.yolo.detector import Detector  # noqa: E402

METHODS = ("minmax", "percentile:99.9", "percentile:99.99", "percentile:99.999", "mse", AUTO)
FINETUNE_EPOCHS = 2
MODELS = ("keep", "prelu")
KERNEL_SETS = ("xnnpack", "builtin")
TOLERANCE = 0.005


def sources(directory: Path) -> dict[str, list[Path]]:
    """The four image sources, each written or found under ``directory``."""
    found = {"darknet+clip": reference_photos() + clip_frames(directory, every=2),
             "opencv photos": opencv_photos(),
             "pedestrians": pedestrian_frames(directory),
             "animation": animation_frames(directory)}
    missing = [name for name, paths in found.items() if len(paths) < 4]
    if missing:
        sys.exit(f"bench/defaults.py: no images for {', '.join(missing)}: apt-get install darknet opencv-doc")
    return found


def split_images(images: dict[str, list[Path]], split: str, in_source: bool) -> tuple[list[Path], list[Path]]:
    """(calibration images, scored images): one source against the other three or, ``in_source``,
    the even-numbered images of one source against its odd-numbered ones (a camera calibrated on
    its own frames)."""
    if in_source:
        return images[split][::2], images[split][1::2]
    return images[split], [path for name, paths in images.items() if name != split for path in paths]


def convert(leaky: str, weights: Path, h5: Path) -> None:
    import subprocess
    subprocess.run([sys.executable, "convert.py", str(ROOT / "model_data" / "yolov3-tiny.cfg"), str(weights),
                    str(h5), "--leaky", leaky], cwd=ROOT, check=True, capture_output=True)


def quantize(h5: Path, tflite: Path, images: list[Path], method: str, samples: int):
    """quantize_model with ``method``, then its rounding step (``+bias`` or ``+finetune``) if it has
    one; ``@N`` sets the number of samples."""
    method, _, count = method.partition("@")
    samples = int(count) if count else samples
    base, _, rounding = method.partition("+")
    chosen = AUTO if base == AUTO else ranges.parse_method(base)
    if rounding == "finetune":
        tuned = tflite.with_suffix(".h5")
        tune_file(h5, tuned, images, chosen, samples, FINETUNE_EPOCHS)
        h5 = tuned
    report = quantize_model(h5, tflite, images, Settings(num_samples=samples, method=chosen, report=False))
    if rounding == "bias":
        correct_file(h5, tflite, images, chosen, samples)
    return report


def weights_only(weights: Path, work: Path, images: dict[str, list[Path]], decoded: dict) -> list[str]:
    """Agreement of the float model with its kernels rounded as TFLite rounds them (per channel,
    symmetric int8) and float activations: the most that better weight rounding could win back."""
    import keras

    from utils.evaluation.fidelity import keras_detect
    from utils.quantize.quantizer import model_meta
    from utils.runtime.keras_engine import load_keras_model
    lines = [f"{'model':6} {'held out (all but)':20} {'@0.5':>7} {'@[.5:.95]':>10}"]
    for leaky in MODELS:
        h5 = work / f"{leaky}.h5"
        convert(leaky, weights, h5)
        model = load_keras_model(h5)
        meta = model_meta(model, h5)
        references = {path: keras_detect(model, meta, image) for path, image in decoded.items()}
        for layer in model.layers:
            if isinstance(layer, keras.layers.Conv2D):
                kernel, *rest = layer.get_weights()
                step = np.abs(kernel).max(axis=(0, 1, 2)) / 127
                step[step == 0] = 1
                layer.set_weights([np.round(kernel / step) * step, *rest])
        found = {path: keras_detect(model, meta, image, COLLECT_THRESHOLD) for path, image in decoded.items()}
        for split in images:
            held = [path for name, paths in images.items() if name != split for path in paths]
            sizes = [(decoded[p].shape[1], decoded[p].shape[0]) for p in held]
            m50, m95 = agreement([references[p] for p in held], [found[p] for p in held], sizes)
            lines.append(f"{leaky:6} {split:20} {m50:7.4f} {m95:10.4f}")
    return lines


def detect_ms(detector: Detector, image, repeats: int) -> float:
    """Median milliseconds of one detect() after a warm-up: the method changes scales, never the ops."""
    detector.detect(image)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        detector.detect(image)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def verdict(rows: list[dict], methods: list[str]) -> list[str]:
    """Per method: its largest shortfall at mAP@0.5 from the best method, and from minmax, over every cell."""
    cells: dict[tuple, dict[str, float]] = {}
    for row in rows:
        for kernels in KERNEL_SETS:
            cells.setdefault((row["split"], row["model"], kernels), {})[row["method"]] = row[kernels][0]
    lines = [f"{'method':18} {'worst gap to best @0.5':>24} {'worst gap to minmax':>20}  holds"]
    for method in methods:
        to_best = max(max(cell.values()) - cell[method] for cell in cells.values())
        if "minmax" in methods:
            to_minmax = max(cell["minmax"] - cell[method] for cell in cells.values())
            holds = "yes" if to_best <= TOLERANCE and to_minmax <= TOLERANCE else "no"
            lines.append(f"{method:18} {to_best:24.4f} {to_minmax:20.4f}  {holds}")
        else:
            lines.append(f"{method:18} {to_best:24.4f} {'-':>20}  {'yes' if to_best <= TOLERANCE else 'no'}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="one split, one model, two methods, few samples")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help="(default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--in-source", action="store_true",
                        help="calibrate on half of each source and score on its other half, not on other sources")
    parser.add_argument("--weights-only", action="store_true",
                        help="only score int8-rounded weights with float activations (a minute)")
    args = parser.parse_args()
    quiet_libraries(False)
    weights = fetch_weights(log=lambda message: None)
    methods = ["minmax", "mse"] if args.tiny else args.methods
    models = MODELS[:1] if args.tiny else MODELS
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        images = sources(work)
        splits = list(images)[:1] if args.tiny else list(images)
        decoded = {path: read_image(path) for paths in images.values() for path in paths}
        if args.weights_only:
            print("Weight rounding alone: float activations, kernels rounded to per-channel int8 as TFLite does; "
                  "agreement with the float model on the images of the other three sources")
            print("\n".join(weights_only(weights, work, images, decoded)))
            return 0
        for leaky in models:
            h5 = work / f"{leaky}.h5"
            convert(leaky, weights, h5)
            floating = Detector(h5, threshold=0.25)
            references = {path: floating.detect(image) for path, image in decoded.items()}
            for split in splits:
                calibrate, held = split_images(images, split, args.in_source)
                sizes = [(decoded[p].shape[1], decoded[p].shape[0]) for p in held]
                for method in methods:
                    tflite = work / f"{leaky}-{len(rows)}.tflite"
                    started = time.perf_counter()
                    report = quantize(h5, tflite, calibrate, method, 16 if args.tiny else 100)
                    row = {"split": split, "model": leaky, "method": method, "seconds": time.perf_counter() - started,
                           "chose": str(report.method), "held_out": len(held),
                           "objects": sum(len(references[p]) for p in held)}
                    for kernels in KERNEL_SETS:
                        int8 = Detector(tflite, threshold=COLLECT_THRESHOLD, kernels=kernels)
                        found = [int8.detect(decoded[p]) for p in held]
                        row[kernels] = agreement([references[p] for p in held], found, sizes)
                        row[f"{kernels} ms"] = detect_ms(int8, decoded[held[0]], 5 if args.tiny else 30)
                    rows.append(row)
                    print(f"  {split} / {leaky} / {method}: done in {row['seconds']:.0f} s", file=sys.stderr)
    scored = "the other half of it" if args.in_source else "the other three"
    print(f"Cross-validation of --calibration: calibrated on {'half of ' if args.in_source else ''}one source (100 "
          f"samples with crops/flips), scored on {scored}; agreement with the float model's detections at 0.25; "
          f"{time.strftime('%Y-%m-%d')}" + (" (tiny mode)" if args.tiny else ""))
    print(f"CPU: {cpu_description()}; detect() times are medians of one image, 2 threads")
    print("sources: " + ", ".join(f"{name} ({len(paths)} images)" for name, paths in images.items()))
    print(f"{'split (calibrated on)':22} {'model':6} {'method':18} " + "  ".join(
        f"{k + ' @0.5':>12} {k + ' @[.5:.95]':>17}" for k in KERNEL_SETS) + "  objects  seconds  ms (xnnpack, builtin)")
    for row in rows:
        method = row["method"] + (f" ({row['chose']})" if row["method"] == AUTO else "")
        print(f"{row['split']:22} {row['model']:6} {method:18} " + "  ".join(
            f"{row[k][0]:12.4f} {row[k][1]:17.4f}" for k in KERNEL_SETS)
            + f"  {row['objects']:7d}  {row['seconds']:7.0f}  {row['xnnpack ms']:.1f}, {row['builtin ms']:.1f}")
    print()
    print("\n".join(verdict(rows, methods)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
