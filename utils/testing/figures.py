"""Checks of the PNG figures the scripts and benches write: the file exists, decodes, and has its size
(no test compares pixels)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of the PNG at ``path``; AssertionError if it is missing or does not decode."""
    path = Path(path)
    assert path.is_file(), f"{path}: no such figure"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{path}: not a PNG"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.std() > 0, f"{path}: does not decode, or is blank"
    return image.shape[1], image.shape[0]
