"""The detection loop: every frame through the detector, every result to every output, outputs closed
as the run ended (complete on the end, a stop or a lost device; dropped on an error)."""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass

from utils.app.outputs import Output
from utils.app.result import FrameResult
from utils.errors import DeviceError
from utils.media.frames import Frame
from utils.stopping import StopRequest, shielded
from utils.yolo.detector import Detector, Timing


@dataclass
class Tally:
    """What a run did: frames, the summed stage times (ms), and how it ended."""

    frames: int = 0
    pre: float = 0.0
    invoke: float = 0.0
    post: float = 0.0
    setup: float = 0.0
    started: float = 0.0
    elapsed: float = 0.0
    device_lost: DeviceError | None = None  # every Edge TPU failed and did not come back
    ended_by_output: bool = False           # a window was closed

    def add(self, timing: Timing) -> None:
        self.frames += 1
        self.pre, self.invoke, self.post = self.pre + timing.pre, self.invoke + timing.invoke, self.post + timing.post
        self.setup += timing.setup

    @property
    def fps(self) -> float:
        return self.frames / max(time.perf_counter() - self.started, 1e-9)


def detect_loop(detector: Detector, frames: Iterable[Frame], outputs: Sequence[Output],
                stop: StopRequest | None = None, draw_fps: bool = False) -> Tally:
    """Detect on ``frames`` until they end, ``stop`` is set or an output's ``write`` returns False.

    Every output is closed before this returns or raises: with ``keep=True`` when the run ended, was
    stopped (a second signal included) or lost its last Edge TPU, which ``Tally.device_lost`` then
    holds; with ``keep=False`` on any other error, so nothing half-written is left.
    """
    tally = Tally(started=time.perf_counter())
    keep = False
    try:
        with closing(detector.detect_stream(frames, lambda frame: frame.image, stop=stop)) as results:
            for frame, detections, timing in results:
                tally.add(timing)
                result = FrameResult(frame, detections, timing, detector.names, tally.fps if draw_fps else None)
                if False in [output.write(result) for output in outputs]:  # every output sees the frame
                    tally.ended_by_output = True
                    break
                if stop is not None and stop.is_set():
                    break
        keep = True
    except DeviceError as error:
        keep, tally.device_lost = True, error
    except KeyboardInterrupt:  # a second stop signal: the outputs so far still stand
        keep = True
        raise
    finally:
        tally.elapsed = time.perf_counter() - tally.started
        close_all(outputs, keep)
    return tally


def close_all(outputs: Sequence[Output], keep: bool) -> None:
    """Close every output, even when one fails (the first error is raised after); a stop signal waits."""
    error = None
    with shielded():
        for output in outputs:
            try:
                output.close(keep)
            except Exception as failure:  # noqa: BLE001 - the others still get closed
                error = error or failure
    if error is not None:
        raise error
