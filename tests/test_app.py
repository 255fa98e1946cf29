"""The application layer (utils/app): the result type's formats, the loop's outputs, the status line,
the live view's address rules, and inference.py's loop as a library call."""
from __future__ import annotations

import json
import socket

import cv2
import numpy as np
import pytest

from conftest import MODEL_DATA
from utils.app.loop import detect_loop
from utils.app.outputs import JsonLines, LabelFiles
from utils.app.result import FrameResult
from utils.app.run import InferenceOptions, run
from utils.app.serve import LiveView, parse_address
from utils.app.status import LiveStatus
from utils.errors import UserError
from utils.evaluation.datasets import read_labels
from utils.media.frames import Frame
from utils.yolo.detector import Detector, Timing
from utils.yolo.types import Detections

NAMES = ["person", "car", "dog"]


def two_detections() -> Detections:
    return Detections(np.array([[10.04, 20.0, 110.0, 220.06], [0.0, 0.0, 64.0, 48.0]], np.float32),
                      np.array([0.87654, 0.3], np.float32), np.array([2, 0]), NAMES)


def test_detections_as_a_json_record_and_as_darknet_labels(tmp_path):
    detections = two_detections()
    assert detections.to_record() == [
        {"class_id": 2, "label": "dog", "score": 0.8765, "box": [10.0, 20.0, 110.0, 220.1]},
        {"class_id": 0, "label": "person", "score": 0.3, "box": [0.0, 0.0, 64.0, 48.0]}]
    assert detections.to_labels(640, 480) == ("2 0.093781 0.250062 0.156188 0.416792\n"
                                              "0 0.050000 0.050000 0.100000 0.100000\n")
    # The labels read back as Darknet label files are read (evaluate.py), to the pixel.
    path = tmp_path / "x.txt"
    path.write_text(detections.to_labels(640, 480))
    classes, boxes, _ = read_labels(path, 3)
    assert classes.tolist() == [2, 0]
    pixels = np.column_stack([boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2,
                              boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2]) * [640, 480, 640, 480]
    assert np.abs(pixels - detections.boxes).max() < 0.01


def test_a_frame_record_is_the_json_line():
    timing = Timing(1.23456, 9.87654, 0.5, device="usb:1", failed_on=["usb:0"], lost=12.3456)
    frame = Frame("rtsp://***@cam/live", 7, np.zeros((480, 640, 3), np.uint8), time=1.5)
    record = FrameResult(frame, two_detections(), timing, NAMES).to_record()
    assert list(record) == ["source", "frame", "time", "device", "failed_on", "detections", "ms"]
    assert record["time"] == "1970-01-01T00:00:01.500+00:00"
    assert record["ms"] == {"pre": 1.235, "invoke": 9.877, "post": 0.5, "lost": 12.346}
    assert record["detections"] == two_detections().to_record()
    assert json.loads(json.dumps(record)) == record


def test_the_annotated_image_is_drawn_once_and_only_when_asked():
    frame = Frame("a.jpg", 0, np.zeros((48, 64, 3), np.uint8))
    result = FrameResult(frame, two_detections(), Timing(1, 1, 1), NAMES)
    assert not frame.image.any()  # nothing drawn until an output asks
    first = result.annotated
    assert first.any() and result.annotated is first


