"""Evaluate detectors on labelled images: every model on the same images, with the pre- and
post-processing of inference.py (``Detector``), scored by ``metrics``."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.console import Progress
from utils.evaluation.datasets import Truth
from utils.evaluation.metrics import Result, coco_map, evaluate
from utils.media.images import read_image
from utils.yolo.detector import Detector
from utils.yolo.types import Detections

COLLECT_THRESHOLD = 0.005  # Darknet's map collects every detection above this


@dataclass
class Run:
    """One model (under one kernel set) and what it found on each readable image."""

    label: str
    detector: Detector
    found: list[Detections]
    result: Result | None = None


@dataclass
class Evaluation:
    runs: list[Run]
    images: int             # readable images evaluated
    unreadable: list[Path]
    unlabelled: int         # images without a label file
    objects: int


def _truth_arrays(truth: Truth, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return truth.in_pixels(width, height), truth.class_ids, truth.crowd


def run(runs: list[Run], truths: list[Truth], classes: int, threshold: float,
        reference: Detector | None = None) -> Evaluation:
    """Detect with every run on every image (read once), then score. With ``reference``, its
    detections are the ground truth ("agreement"), and ``truths`` only name the images."""
    unreadable, arrays, sizes = [], [], []
    progress = Progress(len(truths), "evaluating")
    for truth in truths:
        image = read_image(truth.image)
        progress.step()
        if image is None:
            print(f"warning: image {truth.image}: cannot be read; skipped", file=sys.stderr)
            unreadable.append(truth.image)
            continue
        height, width = image.shape[:2]
        if reference is not None:
            agreed = reference.detect(image)
            arrays.append((agreed.boxes, agreed.class_ids, np.zeros(len(agreed), bool)))
        else:
            arrays.append(_truth_arrays(truth, width, height))
        sizes.append((width, height))
        for entry in runs:
            entry.found.append(entry.detector.detect(image))
    for entry in runs if arrays else []:  # nothing readable: nothing to score
        entry.result = evaluate(arrays, entry.found, classes, threshold)
        entry.result.map50_95 = coco_map(arrays, entry.found, sizes)
    unlabelled = sum(1 for t in truths if not t.labelled) if reference is None else 0
    objects = sum(int((~ignored).sum()) for _, _, ignored in arrays)
    return Evaluation(runs, len(arrays), unreadable, unlabelled, objects)


def to_json(evaluation: Evaluation, names: list[str]) -> dict:
    models = []
    for entry in evaluation.runs:
        result = entry.result
        precision, recall, f1 = result.totals()
        models.append({"model": str(entry.detector.engine.path), "label": entry.label,
                       "runtime": entry.detector.engine.description, "resize": entry.detector.meta.resize,
                       "images": evaluation.images,
                       "map50": round(result.map50, 6), "map50_95": round(result.map50_95, 6),
                       "map50_all_classes": round(result.map50_all_classes, 6),
                       "precision": round(precision, 6), "recall": round(recall, 6), "f1": round(f1, 6),
                       "curve": result.curve,
                       "per_class": [{"class_id": c.class_id, "label": names[c.class_id], "truths": c.truths,
                                      "ap50": round(c.ap50, 6), "precision": round(c.precision, 6),
                                      "recall": round(c.recall, 6), "curve": c.curve} for c in result.classes]})
    return {"images": evaluation.images, "objects": evaluation.objects, "unreadable": len(evaluation.unreadable),
            "unlabelled": evaluation.unlabelled, "models": models}


def format_table(evaluation: Evaluation, names: list[str], threshold: float) -> str:
    """The models side by side, then AP@0.5 per class."""
    width = max(len(entry.label) for entry in evaluation.runs)
    lines = [f"{'model':{width}}  mAP@0.5  mAP@[.5:.95]  P@{threshold:g}  R@{threshold:g}    F1"]
    for entry in evaluation.runs:
        precision, recall, f1 = entry.result.totals()
        lines.append(f"{entry.label:{width}}  {entry.result.map50:7.4f}  {entry.result.map50_95:12.4f}  "
                     f"{precision:6.3f}  {recall:6.3f}  {f1:5.3f}")
    first = evaluation.runs[0].result
    if first.classes:
        lines += ["", "AP@0.5 per class (" + ", ".join(f"{i + 1}: {e.label}" for i, e in enumerate(evaluation.runs))
                  + ")"]
        label_width = max(len(names[c.class_id]) for c in first.classes)
        for row, item in enumerate(first.classes):
            aps = "  ".join(f"{entry.result.classes[row].ap50:6.4f}" for entry in evaluation.runs)
            lines.append(f"  {names[item.class_id]:{label_width}} {item.truths:5d} {'object ' if item.truths == 1 else 'objects'}  {aps}")
    if len(first.classes) < len(names):
        lines.append(f"(mAP averages the {len(first.classes)} classes with ground truth; Darknet divides by all "
                     f"{len(names)}: " + ", ".join(f"{e.result.map50_all_classes:.4f}" for e in evaluation.runs) + ")")
    return "\n".join(lines)


def kernel_spread(evaluation: Evaluation) -> list[str]:
    """For a model evaluated under several kernel sets (with one resize): the range of its figures."""
    by_model: dict[tuple[Path, str], list[Run]] = {}
    for entry in evaluation.runs:
        by_model.setdefault((entry.detector.engine.path, entry.detector.meta.resize), []).append(entry)
    lines = []
    for (path, _), entries in by_model.items():
        if len({e.detector.engine.kernels for e in entries}) > 1:
            map50 = [e.result.map50 for e in entries]
            map50_95 = [e.result.map50_95 for e in entries]
            lines.append(f"{path} over {len(entries)} kernel sets: mAP@0.5 {min(map50):.4f} to {max(map50):.4f}, "
                         f"mAP@[.5:.95] {min(map50_95):.4f} to {max(map50_95):.4f} (int8 rounding; differences "
                         "inside this spread are noise)")
    return lines
