"""One-line user errors for the command-line scripts."""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import NoReturn


class UserError(Exception):
    """Bad input from the user: reported as one line on stderr, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (``prog: error: …``), not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's ``main``; turn ``UserError`` into a one-line message and exit 2, Ctrl-C into 130,
    a closed stdout pipe into a quiet 141 (128 + SIGPIPE)."""
    prog = os.path.basename(sys.argv[0])
    try:
        status = main()
    except UserError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    sys.exit(status or 0)


@contextlib.contextmanager
def graceful_interrupt() -> Iterator[threading.Event]:
    """The first Ctrl-C only sets the event, so a frame loop can finish its frame and stop with
    its outputs consistent; a second Ctrl-C interrupts at once (a stalled camera)."""
    requested = threading.Event()

    def first(signum, frame) -> None:
        requested.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)
