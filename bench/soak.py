#!/usr/bin/env python3
"""Soak test: inference.py on a looping HTTP MJPEG camera for minutes, writing segments; resident
memory over time, and every finished segment decoded to its last frame. Not part of `make bench`
(it takes as long as you ask).

With ``--fault-every M``, it runs on two stand-in Edge TPUs (utils/testing) instead of the CPU,
the second unplugged for ``--fault-seconds`` about every M minutes: every frame read must still
come out, once and in order, and the memory stay flat. With ``--restart-every M`` a supervisor's
SIGTERM stops the run every M minutes and starts it again with the same command: every frame read
must be in a segment that plays, no segment replaced, no temporary file left (exit status 1 if not).
With ``--serve-viewers N`` the run also serves its live view (``--serve``) to N viewers that open the
stream and the page's state, read for 20 s, close and come back, and one viewer that never reads:
the memory must stay flat and the viewers be counted right at the end.

    python bench/soak.py [--minutes 12] [--segment-minutes 2] [--fault-every 2 --fault-seconds 5]
                         [--restart-every 5] [--serve-viewers 2]
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
import threading
import time
import urllib.request
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


class Viewers:
    """Live-view viewers of a run: ``count`` that come and go (the stream and the state, 20 s each
    time) and one that asks for the stream and never reads."""

    def __init__(self, errors: list[str], count: int):
        deadline = time.monotonic() + 120
        while not (lines := [line for line in errors if line.startswith("live view: ")]):
            assert time.monotonic() < deadline, "no live view line: " + "".join(errors)
            time.sleep(0.2)
        self.port = int(lines[0].split(":")[-1].strip().strip("/"))
        self.running, self.visits = True, 0
        self.stalled = socket.create_connection(("127.0.0.1", self.port))
        self.stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        self.threads = [threading.Thread(target=self._visit, args=(path,), daemon=True)
                        for _ in range(count) for path in ("/stream.mjpg", "/events")]
        for thread in self.threads:
            thread.start()

    def _visit(self, path: str) -> None:
        while self.running:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as viewer:
                    viewer.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                    until = time.monotonic() + 20
                    while self.running and time.monotonic() < until and viewer.recv(1 << 16):
                        pass
                self.visits += 1
            except OSError:
                time.sleep(1)

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/state.json", timeout=5) as response:
            return json.load(response)

    def finish(self) -> str:
        """Stop the visits; what the server counts while they are open and once only the stalled one is left."""
        during = self.state()["viewers"]
        self.running = False
        for thread in self.threads:
            thread.join(timeout=30)
        time.sleep(1)
        after = self.state()["viewers"]
        return (f"{self.visits} visits; stream viewers counted {during} with every viewer open, {after} once only "
                "the stalled one was left")


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
    parser.add_argument("--serve-viewers", type=int, default=0, metavar="N",
                        help="serve the live view to N viewers coming and going, and one stalled (0: no --serve)")
    args = parser.parse_args()
    if min(args.serve_viewers, args.minutes, args.segment_minutes, args.fault_every, args.fault_seconds, args.restart_every) < 0:
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
                   str(args.segment_minutes), *extra, *(["--serve", "127.0.0.1:0"] if args.serve_viewers else [])]
        runs, samples, stderr_all, start = [], [], "", time.monotonic()
        next_sample = start + 30
        while time.monotonic() - start < args.minutes * 60:
            run_end = min(start + args.minutes * 60, time.monotonic() + (args.restart_every * 60 or 1e12))
            detector = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=environment)
            errors: list[str] = []
            reader = threading.Thread(target=errors.extend, args=(detector.stderr,), daemon=True)
            reader.start()
            viewers = Viewers(errors, args.serve_viewers) if args.serve_viewers else None
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
            seen = viewers.finish() if viewers else None
            stop_sent = time.monotonic()
            detector.send_signal(signal.SIGTERM if args.restart_every else signal.SIGINT)  # what a supervisor sends
            for line in detector.stdout:
                numbers.append(json.loads(line)["frame"])
            status = detector.wait(timeout=120)
            reader.join(timeout=10)
            stderr = "".join(errors)
            stderr_all += stderr
            runs.append({"status": status, "frames": len(numbers), "in_order": numbers == list(range(len(numbers))),
                         "retried": retried, "stop_s": time.monotonic() - stop_sent, "rss_end": last_rss,
                         "rss_peak": max(peak, last_rss), "traceback": "Traceback" in stderr, "viewers": seen})
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
    for number, r in enumerate(runs, 1):
        if r["viewers"]:
            print(f"run {number}, live view: {r['viewers']}")
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