def test_the_status_line_speaks_at_once_then_every_few_seconds(capsys, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("utils.app.status.time.monotonic", lambda: clock[0])
    faults = [0]
    status = LiveStatus("camera 0", lambda: faults[0], every=5.0)
    frame = Frame("camera 0", 0, np.zeros((480, 640, 3), np.uint8))
    result = FrameResult(frame, two_detections(), Timing(1, 1, 1), NAMES)
    status.write(result)
    assert capsys.readouterr().err == "camera 0: open, 640x480; a status line every 5 s\n"
    for _ in range(49):
        clock[0] += 0.1
        status.write(result)
    assert capsys.readouterr().err == ""
    faults[0] = 1
    clock[0] += 0.2
    status.write(result)
    assert capsys.readouterr().err == "camera 0: 51 frames, 10.0 fps, 102 detections, 1 fault (lines above)\n"


@pytest.mark.parametrize("text, host, port, loopback", [
    ("8080", "127.0.0.1", 8080, True), ("0.0.0.0:8080", "0.0.0.0", 8080, False), ("[::1]:9000", "::1", 9000, True),
    ("localhost:0", "localhost", 0, True), ("[::]:8080", "::", 8080, False), ("cam-host:81", "cam-host", 81, False)])
def test_serve_addresses(text, host, port, loopback):
    address = parse_address(text)
    assert (address.host, address.port, address.loopback) == (host, port, loopback)


@pytest.mark.parametrize("text", ["", "host", "http://x:80", "1.2.3.4:", "[::1]", ":8080:1", "-1"])
def test_serve_addresses_refused(text):
    with pytest.raises(UserError, match="HOST:]PORT"):
        parse_address(text)


def test_beyond_localhost_a_token_is_made_and_required():
    view = LiveView(parse_address("0.0.0.0:0"), None, "camera 0")
    try:
        assert view.token and len(view.token) >= 16 and view.url().endswith(f"?token={view.token}")
    finally:
        view.close()
    local = LiveView(parse_address("127.0.0.1:0"), None, "camera 0")
    try:
        assert local.token is None and local.url() == f"http://127.0.0.1:{local.port}/"
    finally:
        local.close()
    spaced = LiveView(parse_address("127.0.0.1:0"), "a b&c=d", "camera 0")  # a token as typed, quoted in the URL
    try:
        assert spaced.url() == f"http://127.0.0.1:{spaced.port}/?token=a%20b%26c%3Dd"
    finally:
        spaced.close()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        with pytest.raises(UserError, match="is in use"):
            LiveView(parse_address(f"127.0.0.1:{taken.getsockname()[1]}"), None, "x")


@pytest.mark.slow
def test_the_loop_as_a_library_call(model_factory, tmp_path, capsys):
    """``run(InferenceOptions)`` is inference.py; ``detect_loop`` takes any outputs, here JSON and labels."""
    model = model_factory("tiny_keep_int8", [], [])
    dog = MODEL_DATA / "samples" / "dog.jpg"
    status = run(InferenceOptions(model, MODEL_DATA / "coco.names", image=[str(dog)], json=True))
    assert status == 0
    line = json.loads(capsys.readouterr().out)
    with Detector(model, MODEL_DATA / "coco.names") as detector:
        expected = detector.detect(cv2.imread(str(dog)))
        assert line["detections"] == expected.to_record()
        frames = [Frame(str(dog), 0, cv2.imread(str(dog)))]
        labels = tmp_path / "dog.txt"
        tally = detect_loop(detector, frames, [JsonLines(), LabelFiles({str(dog): labels}, tmp_path, print)])
    assert tally.frames == 1 and labels.read_text() == expected.to_labels(768, 576)


@pytest.mark.slow
def test_a_video_on_a_terminal_shows_one_updating_bar_and_plain_lines_elsewhere(model_factory, tmp_path):
    """stderr a terminal (a pty): tqdm's bar, redrawn in place, with rate and ETA; a pipe: plain lines."""
    import os
    import pty
    import subprocess
    import sys

    from conftest import ROOT
    from utils.testing.image_sets import looped_clip
    video = looped_clip(tmp_path / "clip.mp4", 10)
    command = [sys.executable, str(ROOT / "inference.py"), "--model", str(model_factory("tiny_keep_int8", [], [])),
               "--classes", str(MODEL_DATA / "coco.names"), "--video", str(video), "--no-display"]
    controller, terminal = pty.openpty()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 1 << 16)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(timeout=120) == 0
    text = shown.decode(errors="replace")
    assert "240/240" in text and "frame/s" in text and "100%|" in text and "\r" in text, text[-500:]
    piped = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert [line for line in piped.stderr.splitlines() if "frames" in line and "/" in line][:2] == \
        ["100/240 frames", "200/240 frames"], piped.stderr
