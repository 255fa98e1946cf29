"""File helpers: atomic output and readable-input checks."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import UserError


def require_file(path: str | os.PathLike, what: str) -> Path:
    """Return ``path`` as a Path if it is a readable file, else raise a UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path}: no such file")
    if not path.is_file():
        raise UserError(f"{what} {path}: not a file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{what} {path}: not readable")
    return path


def temporary_beside(dest: str | os.PathLike) -> Path:
    """A new empty file beside ``dest`` (same suffix), with the permissions a plain open() gives."""
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output {dest}: directory {parent} does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=dest.suffix, dir=parent)
    except OSError as error:
        raise UserError(f"output {dest}: cannot write ({error.strerror})") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp makes 0600 files; the rename would keep that
    return Path(name)


@contextlib.contextmanager
def atomic_output(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest`` (same suffix); rename it to ``dest`` on success.

    On any error the temporary file is removed, so no half-written output is left behind.
    """
    tmp = temporary_beside(dest)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(dest: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``dest`` atomically."""
    with atomic_output(dest) as tmp:
        tmp.write_text(text)
