"""One frame's result as the outputs see it: the frame, its detections and timing, drawn on demand."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from utils.media.frames import Frame
from utils.yolo.detector import Timing
from utils.yolo.draw import draw_detections, draw_fps
from utils.yolo.types import Detections


@dataclass
class FrameResult:
    """``fps`` (frames per second so far) is drawn on the image of a video or camera frame."""

    frame: Frame
    detections: Detections
    timing: Timing
    names: list[str]
    fps: float | None = None
    _annotated: np.ndarray | None = field(default=None, repr=False)

    @property
    def annotated(self) -> np.ndarray:
        """The frame with its boxes (and fps) drawn, made once, by the first output that asks."""
        if self._annotated is None:
            self._annotated = draw_detections(self.frame.image, self.detections, self.names)
            if self.fps is not None:
                draw_fps(self._annotated, self.fps)
        return self._annotated

    def to_record(self) -> dict:
        """The ``inference.py --json`` line: source, frame, time (live sources), device, detections, ms."""
        stamp = ({"time": datetime.fromtimestamp(self.frame.time, timezone.utc).isoformat(timespec="milliseconds")}
                 if self.frame.time is not None else {})
        timing = self.timing.to_record()
        return {"source": self.frame.source, "frame": self.frame.index, **stamp,
                **{key: timing[key] for key in ("device", "failed_on") if key in timing},
                "detections": self.detections.to_record(self.names), "ms": timing["ms"]}

    def to_labels(self) -> str:
        """Darknet label lines of the detections, relative to this frame's size."""
        height, width = self.frame.image.shape[:2]
        return self.detections.to_labels(width, height)
