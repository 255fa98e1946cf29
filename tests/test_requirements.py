"""Every requirements file resolves from wheels alone on every platform it claims, for Python 3.10 to 3.13.

uv's resolver is asked as if it ran there (``--python-platform``, ``--python-version``): unlike pip's
``--platform``, it evaluates environment markers for the target. Nothing is installed. README's
support matrix is rendered from SUPPORT below, so the two cannot disagree.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
PLATFORMS = {  # README's name: uv's target (the oldest C library and OS release the wheels must accept)
    "Linux x86-64": "x86_64-manylinux_2_28",
    "Raspberry Pi OS Bookworm 64-bit (Linux aarch64, glibc 2.36)": "aarch64-manylinux_2_36",
    "macOS 13+ on Apple silicon": "aarch64-apple-darwin",
    "Windows x86-64": "x86_64-pc-windows-msvc",
}
ALL = tuple(PLATFORMS)
LINUX = ALL[:2]
# file: (what it is for, the platforms it applies to, the Pythons it resolves for, why not the others)
SUPPORT = {
    "requirements-infer.txt": ("inference (LiteRT)", ALL, PYTHONS, ""),
    "requirements-convert.txt": ("conversion and quantization (TensorFlow 2.21)", ALL, PYTHONS, ""),
    "requirements-dev.txt": ("the tests (`make test`)", ALL, PYTHONS, ""),
    "requirements-tflite-runtime.txt": ("inference on tflite_runtime 2.14", LINUX, ("3.10", "3.11"),
                                        "tflite-runtime 2.14, its last release, has no wheels for Python 3.12+, "
                                        "macOS or Windows"),
}
CASES = [(name, platform, python) for name, (_, platforms, _, _) in SUPPORT.items()
         for platform in platforms for python in PYTHONS]


def resolve(requirements: str, platform: str, python: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uv", "pip", "compile", "--quiet", "--no-header", "--only-binary",
                           ":all:", "--python-platform", PLATFORMS[platform], "--python-version", python,
                           requirements, "-o", os.devnull], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}, timeout=300)


def offline(result: subprocess.CompletedProcess) -> bool:
    return any(words in result.stderr for words in ("dns error", "Failed to fetch", "error sending request"))


@pytest.mark.parametrize("requirements, platform, python", CASES)
def test_requirements_resolve_from_wheels(requirements, platform, python):
    result = resolve(requirements, platform, python)
    if offline(result) and os.environ.get("CI") != "true":
        pytest.skip("PyPI is not reachable")
    expected = python in SUPPORT[requirements][2]
    assert (result.returncode == 0) == expected, result.stderr[-1500:]
    if not expected:
        assert "tflite-runtime" in result.stderr  # fails for the documented reason, not another


def support_table() -> str:
    """README's matrix: one row per requirements file, one column per platform."""
    lines = ["| requirements | for | " + " | ".join(PLATFORMS) + " |", "|---|---|" + "---|" * len(PLATFORMS)]
    for name, (purpose, platforms, pythons, _) in SUPPORT.items():
        cells = [f"Python {pythons[0]}–{pythons[-1]}" if p in platforms else "no" for p in PLATFORMS]
        lines.append(f"| `{name}` | {purpose} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_readme_states_the_matrix_this_test_proves():
    assert support_table() in (ROOT / "README.md").read_text(), "README's support matrix:\n" + support_table()
