"""Progress that speaks early: a status line for live sources, a progress bar for video files."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

from utils.app.result import FrameResult
from utils.console import plural, progress_bar

STATUS_SECONDS = 5.0


class LiveStatus:
    """A camera or stream: one stderr line once it is open, then one every ``every`` seconds with
    frames, frames per second, detections and faults (device and stream events) so far."""

    def __init__(self, name: str, faults: Callable[[], int], every: float = STATUS_SECONDS):
        self.name, self.faults, self.every = name, faults, every
        self.frames = self.detections = 0
        self.started = self.last = 0.0
        self.frames_then = 0

    def write(self, result: FrameResult) -> None:
        now = time.monotonic()
        if not self.frames:
            height, width = result.frame.image.shape[:2]
            self.started = self.last = now
            _say(f"{self.name}: open, {width}x{height}; a status line every {self.every:g} s")
        self.frames += 1
        self.detections += len(result.detections)
        if now - self.last >= self.every:
            fps = (self.frames - self.frames_then) / (now - self.last)
            self.last, self.frames_then = now, self.frames
            faults = self.faults()
            _say(f"{self.name}: {plural(self.frames, 'frame')}, {fps:.1f} fps, {plural(self.detections, 'detection')}, "
                 + (f"{plural(faults, 'fault')} (lines above)" if faults else "no faults"))

    def close(self, keep: bool = True) -> None:
        pass


class FileProgress:
    """A video file: an updating bar with ETA on a terminal, else a line per 100 frames."""

    def __init__(self, name: str, total: int):
        self.name, self.total, self.frames = name, total, 0
        self.bar = progress_bar(total or None, name, "frame")

    def write(self, result: FrameResult) -> None:
        self.frames += 1
        if self.bar is not None:
            self.bar.update()
        elif self.frames % 100 == 0:
            _say(f"{self.frames}{f'/{self.total}' if self.total else ''} frames")

    def close(self, keep: bool = True) -> None:
        if self.bar is not None:
            self.bar.close()


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
