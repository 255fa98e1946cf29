"""Frames: what every source yields, and the frames of a list of image files (video sources: ``utils.media.streams``)."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.media.images import read_image


@dataclass
class Frame:
    source: str
    index: int
    image: np.ndarray
    time: float | None = None  # wall-clock seconds, for live sources


def image_frames(paths: list[Path], unreadable: list[Path]) -> Iterator[Frame]:
    """A frame per readable image; each unreadable one is reported on stderr, added to
    ``unreadable`` and skipped, so one bad file never stops a directory."""
    for path in paths:
        image = read_image(path)
        if image is None:
            print(f"warning: image {path}: cannot be read as an image, skipped", file=sys.stderr)
            unreadable.append(path)
            continue
        yield Frame(str(path), 0, image)
