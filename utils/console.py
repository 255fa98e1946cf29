"""What the scripts print: their own lines, not the libraries' start-up chatter.

TensorFlow, its converter and LiteRT write from native code straight to file descriptors 1
and 2 (absl's pre-init warning, oneDNN, MLIR statistics, "Created TensorFlow Lite XNNPACK
delegate"), which no Python setting reaches. So, unless ``--verbose``, those descriptors go to
/dev/null while ``sys.stdout``/``sys.stderr`` keep writing to the real terminal or pipe.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


_SHOW_LIBRARY_MESSAGES = False
_STDERR_LOCK = threading.Lock()


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true",
                        help="also show the libraries' own messages (TensorFlow, LiteRT, OpenCV)")


def _python_stream(fd: int, like: io.TextIOBase) -> io.TextIOWrapper:
    """A line-buffered text stream on a duplicate of ``fd``, with ``like``'s encoding."""
    return io.TextIOWrapper(os.fdopen(os.dup(fd), "wb"), encoding=like.encoding, errors=like.errors,
                            line_buffering=True)  # our lines in order with the progress bars


def quiet_libraries(verbose: bool = False) -> None:
    """Silence the libraries (unless ``verbose``); call once, before importing TensorFlow or LiteRT."""
    global _SHOW_LIBRARY_MESSAGES
    _SHOW_LIBRARY_MESSAGES = verbose
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = getattr(sys, name)
        if stream is None or not hasattr(stream, "fileno"):
            continue
        try:
            if stream.fileno() != fd:
                continue
        except (OSError, ValueError):  # not a real file (pytest's capture, a StringIO)
            continue
        stream.flush()
        setattr(sys, name, _python_stream(fd, stream))
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for module in ("tensorflow", "keras", "h5py", "absl"):
        warnings.filterwarnings("ignore", module=module)


@contextlib.contextmanager
def native_stderr_hidden() -> Iterator[None]:
    """File descriptor 2 on /dev/null for the block, for native libraries' one-off notices (LiteRT's
    "Created TensorFlow Lite XNNPACK delegate for CPU."), unless ``quiet_libraries(verbose=True)``.
    Python's own stderr is flushed first; keep the block short: it holds a process-wide lock."""
    if _SHOW_LIBRARY_MESSAGES:
        yield
        return
    with _STDERR_LOCK:
        if sys.stderr is not None:
            sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def progress_bar(total: int | None, label: str, unit: str = "it"):
    """A tqdm bar on stderr with count, rate and ETA when stderr is a terminal; None otherwise (a log
    or a pipe gets plain lines instead). tqdm is imported only for a terminal."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except OSError:
        size = os.terminal_size((0, 0))
    # A terminal that reports no size (a serial console, a fresh pty) gets 80x24: tqdm would hide the bar.
    known = size.columns > 0 and size.lines > 0
    return tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=True, dynamic_ncols=known,
                ncols=None if known else 80, nrows=None if known else 24)


class Progress:
    """``label 12/34``: an updating bar with ETA on a terminal, a line per tenth elsewhere (logs)."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.done, self._shown = total, label, 0, -1
        self.bar = progress_bar(total, label)

    def step(self, count: int = 1) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
            if self.done >= self.total:
                self.bar.close()
        elif self.done * 10 // max(self.total, 1) > self._shown:
            self._shown = self.done * 10 // max(self.total, 1)
            print(f"{self.label} {self.done}/{self.total}", file=sys.stderr, flush=True)


def plural(count: int, noun: str) -> str:
    """``1 image``, ``2 images``, ``0 images``, ``3 boxes``."""
    return f"{count} {noun}{'' if count == 1 else 'es' if noun.endswith(('s', 'x')) else 's'}"


def progress(items: Sequence[T], label: str) -> Iterator[T]:
    """``items`` one by one, with a ``Progress`` line counting them."""
    bar = Progress(len(items), label)
    for item in items:
        bar.step()
        yield item
