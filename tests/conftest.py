"""Shared fixtures: the real weights (fetched and cached), sample photos, built models, script runner."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL_DATA = ROOT / "model_data"

from utils.darknet_ref import reference_photos  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: uses the real weights or builds TFLite models (deselect with -m 'not slow')")


def run_script(*args: str, check: bool = False, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a repository script or module with this interpreter; text output captured."""
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


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
    from utils.fetch_weights import fetch_weights
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
def model_factory(build_dir, weights, tiny_cfg):
    """Build (once per session) converted and quantized models: factory(name, cfg, weights, convert args, quant args)."""
    built: dict[str, Path] = {}

    def make(name: str, convert_args=(), quant_args=None, cfg: Path | None = None, weights_path: Path | None = None) -> Path:
        if name in built:
            return built[name]
        h5 = build_dir / f"{name}.h5"
        if not h5.exists():
            run_script("convert.py", str(cfg or tiny_cfg), str(weights_path or weights), str(h5), *convert_args, check=True)
        if quant_args is None:
            built[name] = h5
            return h5
        tflite = build_dir / f"{name}.tflite"
        calibration = [str(p) for p in sample_paths()]
        run_script("keras_to_tflite_quant.py", str(h5), str(tflite), "--dataset", *calibration, *quant_args, check=True)
        built[name] = tflite
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
    """tests/standin_edgetpu.c built with the system C compiler: an Edge TPU library whose delegate
    claims no nodes (utils.edgetpu.LIBRARY_VARIABLE points the code at it)."""
    import shutil
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler (cc, gcc or clang) to build the stand-in Edge TPU library")
    library = tmp_path_factory.mktemp("standin") / "libstandin_edgetpu.so"
    subprocess.run([compiler, "-Wall", "-Werror", "-shared", "-fPIC", "-o", str(library),
                    str(ROOT / "tests" / "standin_edgetpu.c")], check=True)
    return library


@pytest.fixture(scope="session")
def tflite_runtime_python() -> str:
    """The Python of .venv-tflite-runtime, made from requirements-tflite-runtime.txt (tflite_runtime,
    numpy 1.x; no LiteRT, no TensorFlow) plus pytest, as `make .venv-tflite-runtime/.installed` makes
    it: rebuilt when the file is newer. Under CI a failed install is an error, elsewhere a skip."""
    requirements = ROOT / "requirements-tflite-runtime.txt"
    if sys.version_info >= (3, 12):
        pytest.skip("tflite-runtime 2.14 has no wheel for Python 3.12 or newer")
    venv = ROOT / ".venv-tflite-runtime"
    marker, python = venv / ".installed", venv / "bin" / "python"
    if not marker.exists() or marker.stat().st_mtime < requirements.stat().st_mtime:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements), "pytest>=8,<10"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            if os.environ.get("CI") == "true":
                raise AssertionError(f"cannot install {requirements.name}:\n{result.stderr}")
            pytest.skip(f"cannot install {requirements.name}: {result.stderr.strip().splitlines()[-1:]}")
        marker.touch()
    return str(python)
