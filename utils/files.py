"""The file boundary: readable inputs, outputs that never replace an input, atomic writes.

Every output is written to a temporary file beside it and renamed only when complete, so a
failure (a full disk, Ctrl-C, a bad input found late) leaves what the user had untouched and no
temporary file behind. Every ``OSError`` there becomes a one-line ``UserError`` naming the file.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from utils.errors import UserError


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


def read_text(path: str | os.PathLike, what: str) -> str:
    """A text file as str: UTF-8 with or without a byte-order mark; CRLF is left to splitlines()."""
    path = require_file(path, what)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(f"{what} {path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise UserError(f"{what} {path}: cannot read ({error.strerror})") from None


def darknet_lines(text: str) -> list[str]:
    """``text`` split as Darknet's fgetl reads it: at ``\n`` only (a trailing ``\r`` dropped), so a
    Unicode line separator (U+2028, U+0085) inside a name stays part of it."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _identity(path: Path) -> tuple:
    """What makes two names the same file: (device, inode) when it exists, else the resolved path."""
    try:
        stat = path.stat()
        return (stat.st_dev, stat.st_ino)
    except OSError:
        return (str(path.resolve()),)


def check_output(dest: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), what: str = "output") -> Path:
    """Refuse, before any work, an output that is a directory, would replace one of ``inputs``
    (same name, hard link or symlink) or whose parent cannot be created."""
    dest = Path(dest)
    if dest.is_dir():
        raise UserError(f"{what} {dest}: is a directory; give a file name")
    identity = _identity(dest)
    for source in inputs:
        if _identity(Path(source)) == identity:
            raise UserError(f"{what} {dest}: is the input {source}; refusing to replace it")
    ancestor = dest.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{what} {dest}: cannot create its directory ({ancestor} is not a directory)")
    return dest


def unused_name(dest: str | os.PathLike) -> Path:
    """``dest`` if nothing has that name, else the first free ``STEM-2.EXT``, ``STEM-3.EXT``, ...:
    for outputs that must never replace a file (a recording)."""
    dest = candidate = Path(dest)
    number = 1
    while os.path.lexists(candidate):
        number += 1
        candidate = dest.with_name(f"{dest.stem}-{number}{dest.suffix}")
    return candidate


def check_writable(dest: str | os.PathLike) -> None:
    """Create and remove a temporary file beside ``dest``, so that a read-only or missing place
    is reported before the work rather than after it."""
    PendingOutputs([dest]).discard()


def _temporary_beside(dest: Path) -> Path:
    """A new empty file beside ``dest``, with the permissions a plain open() gives.

    Its suffix is ``dest``'s in lower case: writers that choose the format by the name (Keras,
    OpenCV) then accept ``OUT.H5`` or ``photo.JPG`` too.
    """
    fd, name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=dest.suffix.lower(), dir=dest.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp makes 0600 files; the rename would keep that
    return Path(name)


def _cannot_write(dest: Path, error: OSError) -> UserError:
    reason = os.strerror(error.errno) if error.errno else (str(error).strip().splitlines() or ["error"])[0][:160]
    return UserError(f"output {dest}: cannot write ({reason})")


class PendingOutputs:
    """Temporary files beside ``dests`` (directories made as needed) that become the outputs
    together on ``commit``, or vanish, with any directory made for them, on ``discard``."""

    def __init__(self, dests: list[str | os.PathLike]):
        self.dests = [Path(d) for d in dests]
        self.temporaries: list[Path] = []
        self._created: list[Path] = []
        self._committed = False
        for dest in self.dests:
            try:
                missing = []
                directory = dest.parent
                while not directory.exists() and directory != directory.parent:
                    missing.append(directory)
                    directory = directory.parent
                for path in reversed(missing):
                    path.mkdir()
                    self._created.insert(0, path)
                self.temporaries.append(_temporary_beside(dest))
            except OSError as error:
                self.discard()
                raise _cannot_write(dest, error) from None

    def commit(self, verify: Callable[[list[Path]], None] | None = None) -> None:
        """Rename every temporary into place once ``verify`` (if any) accepts them."""
        dest = self.dests[0]
        try:
            if verify:
                verify(self.temporaries)
            for tmp, dest in zip(self.temporaries, self.dests):
                os.replace(tmp, dest)
            self._committed = True
        except OSError as error:
            raise _cannot_write(dest, error) from None
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove what is left: the temporaries, and the directories made if nothing was committed."""
        for tmp in self.temporaries:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        if not self._committed:
            for directory in self._created:
                with contextlib.suppress(OSError):
                    directory.rmdir()
        self._created = []


@contextlib.contextmanager
def atomic_outputs(dests: list[str | os.PathLike], verify: Callable[[list[Path]], None] | None = None
                   ) -> Iterator[list[Path]]:
    """Yield one temporary path beside each of ``dests``; when the block succeeds (and ``verify``
    accepts the temporaries), rename them all into place. On any error nothing is renamed and
    nothing is left behind; an ``OSError`` becomes a UserError naming the output."""
    pending = PendingOutputs(dests)
    try:
        yield pending.temporaries
    except BaseException as error:
        pending.discard()
        if isinstance(error, OSError):
            raise _cannot_write(pending.dests[0], error) from None
        raise
    pending.commit(verify)


@contextlib.contextmanager
def atomic_output(dest: str | os.PathLike, verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """``atomic_outputs`` for a single file."""
    check = (lambda paths: verify(paths[0])) if verify else None
    with atomic_outputs([dest], check) as temporaries:
        yield temporaries[0]
