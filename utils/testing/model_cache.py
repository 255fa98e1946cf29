"""Built models for tests and benches, kept between runs: each keyed by the hash of the code and the
inputs that made it.

Converting and quantizing the same few models dominated the suite's time. A model is built once by
the real scripts (``convert.py``, ``keras_to_tflite_quant.py``) in a child process, stored under
``$TINYYOLO_TEST_CACHE`` (default: ``<weights cache>/test-models``), and copied out on later requests.
The key covers every file of ``utils/``, both scripts, the library versions and the exact inputs
(cfg bytes, weights bytes, arguments, calibration images), so any change to any of them rebuilds.
A lock per key lets parallel workers share one build. ``TINYYOLO_TEST_CACHE=off`` builds afresh
every session, into the session's own directory.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import cache
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = ("convert.py", "keras_to_tflite_quant.py")
LIBRARIES = ("tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert", "numpy", "h5py", "opencv-python-headless")
KEEP_DAYS = 3  # entries unused for longer are removed at the start of a session
KEEP_BYTES = 4 << 30  # and the least recently used beyond this (one code version's models take ~1.9 GiB)


def cache_root(session_dir: Path | None = None) -> Path:
    """Where built models are kept; with ``TINYYOLO_TEST_CACHE=off``, in ``session_dir`` (or a new
    temporary directory), so nothing outlives the run."""
    setting = os.environ.get("TINYYOLO_TEST_CACHE", "")
    if setting == "off":
        return (session_dir or Path(tempfile.mkdtemp(prefix="tinyyolo-models-"))) / "model-cache"
    if setting:
        return Path(setting)
    from utils.darknet.fetch_weights import cache_dir
    return cache_dir() / "test-models"


@cache
def code_digest() -> str:
    """Every source file that can change a built model, and the versions of the libraries that build it."""
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "utils").rglob("*.py"), *(ROOT / name for name in CODE)]):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    for library in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            digest.update(f"{library}=={metadata.version(library)}".encode())
    return digest.hexdigest()


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _FILE_DIGESTS[key]


def key_of(*parts: object) -> str:
    return hashlib.sha256(repr((code_digest(), *parts)).encode()).hexdigest()[:24]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch(root: Path, key: str, build: Callable[[Path], None]) -> Path:
    """The entry directory for ``key``: built by ``build(directory)`` unless a complete one exists."""
    entry = root / key
    with locked(root / f"{key}.lock"):
        if not (entry / ".complete").exists():
            shutil.rmtree(entry, ignore_errors=True)
            work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
            try:
                build(work)
                (work / ".complete").touch()
                os.rename(work, entry)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        os.utime(entry / ".complete")  # last used, for pruning
    return entry


def _size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def prune(root: Path, keep_days: float = KEEP_DAYS, keep_bytes: int = KEEP_BYTES) -> None:
    """Remove entries unused for ``keep_days``, then the least recently used ones beyond
    ``keep_bytes``: each code change leaves a generation of models behind."""
    if not root.is_dir():
        return
    cutoff = time.time() - keep_days * 86400
    entries = []
    for entry in root.iterdir():
        marker = entry / ".complete"
        if not entry.is_dir():
            continue  # a lock file
        used = marker.stat().st_mtime if marker.exists() else entry.stat().st_mtime
        if not marker.exists():  # a build under way in another worker, or one that died long ago
            if used < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
            continue
        if used < cutoff:
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entries.append((used, entry))
    total = sum(_size(entry) for _, entry in entries)
    for _, entry in sorted(entries):
        if total <= keep_bytes:
            break
        total -= _size(entry)
        shutil.rmtree(entry, ignore_errors=True)


def _script(*args: object) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def converted(root: Path, cfg: Path, weights: Path, convert_args=()) -> Path:
    """The entry holding ``model.h5`` (and its sidecars) that ``convert.py CFG WEIGHTS … ARGS`` writes."""
    key = key_of("convert", file_digest(cfg), file_digest(weights), tuple(convert_args))
    return fetch(root, key, lambda d: _script("convert.py", cfg, weights, d / "model.h5", *convert_args))


def quantized(root: Path, h5_entry: Path, quant_args=(), calibration=()) -> Path:
    """The entry holding ``model.tflite`` (and what the quantizer printed, ``model.stdout``) that
    ``keras_to_tflite_quant.py`` writes from ``h5_entry``'s model with ``--dataset CALIBRATION … ARGS``."""
    key = key_of("quantize", h5_entry.name, tuple(quant_args), tuple(file_digest(Path(p)) for p in calibration))

    def build(directory: Path) -> None:
        dataset = ["--dataset", *calibration] if calibration else []
        result = _script("keras_to_tflite_quant.py", h5_entry / "model.h5", directory / "model.tflite", *dataset,
                         *quant_args)
        (directory / "model.stdout").write_text(result.stdout)
    return fetch(root, key, build)


def built(cfg: Path, weights: Path, convert_args=(), quant_args=None, calibration=()) -> Path:
    """For benches: ``convert.py``'s model (``quant_args`` None) or ``keras_to_tflite_quant.py``'s, from the cache."""
    root = cache_root()
    entry = converted(root, cfg, weights, convert_args)
    if quant_args is None:
        return entry / "model.h5"
    return quantized(root, entry, quant_args, calibration) / "model.tflite"
