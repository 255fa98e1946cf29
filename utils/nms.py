"""Per-class non-maximum suppression with Darknet's greedy semantics (``do_nms_sort``), vectorised."""
from __future__ import annotations

import numpy as np

from .decode import Detections


def iou_matrix(boxes: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``[x1, y1, x2, y2]`` boxes."""
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    inter_w = np.maximum(np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1), 0)
    inter_h = np.maximum(np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1), 0)
    inter = inter_w * inter_h
    union = area[:, None] + area - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(detections: Detections, iou_threshold: float = 0.45) -> Detections:
    """Keep, per class, each box not overlapping a higher-scoring kept box by more than the threshold.

    Sorted by score, box ``j`` is suppressed by a *kept* earlier box of its class. The kept set is
    the fixed point of that rule; iterating from "keep all" reaches it (each pass settles at
    least one more box in order), with every pass a matrix operation.
    """
    if len(detections) < 2:
        return detections
    order = np.argsort(-detections.scores, kind="stable")
    sorted_dets = detections.take(order)
    same_class = sorted_dets.class_ids[:, None] == sorted_dets.class_ids[None, :]
    suppresses = np.triu(same_class & (iou_matrix(sorted_dets.boxes) > iou_threshold), k=1)
    keep = np.ones(len(order), bool)
    for _ in range(len(order)):
        updated = ~(suppresses & keep[:, None]).any(axis=0)
        if np.array_equal(updated, keep):
            break
        keep = updated
    return sorted_dets.take(np.nonzero(keep)[0])
