"""How closely one set of detections follows another: the largest differences (agreement mAP is
``utils.evaluation.metrics.agreement``)."""
from __future__ import annotations

import numpy as np

from utils.yolo.nms import iou_matrix
from utils.yolo.types import Detections


def largest_differences(reference: list[Detections], found: list[Detections],
                        min_score: float = 0.0) -> tuple[float, float]:
    """(pixels, score): the largest corner and score differences between same-class detections matched
    by IoU >= 0.5, over reference detections scoring ``min_score`` or more."""
    box, score = 0.0, 0.0
    for a, b in zip(reference, found):
        a = a.take(np.flatnonzero(a.scores >= min_score))
        if len(a) and len(b):
            overlap = np.where(a.class_ids[:, None] == b.class_ids[None, :], iou_matrix(a.boxes, b.boxes), 0)
            best = overlap.argmax(1)
            matched = overlap[np.arange(len(a)), best] >= 0.5
            if matched.any():
                box = max(box, float(np.abs(a.boxes[matched] - b.boxes[best[matched]]).max()))
                score = max(score, float(np.abs(a.scores[matched] - b.scores[best[matched]]).max()))
    return box, score
