"""One-line user errors for the command-line scripts."""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from collections.abc import Callable
from typing import NoReturn


class UserError(Exception):
    """Bad input from the user: reported as one line on stderr, exit status 2."""


class DeviceError(UserError):
    """An Edge TPU that cannot be used: not found when opened, or failed and not back within the
    reconnect policy. One line; ``reason`` is libedgetpu's own words."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


HELP_WIDTH = 100


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Option help wrapped to the terminal, at most ``HELP_WIDTH`` columns; the description and the
    epilog (examples, exit statuses) as written, their lines kept within the same width."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 30, width: int | None = None):
        width = min(width or shutil.get_terminal_size().columns - 2, HELP_WIDTH)
        super().__init__(prog, indent_increment, max_help_position, width)


def program_name() -> str:
    """How the user ran this program: ``inference.py``, or ``python -m utils.quant_debug``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return f"python -m {spec.name}" if spec is not None and spec.name else os.path.basename(sys.argv[0])


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (``prog: error: …``), not a usage block, and the
    help is wrapped at most 100 columns wide (``HelpFormatter``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("prog", program_name())
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's ``main``; turn ``UserError`` into a one-line message and exit 2, a stop signal
    into 128 + its number (Ctrl-C 130, SIGTERM 143, SIGHUP 129: ``utils.stopping``), a closed stdout
    pipe into a quiet 141 (128 + SIGPIPE), and any other failure to write stdout (a full disk, an
    I/O error) into one line and exit 2, like any output that cannot be written."""
    from utils import stopping

    prog = program_name()
    try:
        try:
            with stopping.stop_signals_raise():
                status = main()
                stopping.check()  # a stop that a library swallowed: the run still ends as stopped
                sys.stdout.flush()  # a write error must surface here, not at interpreter exit
        except Exception:
            stopping.check()  # a library turned the stop into another error: the stop is what happened
            raise
    except UserError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as stop:
        signum = getattr(stop, "signum", signal.SIGINT)
        said = "interrupted" if signum == signal.SIGINT else f"stopped by {stopping.signal_name(signum)}"
        print(f"{prog}: {said}", file=sys.stderr)
        sys.exit(128 + signum)
    except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly, as Unix tools do
        _drop_stdout()
        sys.exit(141)
    except OSError as error:
        if error.filename is not None or not _stdout_fails():
            raise
        _drop_stdout()
        print(f"{prog}: error: stdout: cannot write ({error.strerror or error}); the outputs written so far "
              "are complete, the others were not started", file=sys.stderr)
        sys.exit(2)
    sys.exit(status or 0)


def _stdout_fails() -> bool:
    """Whether standard output fails a write (so the OSError came from it). The probe is a newline:
    harmless where stdout works, since the error is then re-raised as the bug it is."""
    try:
        sys.stdout.write("\n")
        sys.stdout.flush()
        return False
    except OSError:
        return True


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that nothing tries to write the lost lines again at exit."""
    devnull = open(os.devnull, "w")
    try:
        os.dup2(devnull.fileno(), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.stdout = devnull
