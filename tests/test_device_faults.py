"""Edge TPU faults: a device whose invoke fails is retried, closed, reopened with backoff, and its
frames go to the devices still up, in order, none lost or doubled.

The pool is checked with plain Python workers; the whole path with the stand-in libedgetpu
(utils/testing/standin_edgetpu.c), whose delegate claims the edgetpu-custom-op of a stand-in
compiled model and fails it on a schedule, under LiteRT and tflite_runtime. With FAULTS_TABLE=FILE
each scenario appends its figures there (for the closing note).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest

from conftest import MODEL_DATA, ROOT, sample_paths
from utils.errors import DeviceError
from utils.runtime.device import Device
from utils.runtime.device_pool import spread
from utils.runtime.faults import DeviceFault, FaultPolicy, libedgetpu_words

RUNTIMES = ("litert", "tflite_runtime")
CLIP, CLIP_FRAMES = MODEL_DATA / "samples" / "clip.mp4", 24
FAST = FaultPolicy(first_wait=0.01, longest_wait=0.04)


# ---- the pool and the policy, with plain workers ------------------------------------------------

class Worker:
    """A device's worker: ``job`` sleeps ``delay`` and fails while ``failing`` is set."""

    def __init__(self, name: str, delay: float, failing: threading.Event, opened: list):
        self.name, self.delay, self.failing = name, delay, failing
        opened.append(name)

    def work(self, item: int):
        time.sleep(self.delay)
        if self.failing.is_set():
            raise DeviceFault(self.name, "Deadline exceeded: USB transfer error 2 [LibUsbDataOutCallback]")
        return item * 10, self.name

    def close(self):
        self.closed = True


def devices(delays: list[float], policy: FaultPolicy = FAST):
    failing = {f"usb:{i}": threading.Event() for i in range(len(delays))}
    opened, lines = [], []

    def opener(delay):
        def open_worker(name):
            if failing[name].is_set():
                raise DeviceError("no Edge TPU found", "Could not find an Edge TPU")
            return Worker(name, delay, failing[name], opened)
        return open_worker
    pool = [Device(f"usb:{i}", opener(delay), policy, lines.append, edge_tpu=False) for i, delay in enumerate(delays)]
    return pool, failing, opened, lines


def test_each_device_takes_the_next_item_and_results_stay_in_order():
    pool, _, _, lines = devices([0.02, 0.0, 0.01])
    results = list(spread(pool, range(30), lambda worker, item: worker.work(item)))
    assert [done.item for done in results] == list(range(30))
    assert [done.result[0] for done in results] == [i * 10 for i in range(30)]
    used = {done.result[1] for done in results}
    assert used == {"usb:0", "usb:1", "usb:2"} and not lines
    assert not any(done.failed_on for done in results)


def test_closing_early_lets_the_items_in_flight_finish_and_starts_no_more():
    pool, _, _, _ = devices([0.02, 0.02])
    done = []
    stream = spread(pool, range(100), lambda worker, item: done.append(item) or worker.work(item))
    next(stream)
    stream.close()
    time.sleep(0.05)
    assert len(done) < 10 and len(done) == len(set(done))


def test_a_failing_device_hands_its_frames_to_the_others_and_comes_back():
    pool, failing, opened, lines = devices([0.005, 0.005])
    unplugged = []

    def job(worker, item):  # usb:1 is unplugged for 0.1 s at its first item from 10 on
        if item >= 10 and worker.name == "usb:1" and not unplugged:
            unplugged.append(item)
            failing["usb:1"].set()
            threading.Timer(0.1, failing["usb:1"].clear).start()
        return worker.work(item)
    results = list(spread(pool, range(200), job))
    assert [done.item for done in results] == list(range(200))  # none lost, none doubled, in order
    retried = [done for done in results if done.failed_on]
    assert [done.failed_on for done in retried] == [["usb:1", "usb:1"]] and retried[0].result[1] == "usb:0"
    assert retried[0].lost_ms > 0
    assert opened.count("usb:1") == 2 and any(done.result[1] == "usb:1" for done in results[150:])
    assert [line.split(":", 2)[-1].split("(")[0].strip() for line in lines][:1] == ["invoke failed 2 times"]
    assert "its frames go to usb:0" in lines[0] and "back after" in lines[1], lines


