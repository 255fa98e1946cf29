"""Stopped and restarted, nothing lost: SIGINT, SIGTERM and SIGHUP finish the frame in hand, close and
rename every output, leave no temporary file and exit 128 + the signal; a stop while an Edge TPU is
being reopened ends the wait at once; a second signal stops within 2 s; a restart never replaces a
recording. Each scenario runs the real script in a subprocess with the stand-in Edge TPU.

With STOP_TABLE=FILE each scenario appends a row (signal, moment, exit status, frames kept, plays,
temporary files) for the closing note.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from conftest import MODEL_DATA, ROOT, run_script, sample_paths
from utils.testing.image_sets import looped_clip

CLIP = MODEL_DATA / "samples" / "clip.mp4"


@pytest.fixture(scope="module")
def compiled(model_factory, tmp_path_factory) -> Path:
    from utils.testing import standin
    return standin.compile_for_standin(model_factory("tiny_keep_int8", [], []),
                                       tmp_path_factory.mktemp("stop") / "tiny_edgetpu.tflite")


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """The sample clip ten times over (240 frames): a run that lasts until it is stopped."""
    return looped_clip(tmp_path_factory.mktemp("clip") / "long.mp4", 10)


def frames_in(video: Path) -> int:
    """Frames OpenCV decodes from ``video`` (0 if it does not open): it plays."""
    capture, count = cv2.VideoCapture(str(video)), 0
    while capture.read()[0]:
        count += 1
    return count


def leftovers(*directories: Path) -> list[str]:
    """Temporary files and directories: ours start with '.' (beside an output) or 'tinyyolo-' (in TMPDIR)."""
    return sorted(p.name for d in directories for p in d.iterdir() if p.name.startswith((".", "tinyyolo-")))


def record_row(signal_name: str, moment: str, status: int, kept: int, shown: int, plays: bool, temporary: list) -> None:
    if os.environ.get("STOP_TABLE"):
        with open(os.environ["STOP_TABLE"], "a") as out:
            out.write(f"| {signal_name} | {moment} | {status} | {kept} of {shown} | {'yes' if plays else 'no'} | "
                      f"{', '.join(temporary) or 'none'} |\n")


class Run:
    """``inference.py --json`` in a subprocess on the stand-in, its records read as they come."""

    def __init__(self, library: Path, tmp: Path, *args: str, faults: str = "", invoke_ms: int = 0,
                 devices: str = "usb"):
        from utils.testing import standin
        self.tmpdir = tmp / "tmpdir"
        self.tmpdir.mkdir(exist_ok=True)
        self.stderr_path = tmp / "stderr.txt"
        env = {**os.environ, **standin.environment(library, devices, faults, invoke_ms=invoke_ms),
               "TMPDIR": str(self.tmpdir)}
        self.process = subprocess.Popen([sys.executable, "inference.py", "--json", "--no-display", *args], cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=open(self.stderr_path, "w"), text=True, env=env)
        self.records: list[dict] = []

    def read_until(self, count: int) -> None:
        while len(self.records) < count:
            line = self.process.stdout.readline()
            assert line, f"ended after {len(self.records)} records: {self.stderr_path.read_text()}"
            self.records.append(json.loads(line))

    def wait_for_stderr(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr_path.read_text():
            assert time.monotonic() < deadline and self.process.poll() is None, self.stderr_path.read_text()
            time.sleep(0.05)

    def stop(self, *signals: int, gap: float = 0.1) -> float:
        """Send ``signals``, ``gap`` s apart; seconds until the process exited."""
        start = time.monotonic()
        for number in signals:
            self.process.send_signal(number)
            time.sleep(gap)
        for line in self.process.stdout:  # the frames finished after the signal
            self.records.append(json.loads(line))
        self.process.wait(timeout=30)
        return time.monotonic() - start

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda n: signal.Signals(n).name)
def test_a_stop_signal_finishes_the_frame_and_keeps_the_recording(number, compiled, long_clip, standin_edgetpu,
                                                                  tmp_path):
    output = tmp_path / "out" / "rec.mp4"
    run = Run(standin_edgetpu, tmp_path, "--model", str(compiled), "--classes", str(MODEL_DATA / "coco.names"),
              "--edge_tpu", "--video", str(long_clip), "--output", str(output), invoke_ms=30)
    run.read_until(8)
    seconds = run.stop(number)
    name = signal.Signals(number).name
    kept = frames_in(output)
    record_row(name, "healthy, writing one video", run.process.returncode, kept, len(run.records), kept > 0,
               leftovers(output.parent, run.tmpdir))
    assert run.process.returncode == 128 + number, run.stderr
    assert kept == len(run.records) >= 8 and len(run.records) < 240  # every frame shown is in the file
    assert leftovers(output.parent, run.tmpdir) == [] and seconds < 5
    said = "interrupted" if number == signal.SIGINT else f"stopped by {name}"
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines[-1] == f"{said} after {len(run.records)} frames; the outputs are complete up to there", lines
    assert "Traceback" not in run.stderr


def test_a_stop_while_the_only_edge_tpu_is_reopened_ends_the_wait(compiled, long_clip, standin_edgetpu, tmp_path):
    output = tmp_path / "rec.mp4"
    run = Run(standin_edgetpu, tmp_path, "--model", str(compiled), "--classes", str(MODEL_DATA / "coco.names"),
              "--edge_tpu", "--video", str(long_clip), "--output", str(output), faults="0@6+inf")
    run.wait_for_stderr("frames wait while it is reopened")
    time.sleep(1.0)  # inside the backoff's wait
    seconds = run.stop(signal.SIGINT)
    kept = frames_in(output)
    record_row("SIGINT", "the only Edge TPU being reopened", run.process.returncode, kept, len(run.records), kept > 0,
               leftovers(tmp_path, run.tmpdir))
    assert run.process.returncode == 130, run.stderr
    assert seconds < 2, seconds
    assert kept == len(run.records) == 4  # the 5th frame was the warm-up's invoke; the 6th failed twice
    assert leftovers(tmp_path, run.tmpdir) == []


def test_a_second_signal_stops_within_2_s_even_with_a_hung_device(compiled, long_clip, standin_edgetpu, tmp_path):
    output = tmp_path / "rec.mp4"
    run = Run(standin_edgetpu, tmp_path, "--model", str(compiled), "--classes", str(MODEL_DATA / "coco.names"),
              "--edge_tpu", "--video", str(long_clip), "--output", str(output), invoke_ms=400)
    run.read_until(3)
    seconds = run.stop(signal.SIGTERM, signal.SIGTERM, gap=0.05)
    kept = frames_in(output)
    record_row("SIGTERM x2", "each invoke 400 ms (a slow or hung device)", run.process.returncode, kept,
               len(run.records), kept > 0, leftovers(tmp_path, run.tmpdir))
    assert run.process.returncode == 143, run.stderr
    assert seconds < 2, seconds
    assert kept == len(run.records) and leftovers(tmp_path, run.tmpdir) == []


def test_a_stop_while_writing_segments_keeps_every_segment(compiled, long_clip, standin_edgetpu, tmp_path):
    output = tmp_path / "seg.mp4"
    run = Run(standin_edgetpu, tmp_path, "--model", str(compiled), "--classes", str(MODEL_DATA / "coco.names"),
              "--edge_tpu", "--video", str(long_clip), "--output", str(output), "--segment-minutes", "0.01",
              invoke_ms=40)
    run.wait_for_stderr("wrote " + str(tmp_path / "seg_0002.mp4"))
    run.read_until(len(run.records) + 1)
    run.stop(signal.SIGTERM)
    segments = sorted(tmp_path.glob("seg_*.mp4"))
    kept = sum(frames_in(s) for s in segments)
    record_row("SIGTERM", "writing segments", run.process.returncode, kept, len(run.records),
               all(frames_in(s) for s in segments), leftovers(tmp_path, run.tmpdir))
    assert run.process.returncode == 143, run.stderr
    assert len(segments) >= 3 and all(frames_in(s) > 0 for s in segments)
    assert kept == len(run.records) and leftovers(tmp_path, run.tmpdir) == []


@pytest.mark.parametrize("options,made_first", [
    (["--outputs", "detections", "--classes", str(MODEL_DATA / "coco.names")], "tinyyolo-detections-"),
    (["--calibration", "auto"], "tinyyolo-auto-")], ids=["detections", "calibration-auto"])
def test_sigterm_while_quantizing_leaves_nothing(options, made_first, model_factory, tmp_path):
    h5 = model_factory("tiny_keep", [])
    tmpdir, out, frames = tmp_path / "tmpdir", tmp_path / "out", tmp_path / "frames"
    for directory in (tmpdir, out, frames):
        directory.mkdir()
    capture = cv2.VideoCapture(str(CLIP))
    while (read := capture.read())[0]:  # enough images for auto to hold 8 out
        cv2.imwrite(str(frames / f"{len(list(frames.iterdir())):02d}.jpg"), read[1])
    process = subprocess.Popen([sys.executable, "keras_to_tflite_quant.py", str(h5), str(out / "m.tflite"),
                                *options, "--dataset", str(frames), *map(str, sample_paths())], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TMPDIR": str(tmpdir)})
    deadline = time.monotonic() + 300
    while not leftovers(tmpdir) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    made = leftovers(tmpdir)  # the SavedModel of the detection graph, or auto's candidates, being written
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    record_row("SIGTERM", f"quantizing ({' '.join(options[:2])})", process.returncode, 0, 0, False,
               leftovers(out, tmpdir) + sorted(p.name for p in tmpdir.iterdir()))
    assert made and made[0].startswith(made_first), made
    assert process.returncode == 143, stderr
    assert list(out.iterdir()) == [] and list(tmpdir.iterdir()) == [], (list(out.iterdir()), list(tmpdir.iterdir()))
    assert stderr.strip().splitlines()[-1] == "keras_to_tflite_quant.py: stopped by SIGTERM" and "Traceback" not in stderr


SWALLOWED = """
import os, signal, sys, time
sys.path.insert(0, os.getcwd())
from utils.errors import run_cli

