"""Frame sources (images, video files, cameras) and sinks (image files, video files, a window)."""
from __future__ import annotations

import os
import platform
import queue
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .errors import UserError
from .files import PendingOutputs, atomic_output, check_output, check_writable
from .images import IMAGE_SUFFIXES, read_image


@dataclass
class Frame:
    source: str
    index: int
    image: np.ndarray


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


def _quiet_opencv() -> None:
    """OpenCV logs errors only: our own message says it once. (Builds expose the setter in one of two places.)"""
    logging = getattr(cv2.utils, "logging", None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(2)  # LOG_LEVEL_ERROR


def open_capture(target: str | int, what: str) -> cv2.VideoCapture:
    _quiet_opencv()
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
    """An annotated video, written to a temporary file and renamed when closed.

    Nothing is created before the first frame, so a run that fails earlier leaves nothing behind.
    """

    CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".mov": "mp4v"}

    def __init__(self, path: Path, fps: float, inputs: list[Path] = ()):
        if path.suffix.lower() not in self.CODECS:
            raise UserError(f"output {path}: use a .mp4, .avi, .mkv or .mov name for a video")
        self.path, self.fps = check_output(path, inputs), fps
        check_writable(path)
        self.pending: PendingOutputs | None = None
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            self.pending = PendingOutputs([self.path])
            fourcc = cv2.VideoWriter_fourcc(*self.CODECS[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.pending.temporaries[0]), fourcc, self.fps,
                                          (image.shape[1], image.shape[0]))
            if not self.writer.isOpened():
                raise UserError(f"output {self.path}: OpenCV cannot write this video format")
        self.writer.write(image)
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file and rename it into place, or with ``keep=False`` (an error) drop it;
        nothing is left behind when no frame was written."""
        if self.writer is not None:
            self.writer.release()
        if self.pending is None:
            return
        if keep and self.frames:
            self.pending.commit(self._verify)
        else:
            self.pending.discard()

    def _verify(self, temporaries: list[Path]) -> None:
        """OpenCV's writer ignores write errors (a full disk): count the frames it really wrote."""
        capture = cv2.VideoCapture(str(temporaries[0]))
        written = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        capture.release()
        if written != self.frames:
            free = os.statvfs(temporaries[0].parent)
            cause = "No space left on device" if free.f_bavail * free.f_frsize < 1 << 20 else "write error"
            raise UserError(f"output {self.path}: cannot write ({cause}: {written} of {self.frames} frames "
                            "readable); nothing was replaced")


def check_image_suffix(path: Path) -> None:
    """Refuse, up front, an image output whose type OpenCV cannot encode."""
    if not path.suffix or not cv2.haveImageWriter(f"x{path.suffix.lower()}"):
        raise UserError(f"output {path}: OpenCV cannot write images of type '{path.suffix}'; "
                        "use .jpg, .png, .bmp, .webp or .tif")


def plan_image_outputs(entries: list[tuple[Path, Path]], output: Path) -> list[Path]:
    """Where each annotated image goes, checked before any work: ``output`` itself for one image
    named like a file, else ``output/<the image's path relative to its source>`` (the source tree
    mirrored). Refuses an output that would replace a source, or two sources sharing one output."""
    single = len(entries) == 1 and output.suffix and not output.is_dir()
    if len(entries) > 1 and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        raise UserError(f"output {output}: {len(entries)} images need a directory, not an image name")
    planned = [output] if single else [output / relative for _, relative in entries]
    sources = [path for path, _ in entries]
    seen: dict[Path, Path] = {}
    for (source, _), dest in zip(entries, planned):
        check_image_suffix(dest)
        check_output(dest, sources)
        if dest in seen:
            raise UserError(f"output {dest}: both {seen[dest]} and {source} would be written there; "
                            "give the images from one directory, or distinct names")
        seen[dest] = source
    return planned


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode by the file's suffix and write atomically (directories made as needed)."""
    ok, encoded = cv2.imencode(path.suffix.lower() or ".jpg", image)
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


