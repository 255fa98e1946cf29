#!/usr/bin/env python3
"""What the CPU runs after the Edge TPU in a `--outputs detections` model, timed on its own.

    python bench/detection_tail.py            # YOLOv7-tiny (random weights) and Tiny YOLOv3 (real weights)

On an Edge TPU the compiled model hands everything from its first unmappable op on to the CPU:
TFLite_Detection_PostProcess for every detections model, and for YOLOv7's new_coords heads the size
encoding's LOG with the few ops after it. This builds both int8 PReLU models, cuts each model's CPU
tail out of the real file (the same ops, tensors and quantization; the tensors it reads from earlier
ops become its inputs, filled with their real values on dog.jpg) and times that tail on LiteRT
with one thread (the post-process's kernel loses detections with two), median of repeated invokes.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def cpu_tail(path: Path, workdir: Path) -> tuple[Path, list[str], dict[int, np.ndarray]]:
    """The model cut to the ops the static check puts on the CPU (its input conversion aside), with
    the real values of the tensors it reads on dog.jpg."""
    from ai_edge_litert.interpreter import Interpreter
    report = edgetpu_check.check(path)
    model = tflite_model.load(path)
    graph = model.subgraphs[0]
    on_cpu = [number for number, op in enumerate(report.ops)
              if not op.mapped and op.status != edgetpu_check.IO_CONVERSION]
    tail = [graph.operators[n] for n in range(on_cpu[0], len(graph.operators))]
    produced = {t for op in tail for t in op.outputs}
    constant = {t for t, tensor in enumerate(graph.tensors) if model.buffers[tensor.buffer].data is not None}
    inputs = sorted({t for op in tail for t in op.inputs if t >= 0 and t not in produced and t not in constant})
    full = Interpreter(str(path), experimental_preserve_all_tensors=True, num_threads=1)
    full.allocate_tensors()
    detector = Detector(path)
    tensor, _ = detector.adapters[0].prepare(cv2.imread(str(PHOTO)))
    full.set_tensor(full.get_input_details()[0]["index"], tensor)
    full.invoke()
    values = {t: full.get_tensor(t).copy() for t in inputs}
    graph.operators, graph.inputs = tail, np.array(inputs, np.int32)
    model.signatureDefs = []
    cut = workdir / f"{path.stem}-tail.tflite"
    tflite_model.save(model, cut)
    return cut, [report.ops[n].name for n in range(on_cpu[0], len(report.ops))], values


def time_tail(cut: Path, values: dict[int, np.ndarray], reps: int) -> float:
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(str(cut), num_threads=1)
    interpreter.allocate_tensors()
    by_name = {detail["name"]: detail["index"] for detail in interpreter.get_input_details()}
    model = tflite_model.load(cut)
    for index, value in values.items():
        interpreter.set_tensor(by_name[model.subgraphs[0].tensors[index].name.decode()], value)
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
    print(f"CPU: {cpu_description()}")
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        v7_weights = workdir / "yolov7-tiny.weights"
        write_weights(v7_weights, conv_layouts(parse_cfg(ROOT / "model_data" / "yolov7-tiny.cfg")),
                      np.random.default_rng(5))
        print("| model | ops on the CPU after the Edge TPU | tail ms per frame (LiteRT, 1 thread) |")
        print("|---|---|---|")
        for cfg, weights in (("yolov7-tiny", v7_weights), ("yolov3-tiny", fetch_weights())):
            cut, names, values = cpu_tail(build(cfg, weights, workdir, args.samples), workdir)
            print(f"| {cfg} | {', '.join(names)} | {time_tail(cut, values, args.reps):.3f} |", flush=True)


if __name__ == "__main__":
    main()
