#!/usr/bin/env python3
"""Soak test: inference.py on a looping HTTP MJPEG camera for minutes, writing segments; resident
memory over time, and every finished segment decoded to its last frame. Not part of `make bench`
(it takes as long as you ask).

With ``--fault-every M``, it runs on two stand-in Edge TPUs (utils/testing) instead of the CPU,
the second unplugged for ``--fault-seconds`` about every M minutes: every frame read must still
come out, once and in order, and the memory stay flat.

    python bench/soak.py [--minutes 12] [--segment-minutes 2] [--fault-every 2 --fault-seconds 5]
"""
from __future__ import annotations

import argparse
import json
import os
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
from utils.machine import cpu_description  # noqa: E402
from utils.testing import standin  # noqa: E402


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
    parser.add_argument("--fault-every", type=float, default=0.0, metavar="M",
                        help="minutes between faults of the second of two stand-in Edge TPUs (0: on the CPU)")
    parser.add_argument("--fault-seconds", type=float, default=5.0, help="how long each fault unplugs it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run = lambda *command: subprocess.run([sys.executable, *command], cwd=ROOT, check=True,  # noqa: E731
                                              capture_output=True)
        run("convert.py", str(ROOT / "model_data" / "yolov3-tiny.cfg"), str(fetch_weights(log=lambda m: None)),
            str(work / "m.h5"))
        run("keras_to_tflite_quant.py", str(work / "m.h5"), str(work / "m.tflite"), "--dataset",
            str(ROOT / "model_data" / "samples"))
        model, extra, environment = work / "m.tflite", [], dict(os.environ)
        if args.fault_every:
            model = standin.compile_for_standin(work / "m.tflite", work / "m_edgetpu.tflite")
            # The second device gets about half the frames: a fault every P of its invokes.
            every = max(int(args.fault_every * 60 * args.fps / 2), 2)
            faults = f"1@{every}+{args.fault_seconds:g}/{every}"
            environment.update(standin.environment(standin.build(work), "usb,usb", faults))
            extra = ["--edge_tpu", "--device", "all"]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        camera = subprocess.Popen([sys.executable, "-m", "utils.testing.loopback.mjpeg_server", str(port),
                                   str(ROOT / "model_data" / "samples" / "clip.mp4"), str(args.fps), "--loop"],
                                  cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert camera.stdout.readline().strip() == "ready"
        output = work / "soak.mp4"
        detector = subprocess.Popen([sys.executable, "inference.py", "--model", str(model), "--classes",
                                     str(ROOT / "model_data" / "coco.names"), "--video",
                                     f"http://127.0.0.1:{port}/live.mjpg", "--json", "--no-display", "--threads", "2",
                                     "--output", str(output), "--segment-minutes", str(args.segment_minutes), *extra],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=environment)
        samples, frames, start, numbers, retried = [], 0, time.monotonic(), [], 0
        next_sample = start + 30
        for line in detector.stdout:
            record = json.loads(line)
            numbers.append(record["frame"])
            retried += "failed_on" in record
            frames += 1
            now = time.monotonic()
            if now >= next_sample:
                samples.append(((now - start) / 60, rss_kib(detector.pid), frames))
                next_sample += 30
            if now - start >= args.minutes * 60:
                break
        detector.send_signal(2)  # Ctrl-C: the open segment is completed
        for line in detector.stdout:
            numbers.append(json.loads(line)["frame"])
            frames += 1
        status = detector.wait(timeout=120)
        camera.kill()
        stderr = detector.stderr.read()
        segments = sorted(work.glob("soak_*.mp4"))
        counts = [(p.name, int(cv2.VideoCapture(str(p)).get(cv2.CAP_PROP_FRAME_COUNT)), decodable_frames(p))
                  for p in segments]
    print(f"Soak: {args.minutes:g} min on a {args.fps:g} FPS HTTP MJPEG camera (loopback), segments of "
          f"{args.segment_minutes:g} min, exit status {status}, {frames} frames, {time.strftime('%Y-%m-%d')}; "
          f"{cpu_description()}")
    if args.fault_every:
        lines = [line for line in stderr.splitlines() if line.startswith("Edge TPU")]
        down = sum("closed it" in line for line in lines)
        back = sum("back after" in line for line in lines)
        print(f"Faults: two stand-in Edge TPUs, usb:1 unplugged for {args.fault_seconds:g} s every {every} of its "
              f"invokes (~{args.fault_every:g} min): {down} outages, {back} came back, {retried} frames moved to usb:0")
        for line in lines:
            print(f"  {line}")
    gaps = numbers != list(range(len(numbers)))
    print(f"frame numbers: {len(numbers)}, {'0 to ' + str(len(numbers) - 1) + ' each once, in order' if not gaps else 'GAPS OR DUPLICATES'}")
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
