#!/usr/bin/env python3
"""Save the input tensor and raw heads of a model on some photos, for comparing machines.

    python bench/tensors_dump.py MODEL OUT.npz --runtime litert --kernels xnnpack PHOTO [PHOTO ...]
        [--inputs OTHER.npz]

Runs on an inference-only install (no TensorFlow); ``bench/check_arm64.py`` runs it on this machine
and in an arm64 root, then compares the two files value for value. With ``--inputs``, the heads are
computed from another run's input tensors, so that two machines' kernels see the same numbers.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.console import quiet_libraries  # noqa: E402
from utils.media.images import read_image  # noqa: E402
from utils.yolo.detector import Detector  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--kernels", default=None)
    parser.add_argument("--inputs", help="take the input tensors from this earlier dump")
    args = parser.parse_args()
    quiet_libraries(False)
    adapter = Detector(args.model, runtime=args.runtime, kernels=args.kernels, threads=2).adapters[0]
    arrays, given = {}, np.load(args.inputs) if args.inputs else None
    for number, photo in enumerate(args.photos):
        tensor = given[f"{number}/input"] if given is not None else adapter.prepare(read_image(Path(photo)))[0]
        arrays[f"{number}/input"] = tensor.copy()
        for head, output in enumerate(adapter.run(tensor)):
            arrays[f"{number}/head{head}"] = output.data.copy()
    np.savez(args.out, **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
