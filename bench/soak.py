#!/usr/bin/env python3
"""Soak test: inference.py on a looping HTTP MJPEG camera for minutes, writing segments; resident
memory over time, and every finished segment decoded to its last frame. Not part of `make bench`
(it takes as long as you ask).

    python bench/soak.py [--minutes 12] [--segment-minutes 2]
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.darknet.fetch_weights import fetch_weights  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def decodable_frames(path: Path) -> int:
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--segment-minutes", type=float, default=2.0)
    parser.add_argument("--fps", type=float, default=25.0, help="the camera's frame rate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run = lambda *command: subprocess.run([sys.executable, *command], cwd=ROOT, check=True,  # noqa: E731
                                              capture_output=True)
        run("convert.py", str(ROOT / "model_data" / "yolov3-tiny.cfg"), str(fetch_weights(log=lambda m: None)),
            str(work / "m.h5"))
        run("keras_to_tflite_quant.py", str(work / "m.h5"), str(work / "m.tflite"), "--dataset",
            str(ROOT / "model_data" / "samples"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        camera = subprocess.Popen([sys.executable, "-m", "utils.media.loopback.mjpeg_server", str(port),
                                   str(ROOT / "model_data" / "samples" / "clip.mp4"), str(args.fps), "--loop"],
                                  cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert camera.stdout.readline().strip() == "ready"
        output = work / "soak.mp4"
        detector = subprocess.Popen([sys.executable, "inference.py", "--model", str(work / "m.tflite"), "--classes",
                                     str(ROOT / "model_data" / "coco.names"), "--video",
                                     f"http://127.0.0.1:{port}/live.mjpg", "--json", "--no-display", "--threads", "2",
                                     "--output", str(output), "--segment-minutes", str(args.segment_minutes)],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples, frames, start = [], 0, time.monotonic()
        next_sample = start + 30
        for line in detector.stdout:
            json.loads(line)
            frames += 1
            now = time.monotonic()
            if now >= next_sample:
                samples.append(((now - start) / 60, rss_kib(detector.pid), frames))
                next_sample += 30
            if now - start >= args.minutes * 60:
                break
        detector.send_signal(2)  # Ctrl-C: the open segment is completed
        for _ in detector.stdout:
            frames += 1
        status = detector.wait(timeout=120)
        camera.kill()
        stderr = detector.stderr.read()
        segments = sorted(work.glob("soak_*.mp4"))
        counts = [(p.name, int(cv2.VideoCapture(str(p)).get(cv2.CAP_PROP_FRAME_COUNT)), decodable_frames(p))
                  for p in segments]
    print(f"Soak: {args.minutes:g} min on a {args.fps:g} FPS HTTP MJPEG camera (loopback), segments of "
          f"{args.segment_minutes:g} min, exit status {status}, {frames} frames, {time.strftime('%Y-%m-%d')}")
    print("minute  RSS MiB  frames")
    for minute, rss, count in samples:
        print(f"{minute:6.1f}  {rss / 1024:7.1f}  {count:6d}")
    first, last = samples[len(samples) // 5], samples[-1]  # after the first minutes' warm-up
    slope = (last[1] - first[1]) / 1024 / max(last[0] - first[0], 1e-9)
    print(f"RSS from minute {first[0]:.1f} to {last[0]:.1f}: {first[1] / 1024:.1f} -> {last[1] / 1024:.1f} MiB "
          f"({slope * 1024:+.0f} KiB/min)")
    for name, header, decoded in counts:
        print(f"{name}: {header} frames in its index, {decoded} decoded")
    print(f"segments: {len(counts)}, frames in them {sum(c[1] for c in counts)} of {frames}; "
          f"{'every one plays to its end' if all(h == d and h > 0 for _, h, d in counts) else 'SOME DO NOT PLAY'}")
    if "Traceback" in stderr:
        print(stderr[-2000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
