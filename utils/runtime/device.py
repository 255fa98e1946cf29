"""One device and what is running on it, kept alive through faults.

A ``Device`` owns a worker (whatever ``open_worker`` builds on the device: an engine, or an adapter
around one) and applies a ``FaultPolicy`` to it: a job whose invoke fails is tried again on it;
a second failure closes the worker (the interpreter and its delegate) and marks the device down;
``reopen`` then waits and opens it again with backoff. Each event is one line to ``report``.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from utils.errors import DeviceError, UserError
from utils.runtime import edgetpu
from utils.runtime.faults import DeviceFault, FaultPolicy

Worker = TypeVar("Worker")
Result = TypeVar("Result")


class DeviceDown(Exception):
    """The device failed ``retries + 1`` times in a row and was closed."""

    def __init__(self, device: Device, reason: str, attempts: int, lost_ms: float):
        super().__init__(f"{device.title}: invoke failed {attempts} time{'s' if attempts != 1 else ''} "
                         f"({reason}), {lost_ms:.0f} ms lost")
        self.device, self.reason, self.attempts = device, reason, attempts


class Cancelled(Exception):
    """The caller stopped the work (a stop signal, a closed stream) while a device was down."""


class Device(Generic[Worker]):
    """A device (``name``: an Edge TPU's, None for the CPU or the first Edge TPU) and its worker.

    Safe to share between threads: jobs, closing and reopening take the device's ``lock``, so the
    worker runs one job at a time. ``failed_on`` and ``lost_ms`` of each job say which devices
    failed it and how long it was delayed. A device whose first invoke fails (``DeviceFault`` from
    ``open_worker``) starts down and is reopened by the policy, like one that failed later.
    """

    def __init__(self, name: str | None, open_worker: Callable[[str | None], Worker], policy: FaultPolicy,
                 report: Callable[[str], None], edge_tpu: bool = True, path: str | None = None):
        self.name, self.open_worker, self.policy, self.report = name, open_worker, policy, report
        # An Edge TPU's path stays when another is unplugged and the numbers shift: open it by its path
        # (``path``, when the caller found it before opening any device).
        self.path = path or (edgetpu.device_path(name) if edge_tpu else None)
        self.label = name or (self.path and edgetpu.name_of_path(self.path)) or ("the Edge TPU" if edge_tpu else "the CPU")
        self.lock = threading.RLock()
        self.down_since: float | None = None
        self.last_start = 0.0  # perf_counter() when the last successful attempt began
        self.worker: Worker | None = None
        try:
            self.worker = self._open(name)
        except DeviceFault as fault:
            self.down_since = time.monotonic()
            plan = "it is reopened in the background" if policy.reconnect != 0 else "not reopened (reconnect 0)"
            report(f"{self.title}: its first invoke failed ({fault.reason}); {plan}")

    def _open(self, name: str | None) -> Worker:
        """``open_worker``, tried again (as any invoke) when its first invoke fails (``DeviceFault``)."""
        first: DeviceFault | None = None
        for _ in range(self.policy.retries + 1):
            if self.path:  # by its path: the numbers shift when a device drops off the bus
                name = edgetpu.name_of_path(self.path)
                if name is None:
                    if first is not None:
                        raise first
                    raise DeviceError(f"{self.title}: not in libedgetpu's device list", "not in the device list")
            try:
                worker = self.open_worker(name)
            except DeviceFault as fault:
                first = first or fault
                continue
            except DeviceError:
                if first is not None:  # it failed its first invoke, then vanished: down, not a bad name
                    raise first from None
                raise
            if first is not None:
                self.report(f"{self.title}: first invoke failed ({first.reason}); it worked when retried")
            return worker
        raise first

    @property
    def title(self) -> str:
        """The device in a message: "Edge TPU usb:0", or "the Edge TPU" when it has no name."""
        return self.label if self.label.startswith("the ") else f"Edge TPU {self.label}"

    @property
    def up(self) -> bool:
        return self.worker is not None

    def run(self, job: Callable[[Worker], Result], failed_on: list[str]) -> Result:
        """``job(worker)``, tried again on a fault; ``DeviceDown`` (the worker closed) if it fails again.
        Each failed attempt appends this device's name to ``failed_on``."""
        with self.lock:
            if self.worker is None:
                raise DeviceDown(self, "closed", 0, 0.0)
            return self._run(job, failed_on)

    def _run(self, job: Callable[[Worker], Result], failed_on: list[str]) -> Result:
        first_failure, reason = None, ""
        for _ in range(self.policy.retries + 1):
            start = time.perf_counter()
            try:
                result = job(self.worker)
            except DeviceFault as fault:
                failed_on.append(self.label)
                first_failure = first_failure or start
                reason = fault.reason if not reason or fault.reason in reason else f"{reason}; then {fault.reason}"
                continue
            self.last_start = start
            if first_failure is not None:
                self.report(f"{self.title}: invoke failed ({reason}); it worked when retried, "
                            f"{(start - first_failure) * 1e3:.0f} ms lost")
            return result
        self.close()
        raise DeviceDown(self, reason, self.policy.retries + 1, (time.perf_counter() - first_failure) * 1e3)

    def lost_ms(self, first_start: float) -> float:
        """Milliseconds between a job's first attempt (``first_start``) and its successful one."""
        return (self.last_start - first_start) * 1e3

    def close(self) -> None:
        """Close the worker (its interpreter and delegate): the device is down."""
        with self.lock:
            worker, self.worker = self.worker, None
            if worker is not None:
                getattr(worker, "close", lambda: None)()
            self.down_since = time.monotonic()

    def reopen(self, cancel: threading.Event) -> bool:
        """Wait and try to open the device again, with the policy's backoff; True once it is back,
        False if the policy gave up or ``cancel`` was set."""
        with self.lock:
            return self.up or self._reopen(cancel)

    def _reopen(self, cancel: threading.Event) -> bool:
        reason, attempts = "", 0
        for wait in self.policy.waits():
            if cancel.wait(wait):
                return False
            attempts += 1
            name = edgetpu.name_of_path(self.path) if self.path else self.name
            if self.path and name is None:
                reason = "not in libedgetpu's device list"
                continue
            try:
                self.worker = self._open(name)
            except DeviceFault as fault:
                reason = f"its first invoke failed: {fault.reason}"
                continue
            except UserError as error:
                reason = error.reason if isinstance(error, DeviceError) else str(error)
                continue
            self.report(f"{self.title}: back after {time.monotonic() - self.down_since:.1f} s "
                        f"({attempts} attempt{'s' if attempts != 1 else ''})")
            return True
        if attempts:  # with reconnect 0 the close already said it is not reopened
            self.report(f"{self.title}: gave up after {attempts} attempt{'s' if attempts != 1 else ''} in "
                        f"{time.monotonic() - self.down_since:.1f} s ({reason})")
        return False


def run_on(device: Device[Worker], job: Callable[[Worker], Result], failed_on: list[str],
           cancel: threading.Event | None = None) -> Result:
    """``job`` on ``device`` alone: through its faults, waiting for it to come back while it is down;
    ``DeviceError`` once the policy gives up on it, ``Cancelled`` when ``cancel`` ends the wait."""
    cancel = cancel or threading.Event()
    while True:
        try:
            return device.run(job, failed_on)
        except DeviceDown as down:
            if down.attempts:  # not when it was down already
                device.report(f"{down}; closed it, {device.policy.outage_plan()}")
        if not device.reopen(cancel):
            if cancel.is_set():
                raise Cancelled(device.label)
            raise DeviceError(f"{device.title} failed and did not come back "
                              f"({device.policy.reconnect} reconnect attempts)" if device.policy.reconnect
                              else f"{device.title} failed (reconnect 0: not reopened)")
