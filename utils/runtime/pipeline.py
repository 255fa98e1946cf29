"""Run a stream of items through stages, each stage in its own thread, joined by small queues.

While one frame is in ``invoke()`` (an Edge TPU leaves the CPU free, and TFLite releases the GIL),
the next is being letterboxed and the previous one decoded and drawn, so throughput approaches
1 / (the slowest stage) instead of 1 / (the sum of stages). One thread per stage keeps the order.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def pipeline(items: Iterable, stages: Sequence[Callable], depth: int = 2, stop=None) -> Iterator:
    """``stages[-1](...stages[0](item))`` for every item, in order. At most ``depth`` items wait
    between two stages. An exception in a stage (or in ``items``) is raised here, after the results
    before it. Closing the iterator, or setting ``stop`` (an Event, or anything with ``is_set`` and
    ``set``), stops the stages after the items already in a stage; the iterator then ends."""
    stop = stop if stop is not None else threading.Event()
    queues = [queue.Queue(maxsize=depth) for _ in range(len(stages) + 1)]

    def put(target: queue.Queue, value) -> bool:
        while not stop.is_set():
            try:
                target.put(value, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def feed() -> None:
        try:
            for item in items:
                if not put(queues[0], item):
                    return
            put(queues[0], _END)
        except BaseException as error:  # noqa: B902 - handed to the consumer
            put(queues[0], _Failure(error))
        finally:
            getattr(items, "close", lambda: None)()  # a generator's clean-up (a capture's release) runs here

    def work(stage: Callable, source: queue.Queue, target: queue.Queue) -> None:
        while not stop.is_set():
            try:
                value = source.get(timeout=0.05)
            except queue.Empty:
                continue
            if value is not _END and not isinstance(value, _Failure):
                try:
                    value = stage(value)
                except BaseException as error:  # noqa: B902 - handed to the consumer
                    value = _Failure(error)
            if not put(target, value) or value is _END or isinstance(value, _Failure):
                return

    items = iter(items)
    threads = [threading.Thread(target=feed, daemon=True, name="pipeline-feed")]
    threads += [threading.Thread(target=work, args=(stage, queues[i], queues[i + 1]), daemon=True,
                                 name=f"pipeline-{getattr(stage, '__name__', i)}") for i, stage in enumerate(stages)]
    for thread in threads:
        thread.start()
    try:
        while True:
            try:
                value = queues[-1].get(timeout=0.05)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            if value is _END:
                return
            if isinstance(value, _Failure):
                raise value.error
            yield value
    finally:
        stop.set()
        # A stage ends within 0.05 s of its item; one that does not is stuck in a call that never
        # returns (a hung device), and the feeder may be blocked inside ``items`` (a stream that is
        # down and reconnecting). They are daemons: waiting for them is bounded, so a stop is prompt.
        deadline = time.monotonic() + 1.0
        for thread in threads[1:] + threads[:1]:
            thread.join(timeout=max(deadline - time.monotonic(), 0.01))
