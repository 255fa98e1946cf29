#!/usr/bin/env python3
"""Benchmark every stage on the real Tiny YOLOv3, against OpenCV DNN and Darknet, on this machine.

    python bench/bench.py            # full run (a few minutes)
    python bench/bench.py --tiny     # few repetitions: checks that the benchmark still runs

Prints a table (median and p10–p90 over repetitions, after warm-up) and the ratios with their
targets. Absolute times on shared machines are noisy; the ratios are measured in one run.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.darknet.fetch_weights import fetch_weights  # noqa: E402
from utils.machine import cpu_description, has_int8_dot_products  # noqa: E402
from utils.yolo.detector import Detector  # noqa: E402
from utils.yolo.draw import draw_detections  # noqa: E402

CFG = ROOT / "model_data" / "yolov3-tiny.cfg"
PHOTO = ROOT / "model_data" / "samples" / "dog.jpg"
NAMES = (ROOT / "model_data" / "coco.names").read_text().split("\n")


def child_peak(command: list[str]) -> tuple[float, float, str]:
    """Like run_measured, with the child's own peak RSS from wait4."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(command[1:3])} failed with status {process.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, stdout


def stats(samples: list[float]) -> tuple[float, float, float]:
    return float(np.median(samples)), float(np.percentile(samples, 10)), float(np.percentile(samples, 90))


def time_stages(model_path: Path, threads: int, runtime: str, reps: int, warmup: int) -> dict[str, tuple]:
    """Per-frame stage times in ms on the sample photo (image already decoded)."""
    detector = Detector(model_path, runtime=runtime, threads=threads)
    image = cv2.imread(str(PHOTO))
    for _ in range(warmup):
        detector.detect_timed(image)
    rows: dict[str, list[float]] = {"pre": [], "invoke": [], "post": [], "draw": [], "frame": [], "pre alone": []}
    for _ in range(reps):
        detections, timing = detector.detect_timed(image)
        start = time.perf_counter()
        draw_detections(image.copy(), detections, NAMES)
        rows["draw"].append((time.perf_counter() - start) * 1e3)
        rows["pre"].append(timing.pre)
        rows["invoke"].append(timing.invoke)
        rows["post"].append(timing.post)
        rows["frame"].append(timing.total)
    # The same pre-processing back to back, with warm caches: inside the loop it runs right after
    # invoke(), which has pushed its buffers out of the L2 cache.
    for _ in range(reps):
        start = time.perf_counter()
        detector.adapters[0].prepare(image)
        rows["pre alone"].append((time.perf_counter() - start) * 1e3)
    return {k: stats(v) for k, v in rows.items()}


def time_opencv(weights: Path, reps: int, warmup: int) -> tuple:
    from utils.yolo.letterbox import letterbox_float
    cv2.setNumThreads(2)
    net = cv2.dnn.readNetFromDarknet(str(CFG), str(weights))
    names = net.getUnconnectedOutLayersNames()
    image = cv2.imread(str(PHOTO))
    samples = []
    for i in range(warmup + reps):
        start = time.perf_counter()
        blob = letterbox_float(image, (416, 416)).transpose(0, 3, 1, 2).copy()
        net.setInput(blob)
        net.forward(names)
        if i >= warmup:
            samples.append((time.perf_counter() - start) * 1e3)
    return stats(samples)


def time_darknet(weights: Path, reps: int) -> tuple | str:
    from utils.testing import darknet_reference as darknet_ref
    if not darknet_ref.available():
        return "not installed (apt-get install darknet)"
    net = darknet_ref.Darknet(CFG, weights)
    image = cv2.imread(str(PHOTO))
    rgb = image[..., ::-1].astype(np.float32) / 255
    darknet_image = net._image(rgb)
    net.lib.network_predict_image(net.net, darknet_image)  # warm-up
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        net.lib.network_predict_image(net.net, darknet_image)
        samples.append((time.perf_counter() - start) * 1e3)
    return stats(samples)


def tflite_runtime_status() -> str | None:
    try:
        import tflite_runtime.interpreter  # noqa: F401
        return None
    except Exception as error:  # ImportError, or numpy-ABI errors raised at import
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (f"not in this venv ({first[:60]}): tflite_runtime 2.14 needs numpy 1.x; bench/kernels.py "
                "measures it in .venv-tflite-runtime")


def video_fps(model: Path, frames: int, workdir: Path) -> tuple[float, int]:
    clip = workdir / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, (768, 576))
    photos = [cv2.resize(cv2.imread(str(p)), (768, 576)) for p in sorted((ROOT / "model_data" / "samples").glob("*.jpg"))]
    for i in range(frames):
        writer.write(photos[i % len(photos)])
    writer.release()
    result = subprocess.run([sys.executable, "inference.py", "--model", str(model), "--classes",
                             str(ROOT / "model_data" / "coco.names"), "--video", str(clip), "--no-display",
                             "--threads", "2", "--json"], cwd=ROOT, capture_output=True, text=True)
    summary = re.search(r"(\d+) frames: .*?; ([\d.]+) FPS overall", result.stderr)
    if not summary:
        raise SystemExit(f"inference.py --video failed:\n{result.stderr[-2000:]}")
    return float(summary.group(2)), int(summary.group(1))


