#!/usr/bin/env python3
"""What the CPU runs after the Edge TPU in a `--outputs detections` model, timed on its own.

    python bench/detection_tail.py            # YOLOv7-tiny (random weights) and Tiny YOLOv3 (real weights)

On an Edge TPU the compiled model hands everything from its first unmappable op on to the CPU:
TFLite_Detection_PostProcess for every detections model, and for YOLOv7's new_coords heads the size
encoding's LOG with the few ops after it. This builds both int8 PReLU models, cuts each piece of
that tail out of the real file (the same ops, tensors and quantization; the tensors it reads from
earlier ops become its inputs, filled with their real values on dog.jpg) and times it on LiteRT
with one thread (the post-process's kernel loses detections with two), median of repeated invokes.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.console import quiet_libraries  # noqa: E402
from utils.darknet.cfg import conv_layouts, parse_cfg  # noqa: E402
from utils.darknet.fetch_weights import fetch_weights  # noqa: E402
from utils.darknet.weights import write_weights  # noqa: E402
from utils.machine import cpu_description  # noqa: E402
from utils.quantize import edgetpu_check  # noqa: E402
from utils.tflite import model as tflite_model  # noqa: E402
from utils.yolo.detector import Detector  # noqa: E402

PHOTO = ROOT / "model_data" / "samples" / "dog.jpg"


def run(*args: str) -> None:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(args[:2])} failed:\n{result.stderr[-2000:]}")


def build(cfg: str, weights: Path, workdir: Path, samples: int) -> Path:
    h5, tflite = workdir / f"{cfg}.h5", workdir / f"{cfg}-det.tflite"
    run("convert.py", str(ROOT / "model_data" / f"{cfg}.cfg"), str(weights), str(h5), "--leaky", "prelu")
    run("keras_to_tflite_quant.py", str(h5), str(tflite), "--dataset", str(ROOT / "model_data" / "samples"),
        "--num-samples", str(samples), "--eval-images", str(PHOTO), "--outputs", "detections",
        "--classes", str(ROOT / "model_data" / "coco.names"))
    return tflite


def cut(path: Path, first: int, last: int, workdir: Path, name: str) -> tuple[Path, dict[int, np.ndarray]]:
    """The model's ops ``first`` to ``last`` (exclusive) as a model of their own, with the real values
    on dog.jpg of the tensors they read from earlier ops (its inputs now)."""
    from ai_edge_litert.interpreter import Interpreter
    model = tflite_model.load(path)
    graph = model.subgraphs[0]
    ops = [graph.operators[n] for n in range(first, last)]
    produced = {t for op in ops for t in op.outputs}
    constant = {t for t, tensor in enumerate(graph.tensors) if model.buffers[tensor.buffer].data is not None}
    inputs = sorted({t for op in ops for t in op.inputs if t >= 0 and t not in produced and t not in constant})
    if last < len(graph.operators):  # the cut ends where the next op reads
        outputs = sorted({t for t in graph.operators[last].inputs if t in produced})
    else:
        outputs = list(graph.outputs)
    with warnings.catch_warnings():  # "intended for debugging purposes": so it is here
        warnings.simplefilter("ignore")
        full = Interpreter(str(path), experimental_preserve_all_tensors=True, num_threads=1)
    full.allocate_tensors()
    tensor, _ = Detector(path).adapters[0].prepare(cv2.imread(str(PHOTO)))
    full.set_tensor(full.get_input_details()[0]["index"], tensor)
    full.invoke()
    values = {t: full.get_tensor(t).copy() for t in inputs}
    graph.operators, graph.inputs, graph.outputs = ops, np.array(inputs, np.int32), np.array(outputs, np.int32)
    model.signatureDefs = []
    piece = workdir / f"{path.stem}-{name}.tflite"
    tflite_model.save(model, piece)
    return piece, values


def time_piece(piece: Path, values: dict[int, np.ndarray], reps: int) -> float:
    """Median milliseconds of one invoke of ``piece`` on ``values`` (keyed by the full model's tensor index)."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(str(piece), num_threads=1)
    interpreter.allocate_tensors()
    by_name = {detail["name"]: detail["index"] for detail in interpreter.get_input_details()}
    tensors = tflite_model.load(piece).subgraphs[0].tensors
    for index, value in values.items():
        interpreter.set_tensor(by_name[tensors[index].name.decode()], value)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--samples", type=int, default=20, help="calibration samples per model")
    args = parser.parse_args()
    quiet_libraries(False)
    print(f"CPU: {cpu_description()}")
    print("(The post-process's cost grows with the candidates above its score threshold: random weights, as\n"
          "YOLOv7-tiny's here, put nearly every cell's box near 0.25, a worst case no trained model gives.)")
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        v7_weights = workdir / "yolov7-tiny.weights"
        write_weights(v7_weights, conv_layouts(parse_cfg(ROOT / "model_data" / "yolov7-tiny.cfg")),
                      np.random.default_rng(5))
        print("| model | ops on the CPU after the Edge TPU | ms per frame (LiteRT, 1 thread) |")
        print("|---|---|---|")
        for cfg, weights in (("yolov7-tiny", v7_weights), ("yolov3-tiny", fetch_weights())):
            path = build(cfg, weights, workdir, args.samples)
            report = edgetpu_check.check(path)
            first = next(n for n, op in enumerate(report.ops) if not op.mapped and op.status != edgetpu_check.IO_CONVERSION)
            pieces = [("size encoding", first, len(report.ops) - 1), ("post-process", len(report.ops) - 1, len(report.ops))]
            for name, start, end in pieces:
                if start == end:
                    continue
                piece, values = cut(path, start, end, workdir, name.replace(" ", "-"))
                names = ", ".join(op.name for op in report.ops[start:end])
                print(f"| {cfg}: {name} | {names} | {time_piece(piece, values, args.reps):.3f} |", flush=True)


if __name__ == "__main__":
    main()