def test_when_every_device_gives_up_the_results_before_come_first_then_a_device_error():
    pool, failing, _, lines = devices([0.0, 0.0], FaultPolicy(reconnect=2, first_wait=0.01, longest_wait=0.02))

    def job(worker, item):
        if item == 20:
            for event in failing.values():
                event.set()
        return worker.work(item)
    seen = []
    with pytest.raises(DeviceError, match="no Edge TPU left"):
        for done in spread(pool, range(100), job):
            seen.append(done.item)
    assert seen == list(range(len(seen))) and len(seen) >= 18
    assert sum("gave up after 2 attempts" in line for line in lines) == 2, lines


def test_an_unexpected_error_while_reopening_reaches_the_caller():
    pool, failing, _, _ = devices([0.0, 0.002])  # usb:1 alone would take 2 s: the error comes first
    for device in pool:
        device.open_worker = lambda name: (_ for _ in ()).throw(RuntimeError(f"bug opening {name}"))

    def job(worker, item):  # only usb:0 fails; usb:1 could finish the run, but the bug is not hidden
        if item >= 5 and worker.name == "usb:0":
            failing["usb:0"].set()
        return worker.work(item)
    with pytest.raises(RuntimeError, match="bug opening usb:0"):
        list(spread(pool, range(1000), job))


def test_policy_and_words():
    assert list(FaultPolicy(reconnect=7).waits()) == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert list(FaultPolicy(reconnect=0).waits()) == []
    error = RuntimeError("Deadline exceeded: USB transfer error 2 [LibUsbDataOutCallback]Node number 36 "
                         "(EdgeTpuDelegateForCustomOp) failed to invoke.Failed precondition: Device is not open.")
    assert libedgetpu_words(error) == "Failed precondition: Device is not open."


# ---- the stand-in itself -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def int8_model(model_factory) -> Path:
    return model_factory("tiny_keep_int8", [], [])


@pytest.fixture(scope="module")
def compiled(int8_model, tmp_path_factory) -> Path:
    from utils.testing import standin
    return standin.compile_for_standin(int8_model, tmp_path_factory.mktemp("compiled") / "tiny_edgetpu.tflite")


def python_for(runtime: str, request) -> str:
    return sys.executable if runtime == "litert" else request.getfixturevalue("tflite_runtime_python")


