"""Deal a stream of work round-robin to several devices, one thread each, results in input order.

Each worker is a callable bound to its own device (its own interpreter and buffers), so workers
never share state. ``invoke()`` releases the GIL, so while one Edge TPU computes, the others can
be fed. With one worker nothing is threaded.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def round_robin(workers: Sequence[Callable[[Item], Result]], items: Iterable[Item],
                depth: int = 2) -> Iterator[tuple[Item, Result, int]]:
    """(item, result, worker number) for every item, in the order of ``items``; item k goes to worker
    k mod n, with at most ``depth`` items queued per worker. Closing the iterator early drains the
    workers (a frame in flight finishes) before it returns."""
    if len(workers) == 1:
        for item in items:
            yield item, workers[0](item), 0
        return
    executors = [ThreadPoolExecutor(1, thread_name_prefix=f"device{i}") for i in range(len(workers))]
    pending: deque = deque()
    try:
        for k, item in enumerate(items):
            number = k % len(workers)
            pending.append((item, executors[number].submit(workers[number], item), number))
            if len(pending) >= depth * len(workers):
                item, future, number = pending.popleft()
                yield item, future.result(), number
        while pending:
            item, future, number = pending.popleft()
            yield item, future.result(), number
    finally:
        for _, future, _ in pending:
            future.cancel()
        for executor in executors:
            executor.shutdown(wait=True)
