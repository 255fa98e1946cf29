#!/usr/bin/env python3
"""The frame loop of inference.py --video, serial against pipelined, with the real invoke and with
a timing test double for an Edge TPU.

    python bench/video_loop.py [--tiny]

The loop is the script's: decode (a reader thread), letterbox, invoke, decode + NMS, draw. The
video is 768x576 MJPEG made from the sample photos. ``SleepingInvokeTimingDouble`` replaces
``invoke()`` by a fixed sleep that leaves the CPU free, as an Edge TPU does, and returns the heads
of one real invoke: it measures the loop's overlap only, never detections.

A last line measures letterbox and post-processing outside the loop, back to back and each right
after an invoke: the difference is what an invoke's pass over the model's weights costs the stages
that follow it (their data and code are no longer in the CPU's caches).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.console import quiet_libraries  # noqa: E402
from utils.darknet.fetch_weights import fetch_weights  # noqa: E402
from utils.machine import cpu_description  # noqa: E402
from utils.media import streams  # noqa: E402
from utils.testing import model_cache  # noqa: E402
from utils.yolo.adapter import postprocess  # noqa: E402
from utils.yolo.detector import Detector  # noqa: E402
from utils.yolo.draw import draw_detections  # noqa: E402


class SleepingInvokeTimingDouble:
    """TIMING TEST DOUBLE, not a model: ``invoke`` sleeps ``ms`` (the CPU stays free, as with an Edge
    TPU) and returns the outputs of one real invoke."""

    def __init__(self, engine, ms: float, tensor: np.ndarray):
        self.outputs, self.seconds = engine.invoke(tensor), ms / 1e3

    def __call__(self, tensor: np.ndarray) -> list[np.ndarray]:
        time.sleep(self.seconds)
        return self.outputs


def make_video(path: Path, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (768, 576))
    photos = [cv2.resize(cv2.imread(str(p)), (768, 576)) for p in sorted((ROOT / "model_data" / "samples").glob("*.jpg"))]
    for i in range(frames):
        writer.write(photos[i % len(photos)])
    writer.release()


def loop(detector: Detector, video: Path, pipelined: bool) -> dict[str, float]:
    """inference.py's loop without the output file: per-frame stage medians, frames per second."""
    frames = streams.Stream(streams.video_source(str(video))).frames()
    names = detector.names
    pre, invoke, post, count = [], [], [], 0
    start = time.perf_counter()
    for frame, detections, timing in detector.detect_stream(frames, lambda f: f.image, pipelined=pipelined):
        draw_detections(frame.image, detections, names)
        pre.append(timing.pre)
        invoke.append(timing.invoke)
        post.append(timing.post)
        count += 1
    elapsed = time.perf_counter() - start
    return {"pre": float(np.median(pre[5:])), "invoke": float(np.median(invoke[5:])),
            "post": float(np.median(post[5:])), "fps": count / elapsed, "frames": count}


def warm_and_cold(detector: Detector, video: Path, count: int = 100) -> tuple[float, float, float, float]:
    """Letterbox and post-processing medians (ms) on decoded frames: back to back (caches warm), then
    each right after an invoke (which streams the model's weights through the caches, as in the loop)."""
    adapter, meta = detector.adapters[0], detector.meta
    frames = streams.Stream(streams.video_source(str(video))).frames()
    images = [frame.image for _, frame in zip(range(count), frames)]
    frames.close()
    boxes = [adapter.prepare(image)[1] for image in images]
    heads = [adapter.run(adapter.prepare(image)[0]) for image in images]
    blank = np.zeros(adapter.engine.input.shape, adapter.engine.input.dtype)

    def stages(after_invoke: bool) -> tuple[float, float]:
        pre, post = [], []
        for image, box, outputs in zip(images, boxes, heads):
            for times, work in ((pre, lambda image=image: adapter.prepare(image)),
                                (post, lambda outputs=outputs, box=box: postprocess(outputs, meta, box, detector.threshold,
                                                                                    detector.iou))):
                if after_invoke:
                    adapter.engine.invoke(blank)
                start = time.perf_counter()
                work()
                times.append(time.perf_counter() - start)
        return float(np.median(pre[5:])) * 1e3, float(np.median(post[5:])) * 1e3

    return (*stages(False), *stages(True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a short video, few samples")
    args = parser.parse_args()
    quiet_libraries(False)
    frames = 60 if args.tiny else 600
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        video = work / "v.avi"
        int8 = model_cache.built(ROOT / "model_data" / "yolov3-tiny.cfg", fetch_weights(log=lambda m: None), [],
                                 ["--num-samples", "8"] if args.tiny else [], sorted((ROOT / "model_data" / "samples").glob("*.jpg")))
        make_video(video, frames)
        print(f"Video loop, {frames} frames 768x576 MJPEG, int8 Tiny YOLOv3, LiteRT 2 threads; {cpu_description()}, "
              f"{time.strftime('%Y-%m-%d')}{' (tiny mode)' if args.tiny else ''}")
        print(f"{'invoke':34} {'loop':10} {'pre ms':>7} {'invoke ms':>9} {'post ms':>7} {'(pre+post)/invoke':>17} "
              f"{'frame/invoke':>12} {'FPS':>7}")
        for kind in ("real", 5.0, 10.0):
            results = {}
            for pipelined in (False, True):
                detector = Detector(int8, ROOT / "model_data" / "coco.names", threads=2)
                if kind != "real":
                    engine = detector.adapters[0].engine
                    engine.invoke = SleepingInvokeTimingDouble(engine, kind, np.zeros(engine.input.shape,
                                                                                       engine.input.dtype))
                results[pipelined] = r = loop(detector, video, pipelined)
                label = "real" if kind == "real" else f"timing double, sleeps {kind:g} ms"
                print(f"{label:34} {'pipelined' if pipelined else 'serial':10} {r['pre']:7.2f} {r['invoke']:9.2f} "
                      f"{r['post']:7.2f} {(r['pre'] + r['post']) / r['invoke']:17.3f} "
                      f"{(r['pre'] + r['invoke'] + r['post']) / r['invoke']:12.3f} {r['fps']:7.1f}")
            ratio = results[True]["fps"] / results[False]["fps"]
            bound = 1e3 / max(results[True]["invoke"], results[True]["pre"], results[True]["post"])
            print(f"{'':34} pipelined / serial throughput {ratio:.2f}x; 1 / slowest stage = {bound:.0f} FPS")
        warm_pre, warm_post, cold_pre, cold_post = warm_and_cold(Detector(int8, ROOT / "model_data" / "coco.names",
                                                                          threads=2), video, min(frames, 200))
        print(f"Outside the loop, on decoded frames: pre {warm_pre:.2f} ms and post {warm_post:.2f} ms back to back; "
              f"pre {cold_pre:.2f} ms and post {cold_post:.2f} ms each right after an invoke")
    return 0


if __name__ == "__main__":
    sys.exit(main())
