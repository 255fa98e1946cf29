#!/usr/bin/env python3
"""Soak test: inference.py on a looping HTTP MJPEG camera for minutes, writing segments; resident
memory over time, and every finished segment decoded to its last frame. Not part of `make bench`
(it takes as long as you ask).

With ``--fault-every M``, it runs on two stand-in Edge TPUs (utils/testing) instead of the CPU,
the second unplugged for ``--fault-seconds`` about every M minutes: every frame read must still
come out, once and in order, and the memory stay flat. With ``--restart-every M`` a supervisor's
SIGTERM stops the run every M minutes and starts it again with the same command: every frame read
must be in a segment that plays, no segment replaced, no temporary file left (exit status 1 if not).

    python bench/soak.py [--minutes 12] [--segment-minutes 2] [--fault-every 2 --fault-seconds 5]
                         [--restart-every 5]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
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
    parser.add_argument("--restart-every", type=float, default=0.0, metavar="M",
                        help="minutes between a supervisor's SIGTERM and restart (0: one run, stopped by Ctrl-C)")
    args = parser.parse_args()
    if min(args.minutes, args.segment_minutes, args.fault_every, args.fault_seconds, args.restart_every) < 0:
        parser.error("minutes and seconds must be 0 or more")
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
        output, scratch = work / "rec" / "soak.mp4", work / "tmp"
        scratch.mkdir()
        environment["TMPDIR"] = str(scratch)  # so that a temporary file left anywhere is seen
        command = [sys.executable, "inference.py", "--model", str(model), "--classes",
                   str(ROOT / "model_data" / "coco.names"), "--video", f"http://127.0.0.1:{port}/live.mjpg", "--json",
                   "--no-display", "--threads", "2", "--output", str(output), "--segment-minutes",
                   str(args.segment_minutes), *extra]
        runs, samples, stderr_all, start = [], [], "", time.monotonic()
        next_sample = start + 30
        while time.monotonic() - start < args.minutes * 60:
            run_end = min(start + args.minutes * 60, time.monotonic() + (args.restart_every * 60 or 1e12))
            detector = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=environment)
            numbers, retried, peak = [], 0, 0
            for line in detector.stdout:
                record = json.loads(line)
                numbers.append(record["frame"])
                retried += "failed_on" in record
                now = time.monotonic()
                if now >= next_sample:
                    rss = rss_kib(detector.pid)
                    peak = max(peak, rss)
                    samples.append(((now - start) / 60, rss, len(runs) + 1))
                    next_sample += 30
                if now >= run_end:
                    break
            last_rss = rss_kib(detector.pid)
            stop_sent = time.monotonic()
            detector.send_signal(signal.SIGTERM if args.restart_every else signal.SIGINT)  # what a supervisor sends
            for line in detector.stdout:
                numbers.append(json.loads(line)["frame"])
            status = detector.wait(timeout=120)
            stderr = detector.stderr.read()
            stderr_all += stderr
            runs.append({"status": status, "frames": len(numbers), "in_order": numbers == list(range(len(numbers))),
                         "retried": retried, "stop_s": time.monotonic() - stop_sent, "rss_end": last_rss,
                         "rss_peak": max(peak, last_rss), "traceback": "Traceback" in stderr})
        camera.kill()
        segments = sorted(output.parent.glob("soak_*.mp4"))
        counts = [(p.name, int(cv2.VideoCapture(str(p)).get(cv2.CAP_PROP_FRAME_COUNT)), decodable_frames(p))
                  for p in segments]
        leftover = sorted(p.name for d in (output.parent, scratch) for p in d.iterdir()
                          if p.name.startswith((".", "tinyyolo-")) or d == scratch)
    frames = sum(r["frames"] for r in runs)
    print(f"Soak: {args.minutes:g} min on a {args.fps:g} FPS HTTP MJPEG camera (loopback), segments of "
          f"{args.segment_minutes:g} min, " + (f"SIGTERM and a restart every {args.restart_every:g} min, "
                                               if args.restart_every else "") +
          f"{len(runs)} run{'s' if len(runs) != 1 else ''}, {frames} frames, {time.strftime('%Y-%m-%d')}; "
          f"{cpu_description()}")
    if args.fault_every:
        lines = [line for line in stderr_all.splitlines() if line.startswith("Edge TPU")]
        down = sum("closed it" in line for line in lines)
        back = sum("back after" in line for line in lines)
        print(f"Faults: two stand-in Edge TPUs, usb:1 unplugged for {args.fault_seconds:g} s every {every} of its "
              f"invokes (~{args.fault_every:g} min): {down} outages, {back} came back, "
              f"{sum(r['retried'] for r in runs)} frames moved to usb:0")
    print("\n| run | exit status | frames read | in order, once | stopped in | RSS at the end MiB | peak MiB |")
    print("|---|---|---|---|---|---|---|")
    for number, r in enumerate(runs, 1):
        print(f"| {number} | {r['status']} | {r['frames']} | {'yes' if r['in_order'] else 'NO'} | {r['stop_s']:.1f} s | "
              f"{r['rss_end'] / 1024:.1f} | {r['rss_peak'] / 1024:.1f} |" + (" Traceback!" if r["traceback"] else ""))
    print("\nminute  RSS MiB  run")
    for minute, rss, number in samples:
        print(f"{minute:6.1f}  {rss / 1024:7.1f}  {number:3d}")
    for name, header, decoded in counts:
        print(f"{name}: {header} frames in its index, {decoded} decoded")
    in_segments = sum(c[2] for c in counts)
    names = [c[0] for c in counts]
    print(f"segments: {len(counts)} ({len(set(names))} distinct names), frames in them {in_segments} of {frames} read; "
          f"{'every one plays to its end' if all(h == d and h > 0 for _, h, d in counts) else 'SOME DO NOT PLAY'}; "
          f"temporary files left: {', '.join(leftover) or 'none'}")
    if any(r["traceback"] for r in runs):
        print(stderr_all[-2000:])
    return 0 if in_segments == frames and not leftover and all(r["in_order"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
