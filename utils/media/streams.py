"""Video sources: files, cameras and network streams (RTSP, HTTP MJPEG), read one frame ahead.

A live source (a camera or a URL) that stalls or drops is reopened with backoff, one line on
stderr per event; the frame numbers go on, and each frame carries its wall-clock time. Passwords
in a URL never reach a log line or an error: sources are named by ``masked``.
"""
from __future__ import annotations

import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2

from utils.errors import UserError
from utils.media.frames import Frame
from utils.stopping import StopRequest

URL_SCHEMES = ("rtsp", "rtsps", "http", "https")
TIMEOUT_MS = 5000     # open and read timeouts of a network stream
MAX_BACKOFF_S = 8.0


def is_url(text: str) -> bool:
    return re.match(r"(?i)^(rtsps?|https?)://", text) is not None


# Parameter names that cameras use for credentials: user/password pairs (Dahua's user/password,
# Foscam's usr/pwd, Amcrest's loginuse/loginpas, Xiongmai's path-style user=…_password=…), tokens,
# keys, signatures and sessions. A match anywhere in the name masks its value: too much rather than too little.
_SECRET_NAME = r"[\w.-]*(?:pass|pwd|psw|user|usr|login|token|auth|key|secret|sig|session|sid|cred)[\w.-]*"


def masked(text: str) -> str:
    """A URL as messages show it: the whole userinfo (``user:pa@ss@`` included) and the value of
    every parameter whose name looks like a credential, in the path or the query, become ``***``.

    ``rtsp://admin:pa@ss@cam/live?password=x`` → ``rtsp://***@cam/live?password=***``. An ``@``
    before the query ends the userinfo even after a ``/`` (a password with an unencoded slash).
    """
    match = re.match(r"(?is)^([a-z][a-z0-9+.-]*://)(.*)$", text)
    if match is None:
        return text
    scheme, rest = match.groups()
    cut = re.search(r"[?#]", rest)
    head, tail = (rest[:cut.start()], rest[cut.start():]) if cut else (rest, "")
    if "@" in head:
        head = "***@" + head.rsplit("@", 1)[1]
    head = re.sub(rf"(?i)([/;&]|^)({_SECRET_NAME}=)[^/]*", r"\1\2***", head)
    tail = re.sub(rf"(?i)([?&;#])({_SECRET_NAME}=)[^&;#]*", r"\1\2***", tail)
    return scheme + head + tail


@dataclass(frozen=True)
class Source:
    target: str | int   # what OpenCV opens: a path, a URL or a camera index
    live: bool          # a camera or a network stream: reconnected, frames timestamped
    name: str           # for messages (credentials masked)
    what: str = "video"


def video_source(text: str) -> Source:
    """``--video``: a file (checked now) or an rtsp(s)/http(s) URL."""
    if is_url(text):
        return Source(text, True, masked(text), "stream")
    if not Path(text).is_file():
        raise UserError(f"video {masked(text)}: no such file" + (" (a URL must start with rtsp://, rtsps://, http:// "
                                                         "or https://)" if "://" in text or ":/" in text else ""))
    return Source(text, False, text)


def camera_source(text: str) -> Source:
    """``--cam``: an index (0, 1, ...) or a device path such as /dev/video2."""
    if text.isdigit():
        return Source(int(text), True, f"camera {text}", "camera")
    if is_url(text):
        return Source(text, True, masked(text), "stream")
    if not Path(text).exists():
        raise UserError(f"camera {masked(text)}: no such device")
    return Source(text, True, f"camera {text}", "camera")


def _open(source: Source) -> cv2.VideoCapture:
    if isinstance(source.target, str) and is_url(source.target):
        return cv2.VideoCapture(source.target, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, TIMEOUT_MS,
                                                                 cv2.CAP_PROP_READ_TIMEOUT_MSEC, TIMEOUT_MS])
    return cv2.VideoCapture(source.target)


def _quiet_opencv() -> None:
    """OpenCV logs errors only: our own message says it once. (Builds expose the setter in one of two places.)"""
    logging = getattr(cv2.utils, "logging", None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(2)  # LOG_LEVEL_ERROR


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Stream:
    """An opened source; ``frames()`` reads it one frame ahead in a background thread (``read``
    releases the GIL, so decoding overlaps detection)."""

    def __init__(self, source: Source, reconnect: int | None = None, on_event: Callable[[str], None] | None = None):
        """``reconnect``: attempts after a live source drops (None: keep trying; files never).
        ``on_event`` gets each drop, return and give-up line (default: stderr)."""
        self.source, self.reconnect = source, (reconnect if source.live else 0)
        self.log = on_event or _log
        _quiet_opencv()
        self.capture = _open(source)
        if not self.capture.isOpened():
            self.capture.release()
            hint = " (is it connected? try another --cam index)" if source.what == "camera" else ""
            named = source.name if source.name.startswith(source.what) else f"{source.what} {source.name}"
            raise UserError(f"{named}: cannot be opened{hint}")
        self.gave_up = False  # a live source that did not come back
        self.reconnects = 0

    def properties(self) -> tuple[float, int]:
        """(frames per second, frame count or 0 if unknown)."""
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        return (fps if 0 < fps < 1000 else 30.0), max(int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)

    def _reopen(self, stop: StopRequest, index: int):
        """After a drop: reopen with backoff until a frame comes, ``reconnect`` runs out or ``stop``."""
        lost = time.monotonic()
        self.log(f"{self.source.name}: stream lost after frame {index}; reconnecting")
        self.capture.release()
        delay, attempt = 0.5, 0
        while not stop.is_set() and (self.reconnect is None or attempt < self.reconnect):
            attempt += 1
            if stop.wait(delay):
                break
            capture = _open(self.source)
            ok, image = capture.read() if capture.isOpened() else (False, None)
            if ok:
                self.capture, self.reconnects = capture, self.reconnects + 1
                self.log(f"{self.source.name}: back after {time.monotonic() - lost:.1f} s ({attempt} attempt"
                     f"{'s' if attempt > 1 else ''})")
                return image
            capture.release()
            delay = min(delay * 2, MAX_BACKOFF_S)
        if not stop.is_set():
            self.gave_up = True
            self.log(f"{self.source.name}: gave up after {attempt} attempts ({time.monotonic() - lost:.1f} s)")
        return None

    def frames(self, stop_request=None) -> Iterator[Frame]:
        """The frames until the source ends, gives up, or ``stop_request`` (a ``graceful_stop()``
        request) is set: a reconnect wait ends at once then."""
        frames: queue.Queue = queue.Queue(maxsize=2)
        stop = StopRequest(stop_request)

        def read() -> None:
            index = 0
            while not stop.is_set():
                ok, image = self.capture.read()
                if not ok and self.source.live and self.reconnect != 0:
                    image = self._reopen(stop, index)
                    ok = image is not None
                stamp = time.time() if self.source.live else None
                frames.put(Frame(self.source.name, index, image, stamp) if ok else None)
                if not ok:
                    return
                index += 1

        reader = threading.Thread(target=read, daemon=True, name="reader")
        reader.start()
        try:
            while not stop.is_set():
                try:
                    frame = frames.get(timeout=0.05)
                except queue.Empty:
                    continue
                if frame is None:
                    return
                yield frame
        finally:
            stop.set()
            while reader.is_alive():  # unblock a reader waiting on a full queue
                try:
                    frames.get_nowait()
                except queue.Empty:
                    pass
                reader.join(timeout=0.05)
            self.capture.release()
