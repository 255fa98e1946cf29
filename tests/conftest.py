"""Shared fixtures: the real weights (fetched and cached), sample photos, built models, script runner."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL_DATA = ROOT / "model_data"

from utils.testing import model_cache  # noqa: E402
from utils.testing.darknet_reference import reference_photos  # noqa: E402


def run_script(*args: str, check: bool = False, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a repository script or module with this interpreter; text output captured."""
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def run_in_process(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``[script.py, args…]`` or ``["-m", module, args…]`` in this process, from ``cwd``, as
    ``python`` would run it as ``__main__``: the exit status from ``SystemExit``, what the script
    writes to ``sys.stdout``/``sys.stderr``, and an escaping exception as a traceback with status 1.

    It saves the interpreter's and TensorFlow's start-up (seconds a call) where neither signals,
    file descriptors nor native crashes are the point; each script keeps true subprocess tests.
    """
    import contextlib
    import io
    import runpy
    import traceback
    argv = [command[1], *command[2:]] if command[0] == "-m" else [str(ROOT / command[0]), *command[1:]]
    out, err = io.StringIO(), io.StringIO()
    saved_cwd, saved_argv, status = os.getcwd(), sys.argv, 0
    try:
        os.chdir(cwd)
        sys.argv = argv
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if command[0] == "-m":
                    runpy.run_module(command[1], run_name="__main__", alter_sys=True)
                else:
                    runpy.run_path(argv[0], run_name="__main__")
            except SystemExit as exit:
                status = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
                if not isinstance(exit.code, (int, type(None))):
                    print(exit.code, file=sys.stderr)
            except BaseException:  # noqa: BLE001  (what the interpreter would print and exit 1 on)
                traceback.print_exc()
                status = 1
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
    return subprocess.CompletedProcess(argv, status, out.getvalue(), err.getvalue())


def error_lines(stderr: str) -> list[str]:
    """stderr without TensorFlow's unavoidable start-up chatter."""
    noise = ("WARNING: All log messages", "I0000", "W0000", "E0000", "To enable the following", "INFO:")
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(noise)]


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, no traceback, and the error as one line (the last), naming the problem.

    Progress bars and warnings about skipped inputs may come before it.
    """
    lines = error_lines(result.stderr)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in lines if ": error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


@pytest.fixture(scope="session")
def weights() -> Path:
    from utils.darknet.fetch_weights import fetch_weights
    return fetch_weights(log=lambda message: None)


@pytest.fixture(scope="session")
def tiny_cfg() -> Path:
    return MODEL_DATA / "yolov3-tiny.cfg"


@pytest.fixture(scope="session")
def coco_names() -> Path:
    return MODEL_DATA / "coco.names"


def sample_paths() -> list[Path]:
    """The repository's photos, plus Darknet's own when Debian's darknet is installed."""
    return reference_photos()


@pytest.fixture(scope="session")
def samples() -> list[Path]:
    return sample_paths()


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def model_factory(build_dir, weights, tiny_cfg, tmp_path_factory):
    """Converted and quantized models: factory(name, convert args, quant args, cfg, weights) -> path.

    ``name`` is only the file name in ``build_dir``: models with the same cfg, weights and
    arguments are one build, kept between sessions by ``model_cache``. ``quant_args=None`` stops
    at the Keras model; a list quantizes it on the sample photos with those extra arguments (a
    ``--dataset`` among them replaces the photos), and what the quantizer printed is NAME.stdout.
    """
    root = model_cache.cache_root(tmp_path_factory.getbasetemp())
    model_cache.prune(root)
    calibration = [str(p) for p in sample_paths()]

    def converted(cfg: Path, weights_path: Path, convert_args) -> Path:
        return model_cache.converted(root, cfg, weights_path, convert_args)

    def quantized(h5_entry: Path, quant_args) -> Path:
        return model_cache.quantized(root, h5_entry, quant_args, calibration)

    def make(name: str, convert_args=(), quant_args=None, cfg: Path | None = None,
             weights_path: Path | None = None) -> Path:
        entry = converted(cfg or tiny_cfg, weights_path or weights, convert_args)
        h5 = build_dir / f"{name}.h5"
        if not h5.exists():
            for suffix in (".h5", "_yolo.json", "_anchors.txt"):
                shutil.copy(entry / f"model{suffix}", build_dir / f"{name}{suffix}")
        if quant_args is None:
            return h5
        tflite = build_dir / f"{name}.tflite"
        if not tflite.exists():
            built = quantized(entry, quant_args)
            shutil.copy(built / "model.tflite", tflite)
            shutil.copy(built / "model.stdout", tflite.with_suffix(".stdout"))
        return tflite
    return make