STANDIN_CHECK = """
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from utils.errors import DeviceError
from utils.runtime import edgetpu
from utils.runtime.engine import Engine
from utils.runtime.faults import DeviceFault
from utils.runtime.interpreters import interpreter_api
tpu = Engine(sys.argv[2], runtime=sys.argv[4], edge_tpu=True, device="usb:1")
cpu = Engine(sys.argv[3], runtime=sys.argv[4], kernels=tpu.kernels)
x = np.random.default_rng(0).integers(0, 255, size=tpu.input.shape).astype(tpu.input.dtype)
same = lambda: all((a == b).all() for a, b in zip(tpu.invoke(x), cpu.invoke(x)))
print("exact", same())                                   # invoke 2 of usb:1
try:
    tpu.invoke(x)                                        # invoke 3: unplugged for 1 s
except DeviceFault as fault:
    print("fault", fault.reason)
print("listed", [name for name, _ in edgetpu.list_devices()])
try:
    edgetpu.delegate(interpreter_api(sys.argv[4]).load_delegate, "usb:1")
    print("delegate while unplugged")
except DeviceError as error:
    print("refused", error.reason)
time.sleep(1.1)
print("listed", [name for name, _ in edgetpu.list_devices()])
tpu.close()
tpu = Engine(sys.argv[2], runtime=sys.argv[4], edge_tpu=True, device="usb:1")
print("exact", same())
"""


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_standin_computes_its_node_exactly_and_fails_as_told(request, runtime, compiled, int8_model,
                                                                 standin_edgetpu):
    from utils.testing import standin
    env = {**os.environ, **standin.environment(standin_edgetpu, "usb,usb", "1@3+1")}
    result = subprocess.run([python_for(runtime, request), "-c", STANDIN_CHECK, str(ROOT), str(compiled),
                             str(int8_model), runtime], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [
        "exact True",
        "fault Deadline exceeded: USB transfer error 2 [LibUsbDataOutCallback]",
        "listed ['usb:0']",
        "refused Could not find an Edge TPU matching 'usb:1'",
        "listed ['usb:0', 'usb:1']",
        "exact True"], result.stdout + result.stderr[-2000:]


def test_a_device_named_by_its_path_is_opened_by_its_number(standin_edgetpu, monkeypatch, tmp_path):
    """libedgetpu's plugin takes ``usb:N`` but not ``usb:/path``: a path is looked up in the device list."""
    from utils.runtime import edgetpu
    from utils.runtime.interpreters import interpreter_api
    from utils.testing import standin
    log = tmp_path / "standin.log"
    for name, value in standin.environment(standin_edgetpu, "pci,usb,usb", log=log).items():
        monkeypatch.setenv(name, value)
    assert edgetpu.device_path("usb:1") == "/standin/usb/1" and edgetpu.device_path(None) == "/standin/pci/0"
    assert edgetpu.name_of_path("/standin/usb/1") == "usb:1" and edgetpu.name_of_path("/nowhere") is None
    edgetpu.delegate(interpreter_api("litert").load_delegate, "usb:/standin/usb/1")
    assert log.read_text().splitlines()[0] == "create device=usb:1"


def test_a_compiled_model_needs_the_delegate(compiled):
    from utils.errors import UserError
    from utils.runtime.engine import Engine
    with pytest.raises(UserError, match="compiled for the Edge TPU"):
        Engine(compiled)


# ---- scenarios, end to end through inference.py ----------------------------------------------------

def record_row(name: str, runtime: str, frames_in: int, records: list[dict], status: int, stderr: str) -> None:
    if os.environ.get("FAULTS_TABLE"):
        frames = [r["frame"] for r in records]
        lost = sum(r["ms"].get("lost", 0.0) for r in records)
        with open(os.environ["FAULTS_TABLE"], "a") as out:
            out.write(json.dumps({"scenario": name, "runtime": runtime, "in": frames_in, "out": len(records),
                                  "order": frames == sorted(frames), "duplicates": len(frames) - len(set(frames)),
                                  "lost_ms": round(lost, 1), "status": status,
                                  "events": [line for line in stderr.splitlines() if line.startswith("Edge TPU")]})
                      + "\n")


def run_faulty(request, runtime: str, compiled: Path, library: Path, devices: str, faults: str, *args: str,
               log: Path | None = None, scenario: str = ""):
    """inference.py on the stand-in devices with ``faults``; (result, JSON records). A named scenario
    is a row of the closing note's table (FAULTS_TABLE)."""
    from utils.testing import standin
    env = {**os.environ, **standin.environment(library, devices, faults, log)}
    result = subprocess.run([python_for(runtime, request), "inference.py", "--no-display", "--model", str(compiled),
                             "--classes", str(MODEL_DATA / "coco.names"), "--edge_tpu", "--json", "--runtime", runtime,
                             *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    if scenario:
        record_row(scenario, runtime, CLIP_FRAMES, records, result.returncode, result.stderr)
    return result, records


@pytest.fixture(scope="module")
def healthy_runs() -> dict:
    return {}


@pytest.fixture()
def healthy(request, runtime, compiled, standin_edgetpu, healthy_runs) -> list[list]:
    """Detections of the clip's frames on a stand-in device that never fails, on the same runtime
    (its kernels round int8 differently)."""
    if runtime not in healthy_runs:
        result, records = run_faulty(request, runtime, compiled, standin_edgetpu, "usb", "", "--video", str(CLIP))
        assert result.returncode == 0, result.stderr
        healthy_runs[runtime] = [r["detections"] for r in records]
    return healthy_runs[runtime]


def events(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Edge TPU")]


def check_complete(records: list[dict], healthy: list[list], count: int = CLIP_FRAMES) -> None:
    assert [r["frame"] for r in records] == list(range(count))  # in order, none lost, none doubled
    assert [r["detections"] for r in records] == healthy[:count]


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_one_device_one_transient_error(request, runtime, compiled, standin_edgetpu, healthy):
    # Invoke 1 is the load's; frame k is invoke k + 2.
    result, records = run_faulty(request, runtime, compiled, standin_edgetpu, "usb", "0@8", "--video", str(CLIP),
                                 scenario="one device, one transient error")
    assert result.returncode == 0, result.stderr
    check_complete(records, healthy)
    assert [(r["frame"], r["failed_on"]) for r in records if "failed_on" in r] == [(6, ["usb:0"])]
    lines = events(result.stderr)
    assert len(lines) == 1 and "it worked when retried" in lines[0], lines
    assert "(Deadline exceeded: USB transfer error 2 [LibUsbDataOutCallback])" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_one_device_unplugged_for_3_s_then_back(request, runtime, compiled, standin_edgetpu, healthy, tmp_path):
    log = tmp_path / "standin.log"
    result, records = run_faulty(request, runtime, compiled, standin_edgetpu, "usb", "0@8+3", "--video", str(CLIP),
                                 log=log, scenario="one device unplugged for 3 s, then back")
    assert result.returncode == 0, result.stderr
    check_complete(records, healthy)
    retried = [r for r in records if "failed_on" in r]
    assert [r["frame"] for r in retried] == [6] and retried[0]["ms"]["lost"] >= 3000
    lines = events(result.stderr)
    assert len(lines) == 2 and "closed it" in lines[0] and "back after 3." in lines[1], lines
    assert log.read_text().splitlines() == ["create", "destroy", "create device=usb:0", "destroy"]  # closed, reopened


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_one_device_gone_for_good(request, runtime, compiled, standin_edgetpu, healthy, tmp_path):
    output = tmp_path / "out.mp4"
    result, records = run_faulty(request, runtime, compiled, standin_edgetpu, "usb", "0@8+inf", "--video", str(CLIP),
                                 "--reconnect", "3", "--output", str(output),
                                 scenario="one device gone for good (--reconnect 3)")
    assert result.returncode == 1, result.stderr
    check_complete(records, healthy, 6)
    assert "gave up after 3 attempts" in result.stderr and "exit status 1" in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr
    assert int(cv2.VideoCapture(str(output)).get(cv2.CAP_PROP_FRAME_COUNT)) == 6  # complete up to there
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_two_devices_one_failing_for_good(request, runtime, compiled, standin_edgetpu, healthy):
    result, records = run_faulty(request, runtime, compiled, standin_edgetpu, "usb,usb", "1@4+inf", "--video",
                                 str(CLIP), "--device", "all",
                                 scenario="two devices, one failing for good")
    assert result.returncode == 0, result.stderr
    check_complete(records, healthy)
    retried = [r for r in records if "failed_on" in r]
    assert len(retried) == 1 and retried[0]["failed_on"] == ["usb:1", "usb:1"] and retried[0]["device"] == "usb:0"
    after = records[records.index(retried[0]):]
    assert {r["device"] for r in after} == {"usb:0"}
    assert "its frames go to usb:0" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_two_devices_both_failing_in_turn(request, runtime, compiled, standin_edgetpu, healthy):
    # usb:0 is unplugged for 2 s at its 3rd frame; usb:1, alone, at its 8th, for 1 s: a while with none.
    result, records = run_faulty(request, runtime, compiled, standin_edgetpu, "usb,usb", "0@4+2;1@9+1", "--video",
                                 str(CLIP), "--device", "usb:0,usb:1",
                                 scenario="two devices, both failing in turn")
    assert result.returncode == 0, result.stderr
    check_complete(records, healthy)
    retried = [r for r in records if "failed_on" in r]
    assert sorted(device for r in retried for device in set(r["failed_on"])) == ["usb:0", "usb:1"]
    lines = events(result.stderr)
    assert sum("back after" in line for line in lines) >= 1 and "frames wait" in result.stderr, lines


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_fault_on_the_last_frame_of_a_file(request, runtime, compiled, standin_edgetpu, healthy, tmp_path):
    output = tmp_path / "out.mp4"
    result, records = run_faulty(request, runtime, compiled, standin_edgetpu, "usb", "0@25+1", "--video", str(CLIP),
                                 "--output", str(output),
                                 scenario="a fault on the last frame of a file")
    assert result.returncode == 0, result.stderr
    check_complete(records, healthy)
    assert records[-1]["failed_on"] == ["usb:0", "usb:0"]
    assert int(cv2.VideoCapture(str(output)).get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    images = [str(p) for p in sample_paths()]
    result, records = run_faulty(request, runtime, compiled, standin_edgetpu, "usb", f"0@{len(images) + 1}",
                                 "--image", *images)
    assert result.returncode == 0 and len(records) == len(images), result.stderr
    assert "failed_on" in records[-1]


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_fault_while_writing_segments(request, runtime, compiled, standin_edgetpu, healthy, tmp_path):
    output = tmp_path / "out.mp4"
    result, records = run_faulty(request, runtime, compiled, standin_edgetpu, "usb", "0@12+2", "--video", str(CLIP),
                                 "--output", str(output), "--segment-minutes", "0.005",
                                 scenario="a fault while writing segments (0.3 s each)")
    assert result.returncode == 0, result.stderr
    check_complete(records, healthy)
    segments = sorted(tmp_path.glob("out_*.mp4"))
    counts = [int(cv2.VideoCapture(str(p)).get(cv2.CAP_PROP_FRAME_COUNT)) for p in segments]
    assert len(segments) >= 2 and sum(counts) == 24 and all(counts), counts
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_detect_raises_a_device_error_once_retry_and_reopen_have_failed(compiled, standin_edgetpu, monkeypatch):
    from utils.testing import standin
    from utils.yolo.detector import Detector
    for name, value in standin.environment(standin_edgetpu, "usb", "0@3+inf").items():
        monkeypatch.setenv(name, value)
    lines = []
    detector = Detector(compiled, MODEL_DATA / "coco.names", edge_tpu=True, reconnect=1, on_event=lines.append)
    image = cv2.imread(str(MODEL_DATA / "samples" / "dog.jpg"))
    assert {d.label for d in detector.detect(image)} >= {"dog", "bicycle"}   # invoke 2
    with pytest.raises(DeviceError, match=r"^Edge TPU usb:0 failed and did not come back \(1 reconnect attempts\)$"):
        detector.detect(image)                                                 # invoke 3: gone
    assert len(lines) == 2 and "gave up after 1 attempt " in lines[1], lines


# ---- start-up is inside the fault policy ---------------------------------------------------------

@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_glitch_on_the_first_invoke_is_retried(request, runtime, compiled, standin_edgetpu, healthy):
    result, records = run_faulty(request, runtime, compiled, standin_edgetpu, "usb", "0@1", "--video", str(CLIP),
                                 scenario="one device, its first invoke fails once")
    assert result.returncode == 0, result.stderr
    check_complete(records, healthy)
    assert events(result.stderr) == ["Edge TPU usb:0: first invoke failed (Deadline exceeded: USB transfer error 2 "
                                     "[LibUsbDataOutCallback]); it worked when retried"], result.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_device_down_at_start_up_is_reopened(request, runtime, compiled, standin_edgetpu, healthy):
    result, records = run_faulty(request, runtime, compiled, standin_edgetpu, "usb", "0@1+1.5", "--video", str(CLIP),
                                 scenario="one device, unplugged for 1.5 s at its first invoke")
    assert result.returncode == 0, result.stderr
    check_complete(records, healthy)
    lines = events(result.stderr)
    assert len(lines) == 2 and "its first invoke failed" in lines[0] and "back after" in lines[1], lines
    assert "error" not in result.stderr.lower().replace("transfer error", "")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_device_all_leaves_out_a_device_that_never_comes_up(request, runtime, compiled, standin_edgetpu, healthy):
    result, records = run_faulty(request, runtime, compiled, standin_edgetpu, "usb,usb,usb", "1@1+inf", "--video",
                                 str(CLIP), "--device", "all", "--reconnect", "2",
                                 scenario="--device all, one device never comes up")
    assert result.returncode == 0, result.stderr
    check_complete(records, healthy)
    assert {r["device"] for r in records} == {"usb:0", "usb:2"}
    lines = events(result.stderr)  # and, if the run lasts long enough, that it gave up
    assert lines[0] == ("Edge TPU usb:1: its first invoke failed (Deadline exceeded: USB transfer error 2 "
                        "[LibUsbDataOutCallback]); it is reopened in the background")
    assert all(line.startswith("Edge TPU usb:1: gave up after 2 attempts") for line in lines[1:]) and len(lines) <= 2


def test_a_device_named_twice_is_refused(compiled, standin_edgetpu, monkeypatch):
    from utils.errors import UserError
    from utils.testing import standin
    from utils.yolo.detector import Detector
    for name, value in standin.environment(standin_edgetpu, "usb,usb").items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=r"--device usb,usb:0: usb and usb:0 are the same Edge TPU \(/standin/usb/0\)"):
        Detector(compiled, edge_tpu=True, device="usb,usb:0")


@pytest.mark.parametrize("runtime", ["litert"])
def test_reconnect_0_says_the_device_is_not_reopened(request, runtime, compiled, standin_edgetpu, healthy):
    result, records = run_faulty(request, runtime, compiled, standin_edgetpu, "usb", "0@8+inf", "--video", str(CLIP),
                                 "--reconnect", "0")
    assert result.returncode == 1, result.stderr
    check_complete(records, healthy, 6)
    lines = events(result.stderr)
    assert len(lines) == 2 and lines[0].endswith("closed it, and it is not reopened (reconnect 0)"), lines
    assert lines[1] == "Edge TPU usb:0 failed (reconnect 0: not reopened); stopped after 6 frames (exit status 1)"
    assert "frames wait" not in result.stderr and "gave up after 0" not in result.stderr
