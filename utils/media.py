"""Frame sources (images, video files, cameras) and sinks (image files, video files, a window)."""
from __future__ import annotations

import os
import platform
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .errors import UserError
from .files import atomic_output, temporary_beside
from .images import read_image


@dataclass
class Frame:
    source: str
    index: int
    image: np.ndarray


def image_frames(paths: list[Path]) -> Iterator[Frame]:
    for path in paths:
        image = read_image(path)
        if image is None:
            raise UserError(f"image {path}: cannot be read as an image")
        yield Frame(str(path), 0, image)


def open_capture(target: str | int, what: str) -> cv2.VideoCapture:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our own message says it once
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        capture.release()
        hint = "" if what == "video" else " (is it connected? try another --cam index)"
        raise UserError(f"{what} {target}: cannot be opened{hint}")
    return capture


def capture_frames(capture: cv2.VideoCapture, source: str) -> Iterator[Frame]:
    """Frames until the end of the stream, decoded one frame ahead in a background thread.

    ``VideoCapture.read`` releases the GIL, so decoding the next frame overlaps with the
    detection of the current one.
    """
    frames: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            ok, image = capture.read()
            frames.put(image if ok else None)
            if not ok:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    index = 0
    try:
        while (image := frames.get()) is not None:
            yield Frame(source, index, image)
            index += 1
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            try:
                frames.get_nowait()
            except queue.Empty:
                pass
            reader.join(timeout=0.05)
        capture.release()


def video_properties(capture: cv2.VideoCapture) -> tuple[float, int]:
    """(frames per second, frame count or 0 if unknown)."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return (fps if 0 < fps < 1000 else 30.0), max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)


class VideoSink:
    """An annotated video, written to a temporary file and renamed when closed."""

    CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".mov": "mp4v"}

    def __init__(self, path: Path, fps: float):
        if path.suffix.lower() not in self.CODECS:
            raise UserError(f"output {path}: use a .mp4, .avi, .mkv or .mov name for a video")
        self.path, self.fps = path, fps
        self.tmp = temporary_beside(path)
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*self.CODECS[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, (image.shape[1], image.shape[0]))
            if not self.writer.isOpened():
                raise UserError(f"output {self.path}: OpenCV cannot write this video format")
        self.writer.write(image)
        self.frames += 1

    def close(self) -> None:
        """Finish the file (also after Ctrl-C); nothing is left behind when no frame was written."""
        if self.writer is not None:
            self.writer.release()
        if self.frames:
            os.replace(self.tmp, self.path)
        self.tmp.unlink(missing_ok=True)


def image_output_path(output: Path, source: str, several: bool) -> Path:
    """Where an annotated image goes: ``output`` itself, or ``output/<name>`` for several images."""
    if several or output.is_dir() or not output.suffix:
        output.mkdir(parents=True, exist_ok=True)
        return output / Path(source).name
    if not output.parent.is_dir():
        raise UserError(f"output {output}: directory {output.parent} does not exist")
    return output


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode by the file's suffix and write atomically."""
    ok, encoded = cv2.imencode(path.suffix or ".jpg", image)
    if not ok:
        raise UserError(f"output {path}: cannot encode an image of this type")
    with atomic_output(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


def display_available() -> bool:
    """A window can be shown: a display exists and OpenCV was built with a GUI."""
    if platform.system() == "Linux" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow("tinyyolo-edgetpu", cv2.WINDOW_NORMAL)
        return True
    except cv2.error:
        return False


def show(image: np.ndarray) -> bool:
    """Show a frame; False when the user pressed q or Esc."""
    cv2.imshow("tinyyolo-edgetpu", image)
    return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)


