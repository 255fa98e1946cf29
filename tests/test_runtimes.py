"""The runtime layer as Coral users run it: tflite_runtime alone (numpy 1.x), kernel sets, the Edge TPU
delegate path through a stand-in library, several devices, and the engine's independence from YOLO."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from conftest import MODEL_DATA, ROOT, assert_user_error, sample_paths

RUNTIMES = ("litert", "tflite_runtime")


def python_for(runtime: str, request) -> str:
    return sys.executable if runtime == "litert" else request.getfixturevalue("tflite_runtime_python")


def infer(python: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([python, "inference.py", "--no-display", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def detections_of(stdout: str) -> list[tuple]:
    """(source, frame, detections) of each JSON line, timing left out."""
    return [(r["source"], r["frame"], r["detections"]) for r in map(json.loads, stdout.splitlines())]


@pytest.fixture(scope="module")
def int8_model(model_factory) -> Path:
    return model_factory("tiny_keep_int8", [], [])


@pytest.fixture()
def standin(standin_edgetpu, tmp_path):
    """Environment pointing at the stand-in library, which logs to ``log`` and sees ``devices``."""
    log = tmp_path / "standin.log"

    def environment(devices: str = "usb", **extra: str) -> dict:
        return {"TINYYOLO_EDGETPU_LIBRARY": str(standin_edgetpu), "STANDIN_EDGETPU_LOG": str(log),
                "STANDIN_EDGETPU_DEVICES": devices, **extra}
    environment.log = log
    return environment


# ---- tflite_runtime alone ------------------------------------------------------------------------

def test_tflite_runtime_venv_has_neither_litert_nor_tensorflow(tflite_runtime_python):
    code = ("import importlib.util, numpy\n"
            "print(numpy.__version__.split('.')[0], *(importlib.util.find_spec(m) is None "
            "for m in ('ai_edge_litert', 'tensorflow', 'tflite_runtime')))")
    result = subprocess.run([tflite_runtime_python, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["1", "True", "True", "False"]


@pytest.mark.slow
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="an x86-64 fact: on arm64 (bench/check_arm64.py) tflite_runtime 2.14 and LiteRT's builtin "
                           "int8 kernels round differently")
def test_tflite_runtime_detections_equal_litert_builtin_kernels(tflite_runtime_python, int8_model):
    """The same int8 model, photos and kernels: identical JSON detections on both runtimes, on x86-64.
    On arm64 the two builds' optimised int8 kernels differ (only xnnpack and reference match across
    architectures), so there the equality is not expected."""
    photos = [str(p) for p in sample_paths()]
    common = ("--model", str(int8_model), "--classes", str(MODEL_DATA / "coco.names"), "--json", "-t", "0.1",
              "--image", *photos)
    alone = infer(tflite_runtime_python, *common, "--runtime", "tflite_runtime")
    litert = infer(sys.executable, *common, "--runtime", "litert", "--kernels", "builtin")
    assert alone.returncode == 0 and litert.returncode == 0, alone.stderr + litert.stderr
    assert "(tflite_runtime, builtin kernels)" in alone.stderr
    assert len(detections_of(alone.stdout)) == len(photos)
    assert detections_of(alone.stdout) == detections_of(litert.stdout)


def test_unit_tests_pass_on_numpy_1(tflite_runtime_python):
    """Letterbox, decoding and NMS (against libdarknet where installed) under numpy 1.x and tflite_runtime."""
    result = subprocess.run([tflite_runtime_python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/test_preprocess_decode.py"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("kernels", ["xnnpack", "builtin", "reference"])
def test_every_kernel_set_runs(int8_model, kernels):
    result = infer(sys.executable, "--model", str(int8_model), "--classes", str(MODEL_DATA / "coco.names"),
                   "--image", str(MODEL_DATA / "samples" / "dog.jpg"), "--kernels", kernels, "--json")
    assert result.returncode == 0, result.stderr
    assert f"(litert, {kernels} kernels)" in result.stderr
    assert {d["label"] for d in detections_of(result.stdout)[0][2]} >= {"dog", "bicycle"}


# ---- the Edge TPU delegate path, through the stand-in -------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_edge_tpu_delegate_is_loaded_with_its_options(request, runtime, int8_model, standin):
    python = python_for(runtime, request)
    common = ("--model", str(int8_model), "--classes", str(MODEL_DATA / "coco.names"), "--json",
              "--image", str(MODEL_DATA / "samples" / "dog.jpg"), "--runtime", runtime)
    cpu = infer(python, *common)
    first = infer(python, *common, "--edge_tpu", env=standin("usb,pci"))
    usb1 = infer(python, *common, "--edge_tpu", "--device", "usb:1", env=standin("usb,usb"))
    pci0 = infer(python, *common, "--edge_tpu", "--device", "pci:0", env=standin("usb,pci"))
    for result in (cpu, first, usb1, pci0):
        assert result.returncode == 0, result.stderr
    assert "not compiled for the Edge TPU" in first.stderr  # the stand-in claims no nodes: the CPU runs it
    assert standin.log.read_text().splitlines() == ["create", "destroy", "create device=usb:1", "destroy",
                                                    "create device=pci:0", "destroy"]
    expected = detections_of(cpu.stdout)[0][2]
    for result in (first, usb1, pci0):
        assert detections_of(result.stdout)[0][2] == expected
    assert json.loads(usb1.stdout)["device"] == "usb:1"


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_delegate_that_fails_gives_one_line(request, runtime, int8_model, standin):
    python = python_for(runtime, request)
    common = ("--model", str(int8_model), "--classes", str(MODEL_DATA / "coco.names"),
              "--image", str(MODEL_DATA / "samples" / "dog.jpg"), "--runtime", runtime, "--edge_tpu")
    failed = infer(python, *common, env=standin("usb", STANDIN_EDGETPU_FAIL="USB transfer error -7"))
    assert_user_error(failed, "no Edge TPU found", "USB transfer error -7")
    missing = infer(python, *common, "--device", "usb:0,usb:3", env=standin("usb,usb"))
    assert_user_error(missing, "no Edge TPU found at usb:3", "Could not find an Edge TPU matching 'usb:3'")
    absent = infer(python, *common, env={"TINYYOLO_EDGETPU_LIBRARY": "/nonexistent/libedgetpu.so.1"})
    assert_user_error(absent, "Edge TPU runtime not found", "libedgetpu1-std")


def test_list_devices(standin):
    result = infer(sys.executable, "--list-devices", env=standin("usb,pci,usb"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["usb:0\t/standin/usb/0", "pci:0\t/standin/pci/0", "usb:1\t/standin/usb/1"]
    assert "3 Edge TPUs" in result.stderr
    none = infer(sys.executable, "--list-devices", env=standin(""))
    assert none.returncode == 0 and none.stdout == "" and "0 Edge TPUs" in none.stderr


def test_device_names_are_checked(standin):
    result = infer(sys.executable, "--model", "m.tflite", "--classes", "c.names", "--image", "x.jpg",
                   "--edge_tpu", "--device", "usb:0,usb0")
    assert_user_error(result, "'usb0' is not a device name")
    result = infer(sys.executable, "--model", "m.tflite", "--classes", "c.names", "--image", "x.jpg",
                   "--device", "usb:0")
    assert_user_error(result, "--device names an Edge TPU: add --edge_tpu")


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_frames_are_shared_between_devices_and_come_out_in_order(request, runtime, int8_model, standin, tmp_path):
    python = python_for(runtime, request)
    clip = MODEL_DATA / "samples" / "clip.mp4"
    common = ("--model", str(int8_model), "--classes", str(MODEL_DATA / "coco.names"), "--json",
              "--video", str(clip), "--runtime", runtime)
    single = infer(python, *common)
    output = tmp_path / "out.mp4"
    both = infer(python, *common, "--edge_tpu", "--device", "all", "--output", str(output), env=standin("usb,usb"))
    assert single.returncode == 0 and both.returncode == 0, single.stderr + both.stderr
    records = [json.loads(line) for line in both.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(24))
    assert {r["device"] for r in records} == {"usb:0", "usb:1"}  # each takes the next frame when free
    assert [r["detections"] for r in records] == [r[2] for r in detections_of(single.stdout)]
    assert sorted(standin.log.read_text().splitlines()) == ["create device=usb:0", "create device=usb:1",
                                                            "destroy", "destroy"]
    assert int(cv2.VideoCapture(str(output)).get(cv2.CAP_PROP_FRAME_COUNT)) == 24


@pytest.mark.parametrize("threads, cores, edge_tpu, pipelined", [(2, 2, False, False), (4, 4, False, False),
                                                                  (2, 4, False, True), (None, 4, False, False),
                                                                  (2, 2, True, True)])
def test_the_loop_is_pipelined_only_when_invoke_leaves_a_core_free(monkeypatch, int8_model, standin, threads, cores,
                                                                   edge_tpu, pipelined):
    """Overlapping the stages helps only when invoke() leaves a core idle (an Edge TPU, or fewer threads
    than cores); otherwise they compete for the cores invoke uses, so the loop stays serial."""
    from utils.yolo import detector as detector_module
    if edge_tpu:
        for name, value in standin("usb").items():
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    calls = []
    real = detector_module.pipeline
    monkeypatch.setattr(detector_module, "pipeline", lambda *args, **kw: calls.append(1) or real(*args, **kw))
    detector = detector_module.Detector(int8_model, MODEL_DATA / "coco.names", threads=threads, edge_tpu=edge_tpu)
    images = [cv2.imread(str(path)) for path in sample_paths()]
    results = list(detector.detect_stream(images))
    assert bool(calls) == pipelined
    assert [image is item for image, (item, _, _) in zip(images, results)] == [True] * len(images)
    assert [list(d) for _, d, _ in results] == [list(detector.detect(image)) for image in images]
