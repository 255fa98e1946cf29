"""What quantization cost in detections: an int8 model's detections against a float reference.

    python -m utils.fidelity INT8.tflite FLOAT.tflite --images photos/

Two criteria: strict (reference score >= 0.30 matched with IoU >= 0.9 and |dscore| <= 0.03) and
loose (score >= 0.35, IoU >= 0.5, any score); extras are int8 detections >= 0.35 that match no
reference detection loosely. The quantizer prints the same report against its float Keras model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.console import add_verbose, plural, quiet_libraries
from utils.errors import ArgumentParser, UserError, run_cli
from utils.media.images import find_images, read_image
from utils.runtime.interpreters import KERNELS, RUNTIMES
from utils.yolo.adapter import postprocess
from utils.yolo.detector import Detector
from utils.yolo.letterbox import Preprocessor
from utils.yolo.meta import YoloMeta
from utils.yolo.nms import overlapping_pairs
from utils.yolo.types import Detections, HeadOutput

STRICT = (0.30, 0.9, 0.03)   # min reference score, min IoU, max |dscore|
LOOSE = (0.35, 0.5, 1.0)


@dataclass
class Fidelity:
    images: int = 0
    kernels: str = "xnnpack"  # the int8 model's CPU kernels (int8 results depend on them)
    strict_matched: int = 0
    strict_total: int = 0
    loose_matched: int = 0
    loose_total: int = 0
    extras: int = 0
    score_deltas: tuple = ()

    @property
    def mean_delta(self) -> float:
        return float(np.mean(self.score_deltas)) if self.score_deltas else 0.0

    def format(self) -> str:
        return (f"Detections of the int8 model ({self.kernels} kernels) against the float model on {plural(self.images, 'image')}:\n"
                f"  strict (score >= 0.30, IoU >= 0.9, |dscore| <= 0.03): {self.strict_matched}/{self.strict_total} matched\n"
                f"  loose  (score >= 0.35, IoU >= 0.5):                   {self.loose_matched}/{self.loose_total} matched, "
                f"{self.extras} extra\n"
                + (f"  mean |dscore| of loose matches: {self.mean_delta:.4f}" if self.score_deltas
                   else "  mean |dscore|: no loose match to measure it on"))


def _matches(reference: Detections, candidate: Detections, min_iou: float,
             max_delta: float) -> tuple[np.ndarray, np.ndarray]:
    """(reference, candidate) index pairs of the same class with IoU >= ``min_iou`` and scores within
    ``max_delta``. Only near pairs are measured, so a model spitting thousands of boxes stays fast."""
    references, candidates = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for class_id in np.intersect1d(reference.class_ids, candidate.class_ids):
        ref = np.flatnonzero(reference.class_ids == class_id)
        cand = np.flatnonzero(candidate.class_ids == class_id)
        i, j = overlapping_pairs(reference.boxes[ref], candidate.boxes[cand], min_iou)
        i, j = ref[i], cand[j]
        close = np.abs(reference.scores[i] - candidate.scores[j]) <= max_delta
        references.append(i[close])
        candidates.append(j[close])
    return np.concatenate(references), np.concatenate(candidates)


def add_image(report: Fidelity, reference: Detections, candidate: Detections) -> None:
    """Accumulate one image's comparison into ``report``. Only the boxes that can count are matched:
    an untrained model gives tens of thousands, mostly under the scores that matter."""
    report.images += 1
    for name, (min_score, min_iou, max_delta) in (("strict", STRICT), ("loose", LOOSE)):
        wanted = np.flatnonzero(reference.scores >= min_score)
        usable = np.flatnonzero(candidate.scores >= min_score - max_delta)
        ref, cand = _matches(reference.take(wanted), candidate.take(usable), min_iou, max_delta)
        setattr(report, f"{name}_total", getattr(report, f"{name}_total") + len(wanted))
        setattr(report, f"{name}_matched", getattr(report, f"{name}_matched") + len(np.unique(ref)))
        if name == "loose":
            deltas = np.abs(reference.scores[wanted[ref]] - candidate.scores[usable[cand]])
            report.score_deltas += tuple(deltas.tolist())
    shown = np.flatnonzero(candidate.scores >= LOOSE[0])  # an extra: shown, and no reference of any score near it
    _, claimed = _matches(reference, candidate.take(shown), LOOSE[1], LOOSE[2])
    report.extras += len(shown) - len(np.unique(claimed))


def keras_detect(model, meta: YoloMeta, image: np.ndarray, threshold: float = 0.25) -> Detections:
    """Detections of a float Keras model, decoded exactly like a TFLite model's."""
    tensor, box = Preprocessor(meta.input_size, resize=meta.resize)(image)
    outputs = model(tensor, training=False)
    outputs = [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    by_grid = {(o.shape[2], o.shape[1]): HeadOutput(o) for o in outputs}
    return postprocess([by_grid[tuple(h.grid)] for h in meta.heads], meta, box, threshold, 0.45)


def compare(reference_detect, candidate_detect, images: list[np.ndarray], kernels: str = "xnnpack") -> Fidelity:
    report = Fidelity(kernels=kernels)
    for image in images:
        add_image(report, reference_detect(image), candidate_detect(image))
    return report


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("int8", type=Path, help="quantized .tflite")
    parser.add_argument("reference", type=Path, help="float .tflite of the same model (keras_to_tflite_quant.py --float)")
    parser.add_argument("--images", nargs="+", required=True, help="image files, directories or globs")
    parser.add_argument("--runtime", choices=("auto", *RUNTIMES), default="auto", help="TFLite runtime (default: %(default)s)")
    parser.add_argument("--kernels", choices=KERNELS, help="CPU kernels of both models (default: the runtime's fastest)")
    add_verbose(parser)
    args = parser.parse_args()
    quiet_libraries(args.verbose)
    paths = find_images(args.images)
    quantized = Detector(args.int8, runtime=args.runtime, kernels=args.kernels)
    reference = Detector(args.reference, runtime=args.runtime, kernels=args.kernels)
    if quantized.meta.classes != reference.meta.classes:
        raise UserError(f"model {args.int8} has {quantized.meta.classes} classes and {args.reference} has "
                        f"{reference.meta.classes}: they are not the same model, so their detections cannot be matched")
    images = [image for image in (read_image(p) for p in paths) if image is not None]
    if not images:
        raise UserError(f"images: none of the {len(paths)} images could be read")
    sizes = [f"{w}x{h}" for w, h in (quantized.meta.input_size, reference.meta.input_size)]
    if sizes[0] != sizes[1]:
        print(f"Input sizes differ ({sizes[0]} and {sizes[1]}): detections are compared in image pixels, "
              "so the comparison is fair, but it measures the input size as well as quantization.")
    if quantized.meta.resize != reference.meta.resize:
        print(f"Resize modes differ ({quantized.meta.resize} and {reference.meta.resize}): the comparison measures "
              "the resize as well as quantization.")
    print(compare(reference.detect, quantized.detect, images, quantized.engine.kernels).format())


if __name__ == "__main__":
    run_cli(main)
