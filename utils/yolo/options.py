"""The detection options that the flags and ``Detector`` share, checked by one set of rules."""
from __future__ import annotations

import math
from numbers import Real


def _not_a_number(value, name: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, Real):
        return f"{name} must be a number (got {value!r})"
    return None


def threshold_problem(value: float, name: str = "threshold") -> str | None:
    """What is wrong with a score threshold (Darknet's -thresh), or None: 0 < value < 1."""
    if problem := _not_a_number(value, name):
        return problem
    if not (math.isfinite(value) and 0 < value < 1):
        return f"{name} must be strictly between 0 and 1 (got {value:g})"
    return None


def iou_problem(value: float, name: str = "iou") -> str | None:
    """What is wrong with an NMS IoU threshold, or None: 0 < value <= 1 (1 keeps all but identical boxes)."""
    if problem := _not_a_number(value, name):
        return problem
    if not (math.isfinite(value) and 0 < value <= 1):
        return f"{name} must be above 0 and at most 1 (got {value:g})"
    return None


def reconnect_problem(value: int | None, name: str = "reconnect") -> str | None:
    """What is wrong with a cap on reopen attempts, or None: a whole number, 0 or more (None: no cap)."""
    if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return f"{name} must be 0 or more attempts (got {value})"
    return None


def choice_problem(value, choices, name: str) -> str | None:
    """What is wrong with a value that must be one of ``choices`` (None allowed when listed), or None."""
    if value not in choices:
        listed = " or ".join(repr(c) for c in choices if c is not None)
        return f"{name} {value!r}: use {listed}" + (" (or None for the default)" if None in choices else "")
    return None


def threads_problem(value, name: str = "threads") -> str | None:
    """What is wrong with a thread count, or None: a whole number, 1 or more (None: the runtime's default)."""
    if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return f"{name} must be 1 or more (got {value!r})"
    return None