def sized_cfg_text(cfg: Path, size: tuple[int, int]) -> str:
    """The cfg's text with [net] width/height set to ``size`` (for references that read them from the cfg)."""
    text = re.sub(r"(?m)^width\s*=\s*\d+", f"width={size[0]}", cfg.read_text(), count=1)
    return re.sub(r"(?m)^height\s*=\s*\d+", f"height={size[1]}", text, count=1)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(x2 - x1, 0) * max(y2 - y1, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(reference: list[tuple], candidate: list[tuple], min_score: float, min_iou: float, max_dscore: float):
    """Reference detections (class, score, box) with score ≥ min_score lacking a match in candidate, and vice versa.

    A match has the same class, IoU ≥ min_iou and |Δscore| ≤ max_dscore. Candidates are matched
    against all references (also those just under min_score), so a threshold-straddling pair is not extra.
    """
    missing = [r for r in reference if r[1] >= min_score and not any(
        c[0] == r[0] and iou(np.array(r[2]), np.array(c[2])) >= min_iou and abs(c[1] - r[1]) <= max_dscore
        for c in candidate)]
    extra = [c for c in candidate if c[1] >= min_score and not any(
        c[0] == r[0] and iou(np.array(r[2]), np.array(c[2])) >= min_iou and abs(c[1] - r[1]) <= max_dscore
        for r in reference)]
    return missing, extra


@pytest.fixture(scope="session")
def standin_edgetpu(tmp_path_factory) -> Path:
    """utils/testing/standin_edgetpu.c built with the system C compiler: an Edge TPU library whose
    delegate claims the edgetpu-custom-op of a stand-in compiled model and fails on a schedule
    (utils.runtime.edgetpu.LIBRARY_VARIABLE points the code at it)."""
    from utils.testing import standin
    try:
        return standin.build(tmp_path_factory.mktemp("standin"))
    except RuntimeError as error:
        if os.environ.get("CI") == "true":  # `make test` installs one: under CI its absence is an error
            raise
        pytest.skip(str(error))


def venv_python(name: str, requirements: Path, *extra: str) -> str:
    """The Python of a venv made from ``requirements`` (and ``extra`` packages), as the Makefile's
    NAME/.installed target makes it. It is kept beside the model cache, keyed by the requirements'
    bytes, so a new clone reuses it, and ROOT/NAME points at it (for make's targets and the benches);
    a NAME/.installed that make built and that is newer than the requirements is used as is. Built
    once for parallel workers. Under CI a failed install is an error, elsewhere a skip."""
    local = ROOT / name
    marker = local / ".installed"
    if not local.is_symlink() and marker.exists() and marker.stat().st_mtime >= requirements.stat().st_mtime:
        return str(local / "bin" / "python")
    key = hashlib.sha256(requirements.read_bytes() + repr((extra, sys.version)).encode()).hexdigest()[:16]
    venv = model_cache.cache_root(ROOT / ".pytest-venvs").parent / "venvs" / f"{name.lstrip('.')}-{key}"
    python = venv / "bin" / "python"
    with model_cache.locked(venv.parent / f"{venv.name}.lock"):
        if not (venv / ".installed").exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements), *extra],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                if os.environ.get("CI") == "true":
                    raise AssertionError(f"cannot install {requirements.name}:\n{result.stderr}")
                pytest.skip(f"cannot install {requirements.name}: {result.stderr.strip().splitlines()[-1:]}")
            (venv / ".installed").touch()
        if local.is_symlink() or not local.exists():
            link = ROOT / f".{name}.link"
            link.unlink(missing_ok=True)
            link.symlink_to(venv)
            os.replace(link, local)
    return str(python)


@pytest.fixture(scope="session")
def tflite_runtime_python() -> str:
    """.venv-tflite-runtime: requirements-tflite-runtime.txt (tflite_runtime, numpy 1.x; no LiteRT,
    no TensorFlow) plus pytest."""
    if sys.version_info >= (3, 12):
        pytest.skip("tflite-runtime 2.14 has no wheel for Python 3.12 or newer")
    return venv_python(".venv-tflite-runtime", ROOT / "requirements-tflite-runtime.txt", "pytest>=8,<10")


@pytest.fixture(scope="session")
def task_library_python() -> str:
    """.venv-task-library: requirements-task-library.txt (the TFLite Task Library, tflite-support
    0.4.4, numpy 1.x)."""
    if sys.version_info >= (3, 12) or sys.platform != "linux":
        pytest.skip("tflite-support 0.4.4 has Linux wheels for Python 3.9 to 3.11 only")
    return venv_python(".venv-task-library", ROOT / "requirements-task-library.txt")


# The longest tests first, so that parallel workers (make test runs two) finish together rather
# than one waiting on a long test picked up last.
LONGEST_FIRST = ("test_walkthrough_runs_as_written", "benchmark_tiny_mode", "test_three_heads_yolov3",
                 "test_random_weights_match_opencv[yolov3")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        return next((i for i, name in enumerate(LONGEST_FIRST) if name in item.nodeid), len(LONGEST_FIRST))
    items.sort(key=rank)
