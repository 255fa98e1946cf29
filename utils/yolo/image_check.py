"""What ``Detector`` accepts as an image: checked and converted once, before the letterbox."""
from __future__ import annotations

import cv2
import numpy as np

from utils.errors import UserError

ACCEPTED = ("an image as OpenCV reads it: a numpy uint8 array, H x W x 3 BGR; grayscale (H x W or "
            "H x W x 1) and BGRA (H x W x 4) are converted")


def as_bgr(image: object) -> np.ndarray:
    """``image`` as an H x W x 3 uint8 BGR array, or a ``UserError`` saying what it is instead."""
    if not isinstance(image, np.ndarray):
        hint = " (cv2.imread returns None for a file it cannot read)" if image is None else ""
        raise UserError(f"image: got {type(image).__name__}{hint}; expected {ACCEPTED}")
    if image.dtype != np.uint8:
        raise UserError(f"image: dtype {image.dtype}; expected uint8 0-255 (for 0-1 floats: "
                        "(image * 255).round().astype(np.uint8))")
    channels = image.shape[2] if image.ndim == 3 else 1 if image.ndim == 2 else None
    if channels not in (1, 3, 4):
        raise UserError(f"image: shape {image.shape}; expected {ACCEPTED}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise UserError(f"image: shape {image.shape} is empty")
    if channels == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)  # a view or another memory layout: the letterbox reads rows
