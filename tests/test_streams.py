"""Live sources with real servers on loopback: an RTSP camera (GStreamer's RTSP server) and an HTTP
MJPEG camera (utils/testing/loopback), each killed mid-stream and restarted. Bounded in time."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import pytest

from conftest import MODEL_DATA, ROOT

SERVERS = ROOT / "utils" / "testing" / "loopback"
SECRET = "s3cret-pw"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def long_video(path: Path, seconds: float = 90, fps: float = 8) -> Path:
    """The sample clip repeated: a camera that keeps running for the length of a test."""
    capture = cv2.VideoCapture(str(MODEL_DATA / "samples" / "clip.mp4"))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, frames[0].shape[1::-1])
    for i in range(int(seconds * fps)):
        writer.write(frames[i % len(frames)])
    writer.release()
    return path


def rtsp_available() -> bool:
    probe = subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import GstRtspServer"], capture_output=True)
    return probe.returncode == 0


class Server:
    """A test camera process, started and stopped by its own handle."""

    def __init__(self, kind: str, port: int, video: Path):
        self.command = ({"rtsp": ["/usr/bin/python3", str(SERVERS / "rtsp_server.py")],
                         "http": [sys.executable, str(SERVERS / "mjpeg_server.py")]}[kind] + [str(port), str(video)])
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(params=["rtsp", "http"])
def camera(request, tmp_path):
    if request.param == "rtsp" and not rtsp_available():
        if os.environ.get("CI") == "true":
            pytest.fail("GStreamer's RTSP server is not installed (make test installs it as root)")
        pytest.skip("GStreamer's RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) is not installed")
    port = free_port()
    server = Server(request.param, port, long_video(tmp_path / "camera.avi"))
    # Credentials as cameras carry them: an @ inside the password, and (HTTP) query parameters too.
    url = (f"rtsp://viewer:pa@{SECRET}@127.0.0.1:{port}/stream" if request.param == "rtsp"
           else f"http://viewer:pa@{SECRET}@127.0.0.1:{port}/stream.mjpg?user=viewer&password={SECRET}")
    server.start()
    yield server, url
    server.stop()


class Run:
    """inference.py on a stream, its stdout (JSON records) and stderr (lines) collected as they come."""

    def __init__(self, url: str, model: Path, output: Path, *extra: str):
        self.process = subprocess.Popen([sys.executable, "inference.py", "--model", str(model), "--classes",
                                         str(MODEL_DATA / "coco.names"), "--video", url, "--json", "--no-display",
                                         "--threads", "2", "--output", str(output), *extra], cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.records, self.errors = [], []
        self.readers = [threading.Thread(target=self._collect, args=(self.process.stdout, self.records, json.loads)),
                        threading.Thread(target=self._collect, args=(self.process.stderr, self.errors, str.rstrip))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _collect(stream, into: list, parse) -> None:
        for line in stream:
            into.append(parse(line))

    def wait_for(self, condition, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None or condition(), f"inference ended before {what}: {self.errors}"
            assert time.monotonic() < deadline, f"no {what} in {timeout} s: {self.errors}"
            time.sleep(0.05)

    def finish(self, timeout: float = 60) -> int:
        try:
            status = self.process.wait(timeout=timeout)
        finally:
            self.process.kill()
            for reader in self.readers:
                reader.join()
        return status


def records_source(run: Run) -> str:
    return run.records[0]["source"]


def url_event(line: str) -> bool:
    return " stream lost " in line or " back after " in line


@pytest.fixture(scope="module")
def int8_model(model_factory) -> Path:
    return model_factory("tiny_keep_int8", [], [])


@pytest.mark.slow
def test_a_live_stream_survives_its_server_restarting(camera, int8_model, tmp_path):
    server, url = camera
    output = tmp_path / "out.mp4"
    run = Run(url, int8_model, output, "--serve", "127.0.0.1:0")  # live: keep trying to reconnect
    run.wait_for(lambda: len(run.records) >= 16, "16 frames")
    server.stop()                               # the camera goes away ...
    time.sleep(1.5)
    server.start()                              # ... and comes back
    run.wait_for(lambda: any("back after" in line for line in run.errors), "reconnection")
    resumed = len(run.records)
    run.wait_for(lambda: len(run.records) >= resumed + 16, "16 frames after the reconnection")
    # The live view shows the stream's events as they happen, its URL masked as in the logs.
    port = next(int(line.split(":")[-1].strip("/")) for line in run.errors if line.startswith("live view: "))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/state.json", timeout=5) as response:
        state = json.load(response)
    assert state["source"] == records_source(run) and SECRET not in json.dumps(state)
    assert [e.split(" ", 1)[1] for e in state["events"]] == [line for line in run.errors if url_event(line)]
    assert state["frames"] >= resumed + 16
    assert any(line.endswith("a status line every 5 s") for line in run.errors), run.errors
    run.process.send_signal(signal.SIGINT)
    status = run.finish()
    records, stderr = run.records, "\n".join(run.errors)
    assert status == 130, stderr
    assert [r["frame"] for r in records] == list(range(len(records)))  # numbering goes on across the gap
    times = [r["time"] for r in records]
    assert times == sorted(times) and all(t.endswith("+00:00") for t in times)
    lost = [line for line in run.errors if "stream lost" in line]
    back = [line for line in run.errors if "back after" in line]
    assert len(lost) == 1 and len(back) == 1, stderr
    seconds = float(back[0].split("back after ")[1].split(" s")[0])
    assert 1.0 < seconds < 20, back
    printed = stderr + "".join(json.dumps(r) for r in records)  # errors, reconnect lines, JSON source
    assert SECRET not in printed and "viewer" not in printed and "pa@" not in printed
    assert records[0]["source"].startswith(url.split("://")[0] + "://***@127.0.0.1")
    assert lost[0].startswith(records[0]["source"]) and back[0].startswith(records[0]["source"])
    written = cv2.VideoCapture(str(output))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == len(records)
    playable = 0
    while written.read()[0]:
        playable += 1
    assert playable == len(records)
    print(f"{url.split(':')[0]}: {resumed} frames before the reconnection, {len(records) - resumed} after; "
          f"{back[0].split(': ', 1)[1]}; output {playable} frames, all decodable")


@pytest.mark.slow
def test_a_stream_that_does_not_come_back_ends_the_run(int8_model, tmp_path):
    port = free_port()
    server = Server("http", port, long_video(tmp_path / "camera.avi", seconds=20))
    server.start()
    run = Run(f"http://127.0.0.1:{port}/live.mjpg", int8_model, tmp_path / "out.avi", "--reconnect", "2")
    try:
        run.wait_for(lambda: len(run.records) >= 5, "5 frames")
    finally:
        server.stop()
    status = run.finish()
    stderr = "\n".join(run.errors)
    assert status == 1 and "gave up after 2 attempts" in stderr and "did not come back (exit status 1)" in stderr, stderr
    assert int(cv2.VideoCapture(str(tmp_path / "out.avi")).get(cv2.CAP_PROP_FRAME_COUNT)) == len(run.records)


@pytest.mark.slow
def test_sigterm_while_a_stream_reconnects_ends_the_wait_at_once(int8_model, tmp_path):
    port = free_port()
    server = Server("http", port, long_video(tmp_path / "camera.avi", seconds=20))
    server.start()
    run = Run(f"http://127.0.0.1:{port}/live.mjpg", int8_model, tmp_path / "out.avi")
    try:
        run.wait_for(lambda: len(run.records) >= 5, "5 frames")
    finally:
        server.stop()
    run.wait_for(lambda: any("reconnecting" in line for line in run.errors), "the reconnect")
    time.sleep(1.0)  # inside the backoff's wait (0.5 s, then 1 s, ...)
    stopped = time.monotonic()
    run.process.send_signal(signal.SIGTERM)
    status = run.finish(timeout=30)
    assert status == 143 and time.monotonic() - stopped < 2, run.errors
    assert run.errors[-1] == f"stopped by SIGTERM after {len(run.records)} frames; the outputs are complete up to there"
    assert int(cv2.VideoCapture(str(tmp_path / "out.avi")).get(cv2.CAP_PROP_FRAME_COUNT)) == len(run.records)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], list(tmp_path.iterdir())


@pytest.mark.slow
def test_ctrl_c_on_a_live_stream_completes_the_output(camera, int8_model, tmp_path):
    _, url = camera
    output = tmp_path / "out.avi"
    run = Run(url, int8_model, output)
    run.wait_for(lambda: len(run.records) >= 10, "10 frames")
    run.process.send_signal(signal.SIGINT)
    status = run.finish(timeout=30)
    stderr = "\n".join(run.errors)
    assert status == 130, stderr
    assert "the outputs are complete" in stderr
    assert int(cv2.VideoCapture(str(output)).get(cv2.CAP_PROP_FRAME_COUNT)) == len(run.records)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], list(tmp_path.iterdir())


@pytest.mark.slow
def test_segments_are_complete_files(int8_model, tmp_path):
    clip = long_video(tmp_path / "clip.avi", seconds=6)
    result = subprocess.run([sys.executable, "inference.py", "--model", str(int8_model), "--classes",
                             str(MODEL_DATA / "coco.names"), "--video", str(clip), "--no-display",
                             "--output", str(tmp_path / "out.mp4"), "--segment-minutes", "0.002"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    segments = sorted(tmp_path.glob("out_*.mp4"))
    counts = [int(cv2.VideoCapture(str(p)).get(cv2.CAP_PROP_FRAME_COUNT)) for p in segments]
    assert len(segments) >= 2 and sum(counts) == 48 and all(counts), counts
    assert not (tmp_path / "out.mp4").exists()


# URL shapes cameras use, and what messages show of them. The secrets are never shown; hosts,
# paths and harmless parameters are.
MASKED = [
    ("rtsp://admin:pa:ss@cam.local:554/h264", "rtsp://***@cam.local:554/h264"),
    ("rtsp://admin:pa@ss@127.0.0.1:1/live", "rtsp://***@127.0.0.1:1/live"),             # @ in the password
    ("rtsp://adm:pa/ss@host/live", "rtsp://***@host/live"),                              # unencoded /
    ("rtsp://admin@host/live", "rtsp://***@host/live"),                                  # user only
    ("rtsp://:secret@host/", "rtsp://***@host/"),                                        # password only
    ("RTSPS://U:p%40ss@HOST:322/x", "RTSPS://***@HOST:322/x"),                           # encoded, upper case
    ("http://127.0.0.1:1/video.mjpg?user=admin&password=Qry5ecret",
     "http://127.0.0.1:1/video.mjpg?user=***&password=***"),                             # Dahua, Reolink
    ("http://h/videostream.cgi?usr=admin&pwd=secret", "http://h/videostream.cgi?usr=***&pwd=***"),  # Foscam
    ("http://h/video.cgi?channel=1&loginuse=admin&loginpas=secret",
     "http://h/video.cgi?channel=1&loginuse=***&loginpas=***"),                          # Amcrest
    ("rtsp://h:554/user=admin_password=tlJwpbo6_channel=1_stream=0.sdp", "rtsp://h:554/user=***"),  # Xiongmai
    ("https://h/stream?token=abc.def&x=1", "https://h/stream?token=***&x=1"),
    ("http://h/mjpg?auth=YWRtaW46c2VjcmV0", "http://h/mjpg?auth=***"),                  # Hikvision
    ("http://h/live?api_key=k1;Signature=s2#PASSWORD=p3", "http://h/live?api_key=***;Signature=***#PASSWORD=***"),
    ("http://h/a;jsessionid=XYZ?x=1", "http://h/a;jsessionid=***?x=1"),
    ("rtmp://u:p@host/live", "rtmp://***@host/live"),                                    # a scheme we refuse
    ("http://h/video.mjpg?resolution=640x480&fps=10", "http://h/video.mjpg?resolution=640x480&fps=10"),
    ("rtsp://cam.local:554/Streaming/Channels/101", "rtsp://cam.local:554/Streaming/Channels/101"),
    ("/dev/video2", "/dev/video2"),
]


@pytest.mark.parametrize("url, shown", MASKED)
def test_credentials_are_masked_in_every_url_shape(url, shown):
    from utils.media.streams import masked
    assert masked(url) == shown


def test_urls_and_credentials():
    from utils.media.streams import camera_source, video_source
    source = video_source("RTSPS://u:p@host/s")
    assert source.live and source.name == "RTSPS://***@host/s"
    assert camera_source("2").target == 2 and camera_source("2").live
    from utils.errors import UserError
    with pytest.raises(UserError, match="no such device"):
        camera_source("/dev/video99")
    with pytest.raises(UserError, match="a URL must start with"):
        video_source("rtps://host/s")
    with pytest.raises(UserError, match=r"^video rtmp://\*\*\*@host/live: no such file") as refused:
        video_source("rtmp://user:Qry5ecret@host/live")  # an unsupported scheme is still masked
    assert "Qry5ecret" not in str(refused.value)
    with pytest.raises(UserError, match=r"camera rtmp://\*\*\*@h/x: no such device"):
        camera_source("rtmp://user:Qry5ecret@h/x")
