"""Share a stream of work between several devices, one thread each, results in input order.

Each device takes the next item when it is free, so a slow or failing device holds nothing up.
An item whose device goes down goes back to the front of the queue for the devices still up (or
for this one when it is back); the down device reopens in its own thread meanwhile. Nothing is
lost or done twice: an item is queued again only when no result came from it. ``invoke()``
releases the GIL, so while one Edge TPU computes, the others are fed.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from utils.errors import DeviceError
from utils.runtime.device import Device, DeviceDown
from utils.stopping import StopRequest

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class Done(Generic[Item, Result]):
    """One item's outcome: the device that produced ``result``, the devices that failed it first and
    the milliseconds that cost it."""

    item: Item
    result: Result
    device: Device
    failed_on: list[str] = field(default_factory=list)
    lost_ms: float = 0.0


def spread(devices: Sequence[Device], items: Iterable[Item], job: Callable[[object, Item], Result],
           cancel: threading.Event | None = None, depth: int = 2) -> Iterator[Done]:
    """``job(worker, item)`` for every item, on whichever device is free, in the order of ``items``;
    at most ``depth`` items per device in flight. ``DeviceError`` when every device has given up
    (after the results before it). An error raised by ``items`` comes after the results of every
    item before it. ``cancel`` (set by the caller, or when the iterator is closed) ends the work:
    the items in flight are dropped. Closing the iterator early lets the jobs running finish (up to 1 s)."""
    cancel = StopRequest(cancel)
    lock = threading.Condition()
    queue: deque = deque()      # (number, item, failed_on, first start) waiting for a device
    results: dict[int, object] = {}  # number -> Done, or the exception its job raised
    state: dict = {"left": len(devices)}  # devices still serving; a worker's unexpected error

    def work(device: Device) -> None:
        try:
            serve(device)
        except BaseException as error:  # noqa: B902 - a bug while reopening: the consumer raises it
            state["error"] = error
        with lock:
            state["left"] -= 1
            lock.notify_all()

    def serve(device: Device) -> None:
        while not cancel.is_set():
            if not device.up and not device.reopen(cancel):
                return
            with lock:
                while not queue and not cancel.is_set():
                    lock.wait(0.1)
                if cancel.is_set():
                    return
                number, item, failed_on, first_start = queue.popleft()
            first_start = first_start or time.perf_counter()
            try:
                result = device.run(lambda worker, item=item: job(worker, item), failed_on)
                outcome = Done(item, result, device, failed_on, device.lost_ms(first_start) if failed_on else 0.0)
            except DeviceDown as down:
                others = [d.label for d in devices if d is not device and d.up]
                if down.attempts:  # not when another caller had closed it already
                    device.report(f"{down}; closed it, its frames go to {', '.join(others)}" if others
                                  else f"{down}; closed it, {device.policy.outage_plan()}")
                with lock:
                    queue.appendleft((number, item, failed_on, first_start))
                    lock.notify_all()
                continue
            except BaseException as error:  # noqa: B902 - raised in order by the consumer
                outcome = error
            with lock:
                results[number] = outcome
                lock.notify_all()

    threads = [threading.Thread(target=work, args=(device,), daemon=True, name=f"device-{device.label}")
               for device in devices]
    for thread in threads:
        thread.start()
    source, fed, wanted, exhausted, source_error = iter(items), 0, 0, False, None
    try:
        while True:
            while not exhausted and fed - wanted < depth * len(devices):
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                except Exception as error:  # noqa: BLE001 - raised after the items before it
                    exhausted, source_error = True, error
                    break
                with lock:
                    queue.append((fed, item, [], None))
                    lock.notify_all()
                fed += 1
            if exhausted and wanted == fed:
                if source_error is not None:
                    raise source_error
                return
            with lock:
                while wanted not in results and state["left"] and "error" not in state and not cancel.is_set():
                    lock.wait(0.1)  # a timeout: ``cancel`` may be a stop request nobody notifies us of
                outcome = results.pop(wanted, None)
            if "error" in state:
                raise state["error"]
            if outcome is None and cancel.is_set():
                return
            if outcome is None:
                raise DeviceError(f"no Edge TPU left: {', '.join(d.label for d in devices)} failed and did not "
                                  f"come back ({devices[0].policy.reconnect} reconnect attempts each)")
            if isinstance(outcome, BaseException):
                raise outcome
            wanted += 1
            yield outcome
    finally:
        cancel.set()
        with lock:
            lock.notify_all()
        deadline = time.monotonic() + 1.0  # a device stuck in a call that never returns is not waited for
        for thread in threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0.01))
