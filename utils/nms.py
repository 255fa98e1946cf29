"""Per-class non-maximum suppression with Darknet's greedy semantics (``do_nms_sort``), vectorised."""
from __future__ import annotations

import numpy as np

from .decode import Detections

# Above this many candidates the pairwise matrix gets large; then each class gets a greedy pass
# over its kept boxes (each a vector operation). It only happens with nonsense inputs (random
# weights, a threshold near 0).
MATRIX_LIMIT = 2048


def iou_matrix(boxes: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
    """IoU of every ``[x1, y1, x2, y2]`` box in ``boxes`` with every box in ``others`` (default: itself)."""
    others = boxes if others is None else others
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    other_area = np.maximum(others[:, 2] - others[:, 0], 0) * np.maximum(others[:, 3] - others[:, 1], 0)
    inter_w = np.maximum(np.minimum(boxes[:, None, 2], others[:, 2]) - np.maximum(boxes[:, None, 0], others[:, 0]), 0)
    inter_h = np.maximum(np.minimum(boxes[:, None, 3], others[:, 3]) - np.maximum(boxes[:, None, 1], others[:, 1]), 0)
    inter = inter_w * inter_h
    union = area[:, None] + other_area - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _keep_by_matrix(boxes: np.ndarray, classes: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy per-class NMS of score-sorted boxes as a fixed point of matrix operations.

    Box ``j`` is dropped when a *kept* earlier box of its class overlaps it by more than the
    threshold. Iterating that rule from "keep all" settles at least one more box (in order) per pass.
    """
    same_class = classes[:, None] == classes[None, :]
    suppresses = np.triu(same_class & (iou_matrix(boxes) > threshold), k=1)
    keep = np.ones(len(boxes), bool)
    for _ in range(len(boxes)):
        updated = ~(suppresses & keep[:, None]).any(axis=0)
        if np.array_equal(updated, keep):
            break
        keep = updated
    return keep


def _keep_greedy(boxes: np.ndarray, threshold: float) -> np.ndarray:
    """The same result, one kept box at a time: memory linear in the box count."""
    keep = np.zeros(len(boxes), bool)
    remaining = np.arange(len(boxes))
    while remaining.size:
        first, rest = remaining[0], remaining[1:]
        keep[first] = True
        remaining = rest[iou_matrix(boxes[first:first + 1], boxes[rest])[0] <= threshold]
    return keep


def nms(detections: Detections, iou_threshold: float = 0.45) -> Detections:
    """Keep, per class, each box not overlapping a higher-scoring kept box by more than the threshold.

    Returns the kept detections by descending score.
    """
    if len(detections) < 2:
        return detections
    ranked = detections.take(np.argsort(-detections.scores, kind="stable"))
    if len(ranked) <= MATRIX_LIMIT:
        return ranked.take(np.flatnonzero(_keep_by_matrix(ranked.boxes, ranked.class_ids, iou_threshold)))
    keep = np.zeros(len(ranked), bool)
    for class_id in np.unique(ranked.class_ids):
        members = np.flatnonzero(ranked.class_ids == class_id)
        keep[members] = _keep_greedy(ranked.boxes[members], iou_threshold)
    return ranked.take(np.flatnonzero(keep))