def main():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    except BaseException:  # as TensorFlow does while it builds a graph
        if sys.argv[1] == "converted":
            raise TypeError("Expected float32 passed to parameter 'y' of op 'Mul'")
    return 0

run_cli(main)
"""


@pytest.mark.parametrize("library", ["converted", "swallowed"])
def test_a_stop_that_a_library_turns_into_another_error_or_swallows_still_stops(library):
    result = subprocess.run([sys.executable, "-c", SWALLOWED, library], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 143 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == ["-c: stopped by SIGTERM"], result.stderr


# ---- a restart never replaces a recording ---------------------------------------------------------

def test_a_restart_continues_the_segments_and_never_replaces_a_video(model_factory, tmp_path):
    model = model_factory("tiny_keep_int8", [], [])
    common = ["inference.py", "--model", str(model), "--classes", str(MODEL_DATA / "coco.names"), "--no-display",
              "--video", str(CLIP)]
    first = run_script(*common, "--output", str(tmp_path / "rec.mp4"), "--segment-minutes", "10", check=True)
    assert "seg" not in first.stderr and (tmp_path / "rec_0001.mp4").exists()
    before = (tmp_path / "rec_0001.mp4").read_bytes()
    second = run_script(*common, "--output", str(tmp_path / "rec.mp4"), "--segment-minutes", "10", check=True)
    assert "rec_0001.mp4 exists: continuing at rec_0002.mp4" in second.stderr
    assert (tmp_path / "rec_0001.mp4").read_bytes() == before and frames_in(tmp_path / "rec_0002.mp4") == 24

    run_script(*common, "--output", str(tmp_path / "one.mp4"), check=True)
    kept = (tmp_path / "one.mp4").read_bytes()
    again = run_script(*common, "--output", str(tmp_path / "one.mp4"), check=True)
    assert f"output {tmp_path / 'one.mp4'} exists: writing {tmp_path / 'one-2.mp4'}" in again.stderr
    assert (tmp_path / "one.mp4").read_bytes() == kept and frames_in(tmp_path / "one-2.mp4") == 24
    assert leftovers(tmp_path) == []
