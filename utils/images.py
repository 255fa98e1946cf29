"""Find and read images: directories (recursively), globs and files."""
from __future__ import annotations

import glob
from pathlib import Path

import cv2
import numpy as np

from .errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def find_images(sources: list[str], what: str = "image") -> list[Path]:
    """Image files named by ``sources`` (files, directories searched recursively, or globs), sorted."""
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not matches:
                raise UserError(f"{what} directory {path}: no images in it")
            found += matches
        elif path.is_file():
            found.append(path)
        elif any(ch in source for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(source, recursive=True)
                             if Path(p).suffix.lower() in IMAGE_SUFFIXES)
            if not matches:
                raise UserError(f"{what} pattern {source}: matches no images")
            found += matches
        else:
            raise UserError(f"{what} {path}: no such file or directory")
    return found


def read_image(path: Path) -> np.ndarray | None:
    """BGR uint8 image, or None if the file cannot be decoded."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return image


def evenly_spread(items: list, count: int) -> list:
    """At most ``count`` items spread evenly over ``items``."""
    if count >= len(items):
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]