def fmt(value) -> str:
    if isinstance(value, str):
        return value
    median, low, high = value
    return f"{median:9.3f}  ({low:.3f}–{high:.3f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="few repetitions (a smoke test of the benchmark)")
    parser.add_argument("--workdir", type=Path, help="where to build the models (default: a temporary directory)")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw the stage times as a chart")
    args = parser.parse_args()
    reps, warmup, darknet_reps, frames, calib = (5, 2, 1, 10, 4) if args.tiny else (200, 20, 5, 300, 100)

    weights = fetch_weights(log=lambda message: None)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        h5, int8, float_model = work / "tiny.h5", work / "tiny.tflite", work / "tiny_float.tflite"
        conv_wall, conv_peak, conv_out = child_peak([sys.executable, "convert.py", str(CFG), str(weights), str(h5)])
        conv_own = float(re.search(r"converted in ([\d.]+) s", conv_out).group(1))
        quant_wall, quant_peak, quant_out = child_peak([sys.executable, "keras_to_tflite_quant.py", str(h5), str(int8),
                                                        "--dataset", str(ROOT / "model_data" / "samples"),
                                                        "--num-samples", str(calib)])
        quant_own = float(re.search(r"\) in ([\d.]+) s", quant_out).group(1))
        subprocess.run([sys.executable, "keras_to_tflite_quant.py", str(h5), str(float_model), "--float"], cwd=ROOT,
                       check=True, capture_output=True)

        stages = {}
        for label, path in (("int8", int8), ("float", float_model)):
            for threads in (1, 2):
                stages[(label, threads)] = time_stages(path, threads, "litert", reps, warmup)
        status = tflite_runtime_status()
        if status is None:
            stages[("int8 tflite_runtime", 2)] = time_stages(int8, 2, "tflite_runtime", reps, warmup)
        opencv = time_opencv(weights, max(reps // 10, 3), 2)
        darknet = time_darknet(weights, darknet_reps)
        fps, frame_count = video_fps(int8, frames, work)

    print(f"tinyyolo-edgetpu benchmark, {datetime.date.today()}, {cpu_description()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}, OpenCV {cv2.__version__}"
          + (" (tiny mode)" if args.tiny else ""))
    print(f"\n{'stage':44} {'median ms':>9}  (p10–p90)")
    print(f"{'convert.py (own timer, excl. TF import)':44} {conv_own * 1e3:9.0f}   wall {conv_wall:.1f} s, peak {conv_peak:.0f} MiB")
    print(f"{f'quantize, {calib} calibration samples (own timer)':44} {quant_own * 1e3:9.0f}   wall {quant_wall:.1f} s, peak {quant_peak:.0f} MiB")
    for (label, threads), table in stages.items():
        for stage in ("pre", "invoke", "post", "draw", "frame", "pre alone"):
            print(f"{f'{label} LiteRT {threads} thr: {stage}' if 'tflite_runtime' not in label else f'{label} {threads} thr: {stage}':44} {fmt(table[stage])}")
    if status:
        print(f"{'int8 tflite_runtime':44} {status}")
    print(f"{'OpenCV DNN float, 2 threads (letterbox + forward)':44} {fmt(opencv)}")
    print(f"{'Darknet (libdarknet CPU, network_predict_image)':44} {fmt(darknet)}")
    print(f"{f'inference.py --video, {frame_count} frames 768x576':44} {1e3 / fps:9.3f}   ({fps:.1f} FPS)")

    int8_2 = stages[("int8", 2)]
    frame, invoke = int8_2["frame"][0], int8_2["invoke"][0]
    checks = [
        ("decode + NMS <= 0.5 ms", int8_2["post"][0], 0.5, int8_2["post"][0] <= 0.5),
        ("pre-processing (768x576) <= 1 ms", int8_2["pre"][0], 1.0, int8_2["pre"][0] <= 1.0),
        ("whole frame / invoke (2 threads) <= 1.15", frame / invoke, 1.15, frame / invoke <= 1.15),
    ]
    if has_int8_dot_products():  # without them int8 is no faster than float, so no faster than OpenCV's float
        checks.append(("OpenCV DNN / int8 whole frame >= 4", opencv[0] / frame, 4, opencv[0] / frame >= 4))
    if not isinstance(darknet, str):
        checks.append(("Darknet / int8 whole frame >= 40", darknet[0] / frame, 40, darknet[0] / frame >= 40))
    checks.append(("video FPS / (1 / whole frame) >= 0.85", fps * frame / 1e3, 0.85, fps * frame / 1e3 >= 0.85))
    print("\ntarget                                        measured   pass")
    for name, value, _, ok in checks:
        print(f"{name:44} {value:9.3f}   {'PASS' if ok else 'FAIL'}")
    if args.plot:
        from figures import SPEED_SIZE as SIZE  # bench/figures.py, beside this script
        from figures import speed_chart
        rows = [(f"{label} {'LiteRT ' if 'tflite_runtime' not in label else ''}{threads} thr",
                 {stage: table[stage][0] for stage in ("pre", "invoke", "post", "draw")})
                for (label, threads), table in stages.items()]
        others = [("OpenCV DNN float, 2 threads", opencv[0])] + ([] if isinstance(darknet, str) else
                                                                [("Darknet (libdarknet CPU)", darknet[0])])
        speed_chart(rows, others, f"Tiny YOLOv3 per frame, {cpu_description()}, {os.cpu_count()} cores"
                    + (" (tiny mode)" if args.tiny else ""), args.plot)
        print(f"wrote {args.plot} ({'x'.join(map(str, SIZE))} pixels)")
    speedup = stages[("float", 2)]["invoke"][0] / invoke
    print(f"{'float / int8 invoke (2 threads)':44} {speedup:9.3f}   (no target: " + (
        "this CPU has 8-bit dot products)" if has_int8_dot_products() else
        "this CPU has no 8-bit dot products, so int8 is no faster than float here; OpenCV DNN target skipped)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
