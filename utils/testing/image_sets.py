"""Held-out image sets for tests and benches: the clip's frames, OpenCV's sample photographs and
frames of its two sample videos (a pedestrian scene and an animated film)."""
from __future__ import annotations

from pathlib import Path

import cv2

CLIP = Path(__file__).resolve().parents[2] / "model_data" / "samples" / "clip.mp4"
OPENCV_PHOTOS = Path("/usr/share/doc/opencv-doc/examples/data")  # apt-get install opencv-doc
# Its photographs of everyday scenes (the rest are charts, text, stereo pairs and logos).
OPENCV_NAMES = ("messi5.jpg", "basketball1.png", "fruits.jpg", "apple.jpg", "orange.jpg", "baboon.jpg",
                "building.jpg", "home.jpg", "aero1.jpg", "aero3.jpg", "squirrel_cls.jpg", "butterfly.jpg",
                "leuvenA.jpg", "stuff.jpg", "smarties.png", "licenseplate_motion.jpg", "box_in_scene.png")


# OpenCV's sample videos: 795 frames of pedestrians (768x576) and 270 of an animated film (720x528).
PEDESTRIANS = OPENCV_PHOTOS / "vtest.avi"
ANIMATION = OPENCV_PHOTOS / "Megamind.avi"


def video_frames(video: Path, directory: Path, every: int = 1, prefix: str | None = None) -> list[Path]:
    """Every ``every``-th frame of ``video``, written as PNGs into ``directory`` (none if it is missing)."""
    capture = cv2.VideoCapture(str(video))
    paths, number = [], 0
    while video.is_file():
        ok, frame = capture.read()
        if not ok:
            break
        if number % every == 0:
            paths.append(directory / f"{prefix or video.stem}_{number:03d}.png")
            cv2.imwrite(str(paths[-1]), frame)
        number += 1
    return paths


def clip_frames(directory: Path, every: int = 1) -> list[Path]:
    """Every ``every``-th frame of model_data/samples/clip.mp4, written as PNGs into ``directory``."""
    return video_frames(CLIP, directory, every)


def pedestrian_frames(directory: Path) -> list[Path]:
    """24 frames of OpenCV's vtest.avi (where Debian's opencv-doc is installed), 33 frames apart."""
    return video_frames(PEDESTRIANS, directory, 33)[:24]


def animation_frames(directory: Path) -> list[Path]:
    """24 frames of OpenCV's Megamind.avi (where opencv-doc is installed), 11 frames apart."""
    return video_frames(ANIMATION, directory, 11)[:24]


def opencv_photos() -> list[Path]:
    """OpenCV's sample photographs, where Debian's opencv-doc is installed (else none)."""
    return [OPENCV_PHOTOS / name for name in OPENCV_NAMES if (OPENCV_PHOTOS / name).is_file()]


def looped_clip(path: Path, repeats: int) -> Path:
    """model_data/samples/clip.mp4 (24 frames) ``repeats`` times over, written to ``path``: a video run
    that lasts as long as a test needs."""
    capture, frames = cv2.VideoCapture(str(CLIP)), []
    while (read := capture.read())[0]:
        frames.append(read[1])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, frames[0].shape[1::-1])
    for _ in range(repeats):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return path
