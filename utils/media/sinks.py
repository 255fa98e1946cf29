"""Where annotated frames go: image files, video files (whole or in segments), a window."""
from __future__ import annotations

import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from utils.errors import UserError
from utils.files import PendingOutputs, atomic_output, check_output, check_writable, unused_name
from utils.media.images import IMAGE_SUFFIXES
from utils.stopping import shielded


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class VideoSink:
    """An annotated video, written to a temporary file and renamed when closed.

    Nothing is created before the first frame, so a run that fails earlier leaves nothing behind.
    A recording is never replaced: if ``path`` exists (a restarted run), the video goes to the first
    free ``NAME-2.mp4``, ``NAME-3.mp4``, ... and one line says so.
    """

    CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".mov": "mp4v"}

    def __init__(self, path: Path, fps: float, inputs: list[Path] = (), quiet: bool = False):
        if path.suffix.lower() not in self.CODECS:
            raise UserError(f"output {path}: use a .mp4, .avi, .mkv or .mov name for a video")
        check_output(path, inputs)
        self.path, self.fps = unused_name(path), fps
        if self.path != path and not quiet:
            _say(f"output {path} exists: writing {self.path} (a recording is never replaced)")
        check_writable(self.path)
        self.pending: PendingOutputs | None = None
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            self.pending = PendingOutputs([self.path])
            fourcc = cv2.VideoWriter_fourcc(*self.CODECS[self.path.suffix.lower()])
            self.size = (image.shape[1], image.shape[0])
            self.writer = cv2.VideoWriter(str(self.pending.temporaries[0]), fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise UserError(f"output {self.path}: OpenCV cannot write this video format")
        if image.shape[:2] != self.size[::-1]:  # a live source that came back at another resolution
            image = cv2.resize(image, self.size)
        self.writer.write(image)
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file and rename it into place, or with ``keep=False`` (an error) drop it;
        nothing is left behind when no frame was written. A stop signal waits until it is done."""
        with shielded():
            self._close(keep)

    def _close(self, keep: bool) -> None:
        if self.writer is not None:
            self.writer.release()
        if self.pending is None:
            return
        if keep and self.frames:
            wanted, self.path = self.path, unused_name(self.path)  # another program took the name meanwhile
            self.pending.dests = [self.path]
            if self.path != wanted:
                _say(f"output {wanted} appeared while recording: wrote {self.path} instead")
            self.pending.commit(self._verify)
        else:
            self.pending.discard()

    def describe(self) -> str:
        return f"{self.path} ({self.frames} frames)"

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


class SegmentedVideoSink:
    """``--output`` as complete files of ``minutes`` each (NAME_0001.mp4, NAME_0002.mp4, ...), each
    renamed into place when it ends: a days-long run never holds one growing file whose index
    lives in memory, and a killed process loses only the segment it was writing."""

    def __init__(self, path: Path, fps: float, minutes: float, inputs: list[Path] = ()):
        VideoSink(path, fps, inputs, quiet=True)  # the same checks: suffix, not an input, a writable place
        self.path, self.fps, self.seconds, self.inputs = path, fps, minutes * 60, list(inputs)
        for source in self.inputs:
            if source.parent.resolve() == path.parent.resolve() and source.name.startswith(f"{path.stem}_"):
                raise UserError(f"output {path}: its segments {path.stem}_NNNN{path.suffix} could replace the input "
                                f"{source}; choose another name")
        self.current: VideoSink | None = None
        self.started, self.frames, self.finished = 0.0, 0, []
        # A restarted run continues the numbering: the segments already there are never replaced.
        self.number = self._last_existing()
        if self.number:
            _say(f"output {self._segment(self.number)} exists: continuing at {self._segment(self.number + 1).name} "
                 "(recordings are never replaced)")

    def _segment(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.stem}_{number:04d}{self.path.suffix}")

    def _last_existing(self) -> int:
        pattern = re.compile(rf"{re.escape(self.path.stem)}_(\d{{4,}}){re.escape(self.path.suffix)}")
        directory = self.path.parent if str(self.path.parent) else Path(".")
        numbers = [int(m.group(1)) for entry in (os.listdir(directory) if directory.is_dir() else [])
                   if (m := pattern.fullmatch(entry))]
        return max(numbers, default=0)

    def _finish(self, keep: bool) -> None:
        if self.current is not None:
            self.current.close(keep)
            if keep and self.current.frames:
                self.finished.append(self.current)
                print(f"wrote {self.current.describe()}", file=sys.stderr, flush=True)
            self.current = None

    def write(self, image: np.ndarray) -> None:
        if self.current is None or time.monotonic() - self.started >= self.seconds:
            self._finish(True)
            self.number += 1
            self.current = VideoSink(self._segment(self.number), self.fps, self.inputs, quiet=True)
            self.started = time.monotonic()
        self.current.write(image)
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        self._finish(keep)

    def describe(self) -> str:
        names = [sink.path.name for sink in self.finished]
        span = f"{names[0]} to {names[-1]}" if len(names) > 1 else (names[0] if names else "nothing")
        return f"{len(names)} segments, {span} ({self.frames} frames)"


def check_image_suffix(path: Path) -> None:
    """Refuse, up front, an image output whose type OpenCV cannot encode."""
    if not path.suffix or not cv2.haveImageWriter(f"x{path.suffix.lower()}"):
        raise UserError(f"output {path}: OpenCV cannot write images of type '{path.suffix}'; "
                        "use .jpg, .png, .bmp, .webp or .tif")


def _check_one_each(entries: list[tuple[Path, Path]], planned: list[Path], what: str, hint: str,
                    check: Callable[[Path], None] = lambda dest: None) -> None:
    """Each source's planned output passes ``check``, replaces no source, and no two sources share one."""
    sources = [path for path, _ in entries]
    seen: dict[Path, Path] = {}
    for source, dest in zip(sources, planned):
        check(dest)
        check_output(dest, sources, what)
        if dest in seen:
            raise UserError(f"{what} {dest}: both {seen[dest]} and {source} would be written there; {hint}")
        seen[dest] = source


def plan_image_outputs(entries: list[tuple[Path, Path]], output: Path) -> list[Path]:
    """Where each annotated image goes, checked before any work: ``output`` itself for one image
    named like a file, else ``output/<the image's path relative to its source>`` (the source tree
    mirrored). Refuses an output that would replace a source, or two sources sharing one output."""
    single = len(entries) == 1 and output.suffix and not output.is_dir()
    if len(entries) > 1 and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        raise UserError(f"output {output}: {len(entries)} images need a directory, not an image name")
    planned = [output] if single else [output / relative for _, relative in entries]
    _check_one_each(entries, planned, "output", "give the images from one directory, or distinct names",
                    check_image_suffix)
    for dest in {dest.parent: dest for dest in planned}.values():  # one per directory: a read-only place fails now
        check_writable(dest)
    return planned


def plan_label_outputs(entries: list[tuple[Path, Path]], directory: Path) -> list[Path]:
    """``inference.py --save-txt``: where each image's label file goes (the source tree mirrored
    under ``directory``, ``.txt`` for the image's suffix), checked before any work."""
    planned = [directory / relative.with_suffix(".txt") for _, relative in entries]
    _check_one_each(entries, planned, "labels", "give images with distinct names")
    existing = [dest for dest in planned if os.path.lexists(dest)]
    if existing:
        raise UserError(f"labels {existing[0]}: exists ({len(existing)} of the {len(planned)} label files do); "
                        "--save-txt never replaces label files (they may be ground truth): give an empty or new "
                        "directory")
    if planned:
        check_writable(planned[0])
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


