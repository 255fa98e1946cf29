"""``--calibration auto``: choose the activation-range method on the user's own images.

A quarter of the dataset is held out. The rest calibrates once (one min/max pass and one histogram
pass serve every candidate); each candidate is then quantized and scored by agreement mAP with the
float model on the held-out images and their crops and flips, under XNNPACK and under TFLite's
built-in kernels (int8 results depend on them). The best mean over both kernel sets wins; a tie
keeps the earlier candidate.
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from utils.console import plural, progress
from utils.errors import UserError
from utils.evaluation import fidelity
from utils.evaluation.metrics import agreement
from utils.evaluation.runner import COLLECT_THRESHOLD
from utils.media.images import read_image
from utils.quantize import calibration, ranges
from utils.quantize import quantizer as quantize
from utils.yolo.detector import Detector
from utils.yolo.meta import YoloMeta

AUTO = ranges.AUTO
CANDIDATES = ("mse", "minmax", "percentile:99.99", "percentile:99.999")
KERNEL_SETS = ("xnnpack", "builtin")
MIN_IMAGES = 8       # 6 to calibrate on and 2 held out, at least
HELD_OUT_EVERY = 4   # every 4th image is held out
VARIANTS = 3         # each held-out image is scored as itself and as 2 crops/flips


@dataclass
class Candidate:
    method: ranges.Method
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)  # kernels -> (mAP@0.5, @[.5:.95])

    @property
    def merit(self) -> float:
        return float(np.mean([sum(pair) / 2 for pair in self.scores.values()])) if self.scores else -1.0


@dataclass
class Choice:
    method: ranges.Method
    candidates: list[Candidate]
    calibrated_on: int = 0
    held_out: int = 0
    seconds: float = 0.0
    fallback: str = ""   # why no choice was made, when there were too few images

    def format(self) -> str:
        if self.fallback:
            return f"calibration auto: {self.fallback}"
        lines = [f"calibration auto: {plural(self.calibrated_on, 'image')} calibrated, {self.held_out} held out "
                 f"(x{VARIANTS} with crops/flips); agreement with the float model, mAP@0.5 / @[.5:.95]:"]
        for c in self.candidates:
            figures = "   ".join(f"{k} {m50:.4f} / {m95:.4f}" for k, (m50, m95) in c.scores.items())
            lines.append(f"  {'*' if c.method == self.method else ' '} {str(c.method):18} {figures}")
        lines.append(f"  chose {self.method} in {self.seconds:.0f} s")
        return "\n".join(lines)


def split(images: list[Path]) -> tuple[list[Path], list[Path]]:
    """(calibration images, held-out images): every HELD_OUT_EVERY-th image is held out."""
    held = set(range(HELD_OUT_EVERY // 2, len(images), HELD_OUT_EVERY))
    return [p for i, p in enumerate(images) if i not in held], [p for i, p in enumerate(images) if i in held]


def held_out_images(paths: list[Path]) -> list[np.ndarray]:
    images = [image for image in (read_image(p) for p in paths) if image is not None]
    return [calibration.augmented(image, variant) for image in images for variant in range(VARIANTS)]


def score(model_path: Path, images: list[np.ndarray], reference: list, classes: int) -> dict[str, tuple[float, float]]:
    """Agreement of the model at ``model_path`` with the ``reference`` detections, per kernel set."""
    sizes = [(image.shape[1], image.shape[0]) for image in images]
    found = {}
    for kernels in KERNEL_SETS:
        detector = Detector(model_path, threshold=COLLECT_THRESHOLD, kernels=kernels)
        found[kernels] = agreement(reference, [detector.detect(image) for image in images], sizes, classes)
    return found


def choose(model, meta: YoloMeta, dataset: list[Path], settings, head_range: tuple[float, float] | None,
           log: Callable[[str], None]) -> Choice:
    """The candidate with the best agreement on held-out images; with fewer than MIN_IMAGES, the
    default method, with the reason in ``Choice.fallback``."""
    default = ranges.parse_method(ranges.DEFAULT_METHOD)
    if len(dataset) < MIN_IMAGES:
        reason = (f"{plural(len(dataset), 'image')} is too few to hold any out (it needs {MIN_IMAGES}); "
                  f"using {default}, the default")
        log(f"warning: calibration auto: {reason}")
        return Choice(default, [], fallback=reason)
    started = time.perf_counter()
    calibrate, held = split(dataset)
    log(f"calibration auto: {len(CANDIDATES)} candidates, calibrated on {len(calibrate)} images and scored on "
        f"{len(held)} held out")
    samples = calibration.Calibration(calibration.plan(calibrate, settings.num_samples, settings.augment))
    data = samples.dataset(meta.input_size, meta.resize, lambda items: progress(items, "auto: calibrating"))
    try:
        recorded = quantize.record_ranges(model, data, settings.io_type)
    finally:
        if samples.used == 0:
            raise UserError(f"dataset: none of the {len(calibrate)} images auto calibrates on could be decoded")
    images = held_out_images(held)
    if not images:
        reason = f"none of the {len(held)} held-out images could be decoded; using {default}, the default"
        log(f"warning: calibration auto: {reason}")
        return Choice(default, [], fallback=reason)
    data = samples.dataset(meta.input_size, meta.resize, lambda items: progress(items, "auto: measuring ranges"))
    histograms = ranges.histograms(recorded, data, quantize.float_interpreter)
    reference = [fidelity.keras_detect(model, meta, image) for image in images]
    candidates = [Candidate(ranges.parse_method(name)) for name in CANDIDATES]
    with tempfile.TemporaryDirectory(prefix="tinyyolo-auto-") as work:
        for number, candidate in enumerate(progress(candidates, "auto: scoring candidates")):
            chosen = ranges.choose(histograms, candidate.method)
            tflite = quantize.quantize_calibrated(quantize.with_ranges(recorded, chosen), settings.io_type)
            path = Path(work) / f"candidate{number}.tflite"
            quantize.finish(tflite, replace(meta, output_range=head_range), path, head_range)
            candidate.scores = score(path, images, reference, meta.classes)
    best = max(candidates, key=lambda c: c.merit)  # max keeps the first of equals
    return Choice(best.method, candidates, len(calibrate), len(held), time.perf_counter() - started)
