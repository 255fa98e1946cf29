"""Checks of the figures and pictures the scripts, benches and tests write: the file exists, decodes, and has its size
(no test compares pixels)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the image at ``path``; AssertionError if it is missing, does not decode, or
    is blank."""
    path = Path(path)
    assert path.is_file(), f"{path}: no such image"
    image = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.std() > 0, f"{path}: does not decode, or is blank"
    return image.shape[1], image.shape[0]


def png_size(path: Path) -> tuple[int, int]:
    """``image_size`` of a file that must be a PNG."""
    assert Path(path).is_file() and Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    return image_size(path)
