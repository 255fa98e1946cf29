#!/usr/bin/env python3
"""Survey Darknet cfgs as a user has them: does each convert, exactly, and which resize does it get?

    python bench/cfg_survey.py model_data/*.cfg
    python bench/cfg_survey.py path/to/darknet/cfg/*tiny*.cfg     # a checkout of hank-ai/darknet, say

For each cfg: the resize rule's verdict (by the cfg alone, and with weights written by a fork), then
convert.py with random weights in the cfg's layout. A cfg that converts is compared head by head with
OpenCV 4's own Darknet importer on a sample photo (largest difference, against the heads' spread); a
cfg that does not is listed with the one line convert.py refused it with.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.console import quiet_libraries  # noqa: E402
from utils.darknet.cfg import conv_layouts, parse_cfg  # noqa: E402
from utils.darknet.resize_rule import resize_mode  # noqa: E402
from utils.darknet.weights import write_weights  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.testing.opencv_reference import keras_heads, largest_head_difference, opencv_heads  # noqa: E402
from utils.yolo.letterbox import letterbox_float  # noqa: E402

PHOTO = ROOT / "model_data" / "samples" / "dog.jpg"


def survey(cfg: Path, work: Path) -> str:
    """One Markdown row for the cfg."""
    try:
        sections = parse_cfg(cfg)
        layouts = conv_layouts(sections)
    except UserError as error:
        return f"| {cfg.name} | – | refused: `{error}` | – |"
    fork_weights = work / "fork-header.weights"
    fork_weights.write_bytes(np.array([0, 2, 5], np.int32).tobytes() + bytes(8))
    mode, why = resize_mode(sections)
    verdict = f"{mode} ({why.split(': ', 1)[-1] if 'line' in why else why}); with 0.2.5 weights: " \
              f"{resize_mode(sections, fork_weights)[0]}"
    weights, h5 = work / f"{cfg.stem}.weights", work / f"{cfg.stem}.h5"
    write_weights(weights, layouts, np.random.default_rng(1))
    result = subprocess.run([sys.executable, "convert.py", str(cfg), str(weights), str(h5)], cwd=ROOT,
                            capture_output=True, text=True)
    if result.returncode:
        return f"| {cfg.name} | {verdict} | refused: `{result.stderr.strip().splitlines()[-1]}` | – |"
    net = sections[0]
    x = letterbox_float(cv2.imread(str(PHOTO)), (net.int("width", 416), net.int("height", 416)))
    try:
        largest, spread = largest_head_difference(keras_heads(h5, x), opencv_heads(cfg, weights, x))
    except (cv2.error, ValueError) as error:
        return f"| {cfg.name} | {verdict} | converts | OpenCV cannot compare: {str(error).splitlines()[0][:80]} |"
    return f"| {cfg.name} | {verdict} | converts | {largest:.2e} (spread {spread:.3g}) |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cfgs", nargs="+", type=Path)
    args = parser.parse_args()
    quiet_libraries(False)
    print("| cfg | resize rule | convert.py | largest head difference against OpenCV |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as directory:
        for cfg in args.cfgs:
            print(survey(cfg, Path(directory)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
