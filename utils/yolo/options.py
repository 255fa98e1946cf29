"""The detection options that the flags and ``Detector`` share, checked by one set of rules."""
from __future__ import annotations

import math


def threshold_problem(value: float, name: str = "threshold") -> str | None:
    """What is wrong with a score threshold (Darknet's -thresh), or None: 0 < value < 1."""
    if not (math.isfinite(value) and 0 < value < 1):
        return f"{name} must be strictly between 0 and 1 (got {value:g})"
    return None


def iou_problem(value: float, name: str = "iou") -> str | None:
    """What is wrong with an NMS IoU threshold, or None: 0 < value <= 1 (1 keeps all but identical boxes)."""
    if not (math.isfinite(value) and 0 < value <= 1):
        return f"{name} must be above 0 and at most 1 (got {value:g})"
    return None


def reconnect_problem(value: int | None, name: str = "reconnect") -> str | None:
    """What is wrong with a cap on reopen attempts, or None: a whole number, 0 or more (None: no cap)."""
    if value is not None and not (isinstance(value, int) and value >= 0):
        return f"{name} must be 0 or more attempts (got {value})"
    return None
