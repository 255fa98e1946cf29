#!/usr/bin/env python3
"""Save a model's input tensors, raw heads and detections on some images, for comparing machines.

    python bench/tensors_dump.py MODEL OUT.npz --runtime litert --kernels xnnpack IMAGE [IMAGE ...]
        [--inputs OTHER.npz] [--all-tensors MODEL_ALL.tflite]

Runs on an inference-only install (no TensorFlow); ``bench/check_arm64.py`` runs it on this machine
and in an arm64 root, then compares the two files. Per image ``N`` it saves ``N/input``, ``N/head0``...
and ``N/boxes``, ``N/scores``, ``N/classes`` (the detections down to the evaluation threshold). With
``--inputs``, the heads are computed from another run's input tensors, so that two machines' kernels
see the same numbers. With ``--all-tensors`` (a copy of MODEL whose outputs are all its tensors,
``utils.quantize.kernel_rounding.with_all_outputs``), every tensor of the first image is saved too,
as ``all/NAME``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.console import quiet_libraries  # noqa: E402
from utils.evaluation.runner import COLLECT_THRESHOLD  # noqa: E402
from utils.media.images import read_image  # noqa: E402
from utils.runtime.interpreters import interpreter_api  # noqa: E402
from utils.yolo.adapter import postprocess  # noqa: E402
from utils.yolo.detector import Detector  # noqa: E402


def all_tensors(model: Path, tensor: np.ndarray, runtime: str, kernels: str | None) -> dict[str, np.ndarray]:
    interpreter = interpreter_api(runtime).interpreter(kernels, model_path=str(model))
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    found = {f"all/{d['name']}": interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()}
    found[f"all/{interpreter.get_input_details()[0]['name']}"] = tensor.copy()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--kernels", default=None)
    parser.add_argument("--inputs", help="take the input tensors from this earlier dump")
    parser.add_argument("--all-tensors", type=Path, help="also save every tensor of the first image, from this model")
    args = parser.parse_args()
    quiet_libraries(False)
    detector = Detector(args.model, runtime=args.runtime, kernels=args.kernels, threads=2)
    adapter, meta = detector.adapters[0], detector.meta
    arrays, given = {}, np.load(args.inputs) if args.inputs else None
    for number, image in enumerate(args.images):
        tensor, box = adapter.prepare(read_image(Path(image)))
        tensor = given[f"{number}/input"] if given is not None else tensor.copy()
        arrays[f"{number}/input"] = tensor
        heads = adapter.run(tensor)
        for head, output in enumerate(heads):
            arrays[f"{number}/head{head}"] = output.data.copy()
        found = postprocess(heads, meta, box, COLLECT_THRESHOLD, detector.iou)
        arrays.update({f"{number}/boxes": found.boxes, f"{number}/scores": found.scores,
                       f"{number}/classes": found.class_ids})
        if number == 0 and args.all_tensors:
            arrays.update(all_tensors(args.all_tensors, tensor, adapter.engine.runtime, adapter.engine.kernels))
    np.savez(args.out, **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
