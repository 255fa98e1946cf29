"""Every script's --help: wrapped within 100 columns on any terminal, and saying what a new user asks."""
from __future__ import annotations

import os

import pytest

from conftest import run_script

SCRIPTS = [["convert.py"], ["keras_to_tflite_quant.py"], ["inference.py"], ["evaluate.py"],
           ["-m", "utils.quant_debug"], ["-m", "utils.fetch_weights"], ["-m", "utils.edgetpu_check"],
           ["-m", "utils.fidelity"]]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s[-1])
def test_help_fits_100_columns_on_a_wide_terminal(script):
    result = run_script(*script, "--help", env={"COLUMNS": "220"}, check=True)
    long = [line for line in result.stdout.splitlines() if len(line) > 100]
    assert not long, long
    name = "python -m " + script[1] if script[0] == "-m" else script[0]
    assert result.stdout.startswith(f"usage: {os.path.basename(name) if script[0] != '-m' else name}"), result.stdout[:80]


def test_inference_help_answers_the_first_hour():
    text = run_script("inference.py", "--help", env={"COLUMNS": "100"}, check=True).stdout
    flat = " ".join(text.split())
    assert ".h5/.keras from convert.py" in flat                      # a Keras model runs too
    assert "globs such as 'photos/*.jpg'" in flat                    # --image takes globs
    assert "optional for a --outputs detections model" in flat      # --classes
    assert "--serve" in flat and "token" in flat
