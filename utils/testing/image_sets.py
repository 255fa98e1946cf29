"""Held-out image sets for tests and benches: the clip's frames and OpenCV's sample photographs."""
from __future__ import annotations

from pathlib import Path

import cv2

CLIP = Path(__file__).resolve().parents[2] / "model_data" / "samples" / "clip.mp4"
OPENCV_PHOTOS = Path("/usr/share/doc/opencv-doc/examples/data")  # apt-get install opencv-doc
# Its photographs of everyday scenes (the rest are charts, text, stereo pairs and logos).
OPENCV_NAMES = ("messi5.jpg", "basketball1.png", "fruits.jpg", "apple.jpg", "orange.jpg", "baboon.jpg",
                "building.jpg", "home.jpg", "aero1.jpg", "aero3.jpg", "squirrel_cls.jpg", "butterfly.jpg",
                "leuvenA.jpg", "stuff.jpg", "smarties.png", "licenseplate_motion.jpg", "box_in_scene.png")


def clip_frames(directory: Path, every: int = 1) -> list[Path]:
    """Every ``every``-th frame of model_data/samples/clip.mp4, written as PNGs into ``directory``."""
    capture = cv2.VideoCapture(str(CLIP))
    paths, number = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if number % every == 0:
            paths.append(directory / f"clip_{number:02d}.png")
            cv2.imwrite(str(paths[-1]), frame)
        number += 1
    return paths


def opencv_photos() -> list[Path]:
    """OpenCV's sample photographs, where Debian's opencv-doc is installed (else none)."""
    return [OPENCV_PHOTOS / name for name in OPENCV_NAMES if (OPENCV_PHOTOS / name).is_file()]
