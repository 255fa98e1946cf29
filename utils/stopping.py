"""One stop policy for every script: Ctrl-C (SIGINT), a supervisor's SIGTERM and a closed
terminal's SIGHUP all stop a run the same way.

Outside a frame loop a stop signal raises ``Stopped`` (a ``KeyboardInterrupt``) in the main
thread, so every ``finally`` and ``with`` block runs: temporary files and directories go, outputs
written so far stay. Inside ``graceful_stop()`` the first signal only asks the loop to stop after
the frame in hand (its outputs closed and renamed); a second one raises ``Stopped`` at once.
The exit status is 128 + the signal's number: 130, 143, 129.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """A stop signal arrived: ``signum`` says which (the exit status is 128 + it)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


_RECEIVED: list[int] = []  # the stop signals raised as ``Stopped`` in this process


def received() -> int | None:
    """The first stop signal raised as ``Stopped``, or None. Library code may catch the exception
    and raise another (TensorFlow turns it into a ``TypeError`` while it builds a graph): the
    caller can still tell that the run was stopped."""
    return _RECEIVED[0] if _RECEIVED else None


def check() -> None:
    """Raise ``Stopped`` if a stop signal arrived that a library swallowed: call it before an output
    is written, so that a stopped run never writes one."""
    if _RECEIVED:
        raise Stopped(_RECEIVED[0])


def _raise_stopped(signum, frame) -> None:
    _RECEIVED.append(signum)
    raise Stopped(signum)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block every stop signal raises ``Stopped`` in the main thread (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _RECEIVED.clear()
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StopRequest:
    """Set by a stop signal (``signum`` says which) or by ``set()``; also set, when given, by
    ``outer``: a wait on it ends as soon as either is set."""

    def __init__(self, outer: StopRequest | threading.Event | None = None):
        self._event, self.outer = threading.Event(), outer
        self.signum: int | None = None

    def set(self, signum: int | None = None) -> None:
        self.signum = self.signum or signum
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set() or (self.outer is not None and self.outer.is_set())

    def wait(self, timeout: float) -> bool:
        """True as soon as it is set, False after ``timeout`` seconds."""
        if self.outer is None:
            return self._event.wait(timeout)
        deadline = time.monotonic() + timeout
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._event.wait(min(left, 0.05))
        return True


@contextlib.contextmanager
def graceful_stop() -> Iterator[StopRequest]:
    """The first stop signal sets the request, so that a frame loop finishes its frame and stops
    with its outputs complete; a second one raises ``Stopped`` at once (a stalled camera, a hung
    device). Outside the main thread it only yields a request that ``set()`` sets."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def first(signum, frame) -> None:
        request.set(signum)
        for number in STOP_SIGNALS:
            signal.signal(number, _raise_stopped)

    previous = {signum: signal.signal(signum, first) for signum in STOP_SIGNALS}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Stop signals wait until the block ends, then take effect as they would have: closing and
    renaming an output is never cut in half (a temporary file left, no output)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {signum: signal.signal(signum, lambda number, frame: caught.append(number)) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in caught:
            signal.raise_signal(signum)
