"""Per-class non-maximum suppression with Darknet's greedy semantics (``do_nms_sort``), vectorised."""
from __future__ import annotations

import numpy as np

from .decode import Detections

# Above this many boxes of one class the pairwise matrix gets large; a greedy pass over the
# kept boxes (each a vector operation) is used instead. It only happens with nonsense inputs
# (random weights, a threshold near 0).
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


def _keep_by_matrix(boxes: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS of score-sorted boxes as a fixed point of matrix operations.

    Box ``j`` is dropped when a *kept* earlier box overlaps it by more than the threshold.
    Iterating that rule from "keep all" settles at least one more box (in order) per pass.
    """
    suppresses = np.triu(iou_matrix(boxes) > threshold, k=1)
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
    """Keep, per class, each box not overlapping a higher-scoring kept box by more than the threshold."""
    if len(detections) < 2:
        return detections
    # Sorted by class, then by descending score within the class.
    order = np.lexsort((-detections.scores, detections.class_ids))
    ranked = detections.take(order)
    starts = np.flatnonzero(np.r_[True, ranked.class_ids[1:] != ranked.class_ids[:-1]])
    keep = np.zeros(len(order), bool)
    for start, stop in zip(starts, np.r_[starts[1:], len(order)]):
        keep_class = _keep_by_matrix if stop - start <= MATRIX_LIMIT else _keep_greedy
        keep[start:stop] = keep_class(ranked.boxes[start:stop], iou_threshold)
    kept = ranked.take(np.flatnonzero(keep))
    return kept.take(np.argsort(-kept.scores, kind="stable"))
