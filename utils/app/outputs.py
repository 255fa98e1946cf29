"""Where results go. Every output is one small class with ``write(result)`` and ``close(keep)``: a new
kind of output is one new class. ``write`` returns False to end the run (a window that was closed);
``close(keep=False)`` (an error) drops what is half written, ``keep=True`` completes it."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TextIO

from utils.app.result import FrameResult
from utils.console import plural
from utils.files import atomic_output
from utils.media import sinks


class Output(Protocol):
    def write(self, result: FrameResult) -> bool | None: ...
    def close(self, keep: bool = True) -> None: ...


class JsonLines:
    """``--json``: one ``FrameResult.to_record()`` object per line, flushed (for a pipe)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def write(self, result: FrameResult) -> None:
        print(json.dumps(result.to_record()), file=self.stream or sys.stdout, flush=True)

    def close(self, keep: bool = True) -> None:
        pass


class ImageLines:
    """One readable line per image: ``dog.jpg: dog 0.81 [99, 134, 308, 540], ...  (21.3 ms)``."""

    def write(self, result: FrameResult) -> None:
        found = ", ".join(f"{d.label} {d.score:.2f} [{', '.join(f'{v:.0f}' for v in d.box)}]"
                          for d in result.detections)
        print(f"{result.frame.source}: {found or 'nothing found'}  ({result.timing.total:.1f} ms)")

    def close(self, keep: bool = True) -> None:
        pass


class ImageFiles:
    """``--output`` for images: each annotated image to its planned path (``sinks.plan_image_outputs``)."""

    def __init__(self, destinations: dict[str, Path], log: Callable[[str], None]):
        self.destinations, self.log = destinations, log

    def write(self, result: FrameResult) -> None:
        path = self.destinations[result.frame.source]
        sinks.write_image(path, result.annotated)
        self.log(f"wrote {path}")

    def close(self, keep: bool = True) -> None:
        pass


class LabelFiles:
    """``--save-txt``: Darknet label files, one per image (``sinks.plan_label_outputs``)."""

    def __init__(self, destinations: dict[str, Path], directory: Path, log: Callable[[str], None]):
        self.destinations, self.directory, self.log, self.written = destinations, directory, log, 0

    def write(self, result: FrameResult) -> None:
        with atomic_output(self.destinations[result.frame.source]) as tmp:
            tmp.write_text(result.to_labels())
        self.written += 1

    def close(self, keep: bool = True) -> None:
        if self.written:
            self.log(f"wrote {plural(self.written, 'label file')} under {self.directory}")


class VideoFile:
    """``--output`` for a video or camera: a ``VideoSink`` or ``SegmentedVideoSink``; the frame rate
    is the source's, known once it is open (``fps``)."""

    def __init__(self, sink: sinks.VideoSink | sinks.SegmentedVideoSink, log: Callable[[str], None]):
        self.sink, self.log = sink, log

    @property
    def fps(self) -> float:
        return self.sink.fps

    @fps.setter
    def fps(self, value: float) -> None:
        self.sink.fps = value

    def write(self, result: FrameResult) -> None:
        self.sink.write(result.annotated)

    def close(self, keep: bool = True) -> None:
        self.sink.close(keep)
        if keep and self.sink.frames:
            self.log(f"wrote {self.sink.describe()}")


class Window:
    """An OpenCV window (when a display exists); q or Esc ends the run."""

    def write(self, result: FrameResult) -> bool:
        return sinks.show(result.annotated)

    def close(self, keep: bool = True) -> None:
        pass
