"""``Detector`` shared between threads, closed, and misused: calls are serialised per device (four
threads x 50 calls give exactly the serial results, on the CPU and on two stand-in Edge TPUs),
``close()`` and ``with`` release every device, a source that raises delivers every frame before
the error, and a bad argument is one ``UserError``."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from conftest import MODEL_DATA, sample_paths
from helpers import as_list
from utils.errors import UserError
from utils.yolo.detector import Detector

THREADS, CALLS = 4, 50


@pytest.fixture(scope="module")
def int8_model(model_factory):
    return model_factory("tiny_keep_int8", [], [])


@pytest.fixture(scope="module")
def compiled(int8_model, tmp_path_factory):
    from utils.testing import standin
    return standin.compile_for_standin(int8_model, tmp_path_factory.mktemp("sharing") / "tiny_edgetpu.tflite")


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [cv2.imread(str(path)) for path in sample_paths()[:4]]


@pytest.fixture()
def two_standin_devices(standin_edgetpu, monkeypatch):
    from utils.testing import standin
    for name, value in standin.environment(standin_edgetpu, "usb,usb").items():
        monkeypatch.setenv(name, value)


def hammer(detector: Detector, images: list[np.ndarray]) -> list[list]:
    """THREADS threads, CALLS calls each, image i % len(images) on call i; every result, or the error."""
    results: list[list] = [[None] * CALLS for _ in range(THREADS)]

    def work(thread: int) -> None:
        for call in range(CALLS):
            try:
                results[thread][call] = as_list(detector.detect(images[(thread + call) % len(images)]))
            except Exception as error:  # noqa: BLE001 - the test reports it
                results[thread][call] = error
    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def check_equal_to_serial(detector: Detector, images: list[np.ndarray]) -> None:
    serial = [as_list(detector.detect(image)) for image in images]
    results = hammer(detector, images)
    errors = [r for row in results for r in row if isinstance(r, Exception)]
    assert not errors, errors[:3]
    for thread, row in enumerate(results):
        for call, found in enumerate(row):
            assert found == serial[(thread + call) % len(images)], (thread, call)


def test_four_threads_on_one_cpu_detector_get_the_serial_results(int8_model, images):
    with Detector(int8_model, MODEL_DATA / "coco.names", threads=2) as detector:
        check_equal_to_serial(detector, images)


def test_four_threads_on_two_edge_tpus_get_the_serial_results(compiled, images, two_standin_devices):
    events: list[str] = []
    with Detector(compiled, MODEL_DATA / "coco.names", edge_tpu=True, device="all", on_event=events.append) as detector:
        assert len(detector.devices) == 2
        check_equal_to_serial(detector, images)
    assert events == []  # no call was taken for a device fault


def test_close_and_with_release_every_device(compiled, images, two_standin_devices):
    detector = Detector(compiled, edge_tpu=True, device="all")
    devices = detector.devices
    assert all(device.up for device in devices)
    with detector:
        detector.detect(images[0])
    assert not any(device.up for device in devices)
    with pytest.raises(UserError, match="closed"):
        detector.detect(images[0])
    detector.close()  # twice is harmless


@pytest.mark.parametrize("device", [None, "all"], ids=["one device", "two devices"])
def test_a_source_that_raises_delivers_every_frame_before_it(device, compiled, images, two_standin_devices):
    def source():
        for i in range(5):
            yield images[i % len(images)]
        raise OSError("camera unplugged")
    delivered = []
    with Detector(compiled, edge_tpu=True, device=device) as detector:
        with pytest.raises(OSError, match="camera unplugged"):
            for image, _, _ in detector.detect_stream(source()):
                delivered.append(image)
    assert len(delivered) == 5 and all(a is b for a, b in zip(delivered, (images[i % len(images)] for i in range(5))))


@pytest.mark.parametrize("arguments,message", [
    (dict(runtime="nope"), "runtime 'nope': use 'auto' or 'litert'"),
    (dict(kernels="fast"), "kernels 'fast': use 'xnnpack'"),
    (dict(threshold="0.3"), "threshold must be a number (got '0.3')"),
    (dict(threads=0), "threads must be 1 or more (got 0)"),
    (dict(threads=1.5), "threads must be 1 or more (got 1.5)"),
    (dict(iou=2), "iou must be above 0 and at most 1"),
    (dict(reconnect=True), "reconnect must be 0 or more attempts"),
    (dict(nms="soft"), "nms 'soft': use 'greedy' or 'diou'"),
], ids=lambda value: str(value) if isinstance(value, dict) else "")
def test_a_bad_argument_is_one_user_error(int8_model, arguments, message):
    with pytest.raises(UserError) as error:
        Detector(int8_model, **arguments)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_keras_detector_prints_nothing(model_factory, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT
    h5 = model_factory("tiny_keep")
    result = subprocess.run([sys.executable, "-c", "import sys; from utils.yolo.detector import Detector; "
                             "Detector(sys.argv[1]).close()", str(h5)], cwd=ROOT, capture_output=True, text=True,
                            env={k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stderr
