"""What a device fault is, and the policy for one: retry, close, reopen with backoff, give up.

An Edge TPU's ``invoke()`` fails with libedgetpu's status in TFLite's words, e.g.
``Deadline exceeded: USB transfer error 2 [LibUsbDataOutCallback]Node number 36
(EdgeTpuDelegateForCustomOp) failed to invoke.``; the part before "Node number" is libedgetpu's.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_TFLITE_TAIL = re.compile(r"Node number \d+ \([^)]*\) failed to invoke\.?")


class DeviceFault(Exception):
    """``invoke()`` failed on an Edge TPU; ``reason`` is libedgetpu's words."""

    def __init__(self, device: str, reason: str):
        super().__init__(f"{device}: {reason}")
        self.device, self.reason = device, reason


def libedgetpu_words(error: BaseException) -> str:
    """The library's own message in a failed invoke's error, without TFLite's node suffix. The
    runtimes keep earlier failures' messages in front of the last one: only the last is kept."""
    messages = [" ".join(part.split()) for part in _TFLITE_TAIL.split(str(error))]
    return next((m for m in reversed(messages) if m), type(error).__name__)[:200]


@dataclass(frozen=True)
class FaultPolicy:
    """How a failing device is handled.

    ``retries``: invokes tried again on the same device before it is closed (1: once).
    ``reconnect``: attempts to reopen a closed device per outage (None: keep trying).
    ``first_wait``, ``longest_wait``: seconds before the first attempt, doubling up to the longest,
    as live streams do.
    """

    retries: int = 1
    reconnect: int | None = None
    first_wait: float = 0.5
    longest_wait: float = 8.0

    def outage_plan(self) -> str:
        """What happens to the frames of a device that was just closed, when no other device is up."""
        return "frames wait while it is reopened" if self.reconnect != 0 else "and it is not reopened (reconnect 0)"

    def waits(self) -> Iterator[float]:
        """The wait before each reopen attempt, as many as ``reconnect`` allows."""
        wait, attempt = self.first_wait, 0
        while self.reconnect is None or attempt < self.reconnect:
            attempt += 1
            yield wait
            wait = min(wait * 2, self.longest_wait)
