"""Find and read images: directories (recursively), globs and files."""
from __future__ import annotations

import glob
from pathlib import Path

import cv2
import numpy as np

from utils.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def find_image_entries(sources: list[str], what: str = "image") -> list[tuple[Path, Path]]:
    """(image file, its name relative to the source that named it) for each image in ``sources``
    (files, directories searched recursively, or globs), in order. The relative name keeps a
    directory's sub-tree, so ``in/a/x.jpg`` and ``in/b/x.jpg`` stay apart."""
    found: list[tuple[Path, Path]] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not matches:
                raise UserError(f"{what} directory {path}: no images in it")
            found += [(p, p.relative_to(path)) for p in matches]
        elif path.is_file() or path.exists():  # a FIFO or a device too: named, then skipped as unreadable
            found.append((path, Path(path.name)))
        elif any(ch in source for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(source, recursive=True)
                             if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file())
            if not matches:
                raise UserError(f"{what} pattern {source}: matches no images")
            found += [(p, Path(p.name)) for p in matches]
        else:
            raise UserError(f"{what} {path}: no such file or directory")
    return found


def find_images(sources: list[str], what: str = "image") -> list[Path]:
    """Image files named by ``sources`` (files, directories searched recursively, or globs)."""
    return [path for path, _ in find_image_entries(sources, what)]


def read_image(path: Path) -> np.ndarray | None:
    """BGR uint8 image, or None if the file cannot be decoded (or is not a regular file: a FIFO
    would block the read)."""
    if not Path(path).is_file():
        return None
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
