"""Bad and awkward input, every script: one error line, the right exit status, nothing of the user's
changed and nothing left behind.

Each case builds its inputs in an empty directory (copies of models and photos included), runs one
command there, and compares a checksum listing of that directory before and after: a refused
command must leave it byte for byte as it was; a command that succeeds may only add the outputs
the case names. ``BAD_INPUT_TABLE=FILE`` appends one Markdown row per case to FILE.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import MODEL_DATA, ROOT, assert_user_error, error_lines, run_in_process

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class Case:
    name: str
    build: Callable[[Path, Models], list[str]]  # makes the inputs in the directory; returns the command
    status: int = 2
    fragments: tuple[str, ...] = ()               # what the error line (or the last line) must say
    creates: tuple[str, ...] = ()                 # outputs a successful run adds (relative paths)
    needs: str = ""                               # "root" for cases that mount or chattr
    slow: bool = False
    process: bool = False                         # run as a child process (else in-process: see run)
    absent: tuple[str, ...] = ()                  # what nothing printed may contain (secrets)
    stdout: str = ""                              # "full": a child process whose stdout is /dev/full


CASES: list[Case] = []


def case(name: str, status: int = 2, fragments: tuple[str, ...] = (), creates: tuple[str, ...] = (),
         needs: str = "", slow: bool = False, process: bool = False, absent: tuple[str, ...] = (),
         stdout: str = ""):
    def register(build):
        CASES.append(Case(name, build, status, fragments, creates, needs, slow, process or bool(stdout), absent,
                          stdout))
        return build
    return register


class Models:
    """Paths of the models the cases copy (built once per session by conftest's model_factory)."""

    def __init__(self, factory, weights: Path):
        self._factory, self.weights = factory, weights

    @property
    def tflite(self) -> Path:
        return self._factory("tiny_keep_int8", [], [])

    @property
    def h5(self) -> Path:
        return self._factory("tiny_keep")

    @property
    def one_class_tflite(self) -> Path:
        from utils.darknet.cfg import conv_layouts, parse_cfg
        from utils.darknet.weights import write_weights
        build_dir = self.h5.parent
        cfg = build_dir / "one-class.cfg"
        if not cfg.exists():
            text = (MODEL_DATA / "yolov3-tiny.cfg").read_text()
            cfg.write_text(text.replace("classes=80", "classes=1").replace("filters=255", "filters=18"))
            write_weights(build_dir / "one-class.weights", conv_layouts(parse_cfg(cfg)), np.random.default_rng(4))
        return self._factory("one_class_int8", [], ["--num-samples", "4"], cfg=cfg,
                             weights_path=build_dir / "one-class.weights")


@pytest.fixture(scope="session")
def models(model_factory, weights) -> Models:
    return Models(model_factory, weights)


# ---- helpers that build inputs inside the case directory ---------------------------------------

def photo(d: Path, name: str = "dog.jpg", which: str = "dog.jpg") -> str:
    (d / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(MODEL_DATA / "samples" / which, d / name)
    return name


def model(d: Path, m: Models, name: str = "m.tflite") -> str:
    shutil.copy(m.tflite, d / name)
    return name


def bare_model(d: Path, m: Models) -> str:
    """The int8 model without its embedded metadata (as other tools write them)."""
    from utils.tflite import model as tflite_model
    bare = tflite_model.load(m.tflite)
    bare.metadata = []
    tflite_model.save(bare, d / "bare.tflite")
    return "bare.tflite"


def keras_model(d: Path, m: Models, name: str = "m.h5") -> str:
    shutil.copy(m.h5, d / name)
    shutil.copy(m.h5.with_name(f"{m.h5.stem}_yolo.json"), d / name.replace(".h5", "_yolo.json"))
    return name


def names(d: Path, text: str | None = None, name: str = "coco.names") -> str:
    (d / name).write_text(text if text is not None else (MODEL_DATA / "coco.names").read_text())
    return name


def cfg(d: Path, text: str | None = None, name: str = "tiny.cfg") -> str:
    (d / name).write_text(text if text is not None else (MODEL_DATA / "yolov3-tiny.cfg").read_text())
    return name


def edited_cfg(d: Path, old: str, new: str, count: int = 1) -> str:
    text = (MODEL_DATA / "yolov3-tiny.cfg").read_text()
    assert old in text, old
    return cfg(d, text.replace(old, new, count))


def video(d: Path, name: str = "clip.avi", frames: int = 6) -> str:
    writer = cv2.VideoWriter(str(d / name), cv2.VideoWriter_fourcc(*"MJPG"), 5, (320, 240))
    image = cv2.resize(cv2.imread(str(MODEL_DATA / "samples" / "dog.jpg")), (320, 240))
    for _ in range(frames):
        writer.write(image)
    writer.release()
    return name


def weights(d: Path, m: Models) -> str:
    shutil.copy(m.weights, d / "tiny.weights")
    return "tiny.weights"


INFER = ["inference.py", "--no-display"]
QUANT = ["keras_to_tflite_quant.py"]
CONVERT = ["convert.py"]
EVALUATE = ["evaluate.py"]


def infer(d: Path, m: Models, *args: str) -> list[str]:
    return [*INFER, "--model", model(d, m), "--classes", names(d), *args]


# ---- the cases: data loss and crashes ----------------------------------------------------

@case("quant: output is the input (same name)", fragments=("m.h5", "is the input"))
def _(d, m):
    return [*QUANT, keras_model(d, m), "m.h5"]


@case("quant: output is a symlink to the input", fragments=("link.tflite", "is the input"))
def _(d, m):
    os.symlink("m.h5", d / "link.tflite")
    return [*QUANT, keras_model(d, m), "link.tflite"]


@case("quant: output is a hard link of the input", fragments=("hard.tflite", "is the input"))
def _(d, m):
    keras_model(d, m)
    os.link(d / "m.h5", d / "hard.tflite")
    return [*QUANT, "m.h5", "hard.tflite"]


@case("infer: --image photos --output photos", fragments=("is the input", "refusing to replace it"))
def _(d, m):
    photo(d, "photos/a.jpg")
    photo(d, "photos/b.jpg", "person.jpg")
    return infer(d, m, "--image", "photos", "--output", "photos")


@case("infer: --video a.avi --output a.avi", fragments=("a.avi", "is the input"))
def _(d, m):
    return infer(d, m, "--video", video(d, "a.avi"), "--output", "a.avi")


@case("infer: in/x.jpg and in/sub/x.jpg mirror to out/", status=0,
      creates=("out/x.jpg", "out/sub/x.jpg"), fragments=("2 images, 0 unreadable",))
def _(d, m):
    photo(d, "in/x.jpg")
    photo(d, "in/sub/x.jpg", "person.jpg")
    return infer(d, m, "--image", "in", "--output", "out")


@case("infer: one corrupt image in a directory", status=1, creates=("out/a.jpg", "out/c.jpg"),
      fragments=("3 images, 1 unreadable",), process=True)
def _(d, m):
    photo(d, "in/a.jpg")
    (d / "in" / "b.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    photo(d, "in/c.jpg", "person.jpg")
    return infer(d, m, "--image", "in", "--output", "out")


for _value in ("-1e-40,1e-40", "-1e300,1e300", "-inf,inf", "-1e-6,1e-6", "nan,1", "1,2"):
    case(f"quant: --output-range={_value}", fragments=("--output-range", _value))(
        lambda d, m, v=_value: [*QUANT, keras_model(d, m), "q.tflite", f"--output-range={v}"])

for _value, _why in (("percentile:50", "between 90 and 100"), ("percentile:100.5", "between 90 and 100"),
                     ("percentile:50.001", "finds nothing"), ("percentile:-3", "between 90 and 100"), ("percentile:abc", "must be a number"),
                     ("kl", "not one of minmax"), ("mse:3", "only percentile takes a value")):
    case(f"quant: --calibration {_value}", fragments=("--calibration", _value, _why))(
        lambda d, m, v=_value: [*QUANT, keras_model(d, m), "q.tflite", "--calibration", v])

for _flag, _value, _why in (("--max-detections", "0", "between 1 and 10000"),
                            ("--max-detections", "-5", "between 1 and 10000"),
                            ("--score-threshold", "0", "above 0 and below 1"),
                            ("--score-threshold", "-0.2", "above 0 and below 1"),
                            ("--nms-iou", "0", "above 0 and at most 1"), ("--nms-iou", "-1", "above 0 and at most 1")):
    case(f"quant: --outputs detections {_flag} {_value}", fragments=(_flag, _value, _why))(
        lambda d, m, f=_flag, v=_value: [*QUANT, keras_model(d, m), "q.tflite", "--outputs", "detections",
                                         "--classes", names(d), f, v])


@case("quant: --outputs detections without --classes", fragments=("--outputs detections needs --classes",))
def _(d, m):
    return [*QUANT, keras_model(d, m), "q.tflite", "--outputs", "detections"]


@case("quant: --outputs detections, classes of another model", fragments=("coco.names", "3 names", "80 classes"))
def _(d, m):
    return [*QUANT, keras_model(d, m), "q.tflite", "--outputs", "detections", "--classes", names(d, "a\nb\nc\n")]


for _value in ("100000", "0", "-3"):
    case(f"infer: --threads {_value}", fragments=("--threads must be between 1 and",))(
        lambda d, m, v=_value: infer(d, m, "--image", photo(d), "--threads", v))


def truncated(d: Path, m: Models, size: int) -> str:
    (d / "cut.tflite").write_bytes(m.tflite.read_bytes()[:size])
    return "cut.tflite"


for _size in (100_000, 3_000_000):
    case(f"infer: .tflite cut at {_size:,} bytes", fragments=("cut.tflite", "truncated or corrupt"))(
        lambda d, m, s=_size: [*INFER, "--model", truncated(d, m, s), "--classes", names(d), "--image", photo(d)])
    case(f"edgetpu_check: .tflite cut at {_size:,} bytes", fragments=("cut.tflite", "truncated or corrupt"))(
        lambda d, m, s=_size: ["-m", "utils.edgetpu_check", truncated(d, m, s)])
    case(f"fidelity: .tflite cut at {_size:,} bytes", fragments=("cut.tflite", "truncated or corrupt"))(
        lambda d, m, s=_size: ["-m", "utils.fidelity", truncated(d, m, s), model(d, m), "--images", photo(d)])


@case("convert: output is a directory", fragments=("out.h5", "is a directory"))
def _(d, m):
    (d / "out.h5").mkdir()
    return [*CONVERT, cfg(d), weights(d, m), "out.h5"]


@case("quant: output is a directory", fragments=("q.tflite", "is a directory"))
def _(d, m):
    (d / "q.tflite").mkdir()
    return [*QUANT, keras_model(d, m), "q.tflite"]


@case("fetch_weights: --dest is a directory", fragments=("w.weights", "is a directory"))
def _(d, m):
    (d / "w.weights").mkdir()
    return ["-m", "utils.fetch_weights", "--dest", "w.weights", "--url", "http://127.0.0.1:9/x", "--timeout", "1"]


@case("convert: the existing output is immutable (chattr +i)", fragments=("out.h5", "cannot write"), needs="root")
def _(d, m):
    (d / "out.h5").write_bytes(b"the user's old model")
    subprocess.run(["chattr", "+i", str(d / "out.h5")], check=True)
    return [*CONVERT, cfg(d), weights(d, m), "out.h5"]


@case("quant: output on a read-only file system", fragments=("ro/q.tflite", "Read-only file system"), needs="root")
def _(d, m):
    mount(d / "ro", "size=1m,ro")
    return [*QUANT, keras_model(d, m), "ro/q.tflite", "--num-samples", "2"]


@case("convert: parent of the output is a file", fragments=("not-a-dir/out.h5", "is not a directory"))
def _(d, m):
    (d / "not-a-dir").write_text("x")
    return [*CONVERT, cfg(d), weights(d, m), "not-a-dir/out.h5"]


@case("convert: disk full while writing the model (64 KiB file system)",
      fragments=("full/out.h5", "No space left on device"), needs="root")
def _(d, m):
    mount(d / "full", "size=64k")
    return [*CONVERT, cfg(d), weights(d, m), "full/out.h5"]


@case("infer: disk full while writing a video", status=2, fragments=("full/out.avi", "No space left on device"),
      needs="root")
def _(d, m):
    mount(d / "full", "size=32k")
    return infer(d, m, "--video", video(d, frames=20), "--output", "full/out.avi")


@case("infer: --video with --output, classes file missing: no temp file", fragments=("none.names", "no such file"))
def _(d, m):
    return [*INFER, "--model", model(d, m), "--classes", "none.names", "--video", video(d), "--output", "new.mp4"]


@case("infer: --video with --output, model corrupt: no temp file", fragments=("bad.tflite", "not a TFLite"))
def _(d, m):
    (d / "bad.tflite").write_bytes(b"\0" * 64)
    return [*INFER, "--model", "bad.tflite", "--classes", names(d), "--video", video(d), "--output", "new.mp4"]


@case("convert: a sidecar cannot be written: the old model stays", fragments=("out_yolo.json", "is a directory"))
def _(d, m):
    (d / "out.h5").write_bytes(b"the user's old model")
    (d / "out_yolo.json").mkdir()
    return [*CONVERT, cfg(d), weights(d, m), "out.h5"]


for _old, _new, _fragment in (("filters=16", "filters=-16", "'filters=-16' must be at least 1"),
                              ("filters=16", "filters=0", "'filters=0' must be at least 1"),
                              ("size=2\nstride=2", "size=2\nstride=0", "'stride=0' must be at least 1"),
                              ("size=3", "size=0", "'size=0' must be at least 1"),
                              ("classes=80", "classes=0", "'classes=0' must be at least 1")):
    case(f"convert: cfg {_new.splitlines()[-1]}", fragments=("tiny.cfg line", _fragment))(
        lambda d, m, o=_old, n=_new: [*CONVERT, edited_cfg(d, o, n), weights(d, m), "out.h5"])


@case("infer: --anchors JSON that is not UTF-8", fragments=("latin.json", "not UTF-8"))
def _(d, m):
    (d / "latin.json").write_bytes('{"anchors": "caf\u00e9"}'.encode("latin-1"))
    return [*INFER, "--model", bare_model(d, m), "--anchors", "latin.json", "--classes", names(d), "--image", photo(d)]


@case("quant: _yolo.json sidecar that is not UTF-8", fragments=("m_yolo.json", "not UTF-8"))
def _(d, m):
    keras_model(d, m)
    (d / "m_yolo.json").write_bytes(b"\xff\xfe{\x00")
    return [*QUANT, "m.h5", "q.tflite"]


@case("quant: _yolo.json sidecar with a mask beyond the anchors", fragments=("m_yolo.json", "mask [6, 7, 8]"))
def _(d, m):
    keras_model(d, m)
    meta = json.loads((d / "m_yolo.json").read_text())
    meta["heads"][0]["mask"] = [6, 7, 8]
    (d / "m_yolo.json").write_text(json.dumps(meta))
    return [*QUANT, "m.h5", "q.tflite"]


@case("infer: --runtime tensorflow", status=0, fragments=("(tensorflow, xnnpack kernels)",), slow=True)
def _(d, m):
    return infer(d, m, "--image", photo(d), "--runtime", "tensorflow")


@case("infer: --runtime litert", status=0, fragments=("(litert, xnnpack kernels)",))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--runtime", "litert")


@case("infer: --runtime auto", status=0, fragments=("(litert, xnnpack kernels)",))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--runtime", "auto")


@case("infer: --runtime tflite_runtime where it is not installed", fragments=("tflite_runtime", "pip install tflite-runtime"))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--runtime", "tflite_runtime")


@case("fidelity: models with different class counts", fragments=("1 classes", "80", "not the same model"), slow=True)
def _(d, m):
    shutil.copy(m.one_class_tflite, d / "one.tflite")
    return ["-m", "utils.fidelity", "one.tflite", model(d, m), "--images", photo(d)]


for _value in ("0", "-1", "nan"):
    case(f"fetch_weights: --timeout {_value}", fragments=("--timeout",))(
        lambda d, m, v=_value: ["-m", "utils.fetch_weights", "--dest", "w.weights", f"--timeout={v}"])


@case("fetch_weights: unwritable --dest is named before any download", fragments=("file/w.weights", "not a directory"))
def _(d, m):
    (d / "file").write_text("x")
    return ["-m", "utils.fetch_weights", "--dest", "file/w.weights", "--url", "http://127.0.0.1:9/x", "--timeout", "1"]


@case("infer: --output x.xyz", fragments=("x.xyz", "cannot write images of type '.xyz'"))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--output", "x.xyz")


@case("convert: cfg with CRLF line ends and a byte-order mark", status=0,
      creates=("out.h5", "out_yolo.json", "out_anchors.txt"), fragments=("converted in",), slow=True)
def _(d, m):
    text = (MODEL_DATA / "yolov3-tiny.cfg").read_text().replace("\n", "\r\n")
    (d / "tiny.cfg").write_bytes(b"\xef\xbb\xbf" + text.encode())
    return [*CONVERT, "tiny.cfg", weights(d, m), "out.h5"]


@case("infer: names with CRLF and a byte-order mark", status=0, fragments=("dog 0.",))
def _(d, m):
    text = (MODEL_DATA / "coco.names").read_text().replace("\n", "\r\n")
    (d / "win.names").write_bytes(b"\xef\xbb\xbf" + text.encode())
    return [*INFER, "--model", model(d, m), "--classes", "win.names", "--image", photo(d)]


@case("infer: anchors file with CRLF and a byte-order mark", status=0, fragments=("dog 0.",))
def _(d, m):
    bare_model(d, m)
    (d / "a.txt").write_bytes(b"\xef\xbb\xbf10,14, 23,27, 37,58,\r\n81,82, 135,169, 344,319\r\n")
    return [*INFER, "--model", "bare.tflite", "--anchors", "a.txt", "--classes", names(d), "--image", photo(d)]


# ---- more, invented ------------------------------------------------------------------------------

@case("convert: a binary file as cfg", fragments=("tiny.weights", "not UTF-8"))
def _(d, m):
    return [*CONVERT, weights(d, m), weights(d, m), "out.h5"]


@case("convert: an empty cfg", fragments=("empty.cfg", "[net]"))
def _(d, m):
    return [*CONVERT, cfg(d, "", "empty.cfg"), weights(d, m), "out.h5"]


@case("convert: output named .txt", fragments=("out.txt", ".h5 or .keras"))
def _(d, m):
    return [*CONVERT, cfg(d), weights(d, m), "out.txt"]


@case("convert: output is a symlink to the weights", fragments=("w.h5", "is the input"))
def _(d, m):
    os.symlink("tiny.weights", d / "w.h5")
    return [*CONVERT, cfg(d), weights(d, m), "w.h5"]


@case("convert: groups that do not divide the channels", fragments=("tiny.cfg line", "groups=3"))
def _(d, m):
    return [*CONVERT, edited_cfg(d, "filters=32", "filters=32\ngroups=3"), weights(d, m), "out.h5"]


@case("convert: a negative anchor", fragments=("tiny.cfg line", "anchors must all be positive"), process=True)
def _(d, m):
    return [*CONVERT, edited_cfg(d, "anchors = 10,14", "anchors = -10,14", 2), weights(d, m), "out.h5"]


@case("convert: --input-size 100", fragments=("multiples of 32",))
def _(d, m):
    return [*CONVERT, cfg(d), weights(d, m), "out.h5", "--input-size", "100"]


@case("convert: weights of another cfg", fragments=("tiny.weights", "do not belong together"))
def _(d, m):
    return [*CONVERT, cfg(d, (MODEL_DATA / "yolov4-tiny.cfg").read_text(), "v4.cfg"), weights(d, m), "out.h5"]


@case("convert: upper-case extension OUT.H5", status=0, creates=("OUT.H5", "OUT_yolo.json", "OUT_anchors.txt"),
      fragments=("converted in",), slow=True)
def _(d, m):
    return [*CONVERT, cfg(d), weights(d, m), "OUT.H5"]


@case("quant: --calibration kl names auto among the choices", fragments=("'kl' is not one of", "mse, auto"))
def _(d, m):
    return [*QUANT, keras_model(d, m), "q.tflite", "--calibration", "kl"]


@case("quant: --calibration auto on 2 images uses the default", status=0, slow=True, creates=("q.tflite",),
      fragments=("calibration auto: 2 images is too few to hold any out (it needs 8); using mse",))
def _(d, m):
    return [*QUANT, keras_model(d, m), "q.tflite", "--dataset", photo(d, "a.jpg"), photo(d, "b.jpg", "person.jpg"),
            "--num-samples", "2", "--calibration", "auto"]


@case("quant: --num-samples 0", fragments=("--num-samples",))
def _(d, m):
    return [*QUANT, keras_model(d, m), "q.tflite", "--num-samples", "0"]


@case("quant: output named .h5", fragments=("q.h5", ".tflite"))
def _(d, m):
    return [*QUANT, keras_model(d, m), "q.h5"]


@case("quant: a dataset of corrupt images only", fragments=("could be decoded",), slow=True)
def _(d, m):
    (d / "bad").mkdir()
    (d / "bad" / "a.jpg").write_bytes(b"\xff\xd8 truncated")
    return [*QUANT, keras_model(d, m), "q.tflite", "--dataset", "bad"]


@case("quant: a dataset directory without images", fragments=("empty", "no images"), process=True)
def _(d, m):
    (d / "empty").mkdir()
    return [*QUANT, keras_model(d, m), "q.tflite", "--dataset", "empty"]


@case("quant: creates the output's missing directories", status=0,
      creates=("new/dir/q.tflite",), fragments=("wrote new/dir/q.tflite",), slow=True)
def _(d, m):
    return [*QUANT, keras_model(d, m), "new/dir/q.tflite", "--dataset", photo(d), "--num-samples", "2"]


@case("quant: a dataset of tiny glyphs is counted and warned about", status=0, creates=("q.tflite",),
      fragments=("8 of the 8 calibration images are under a quarter of the network input", "dataset: 40 images found",
                 "12x14 to 12x14 pixels"),
      slow=True)
def _(d, m):
    for k in range(40):
        (d / "glyphs" / f"g{k // 10}").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / "glyphs" / f"g{k // 10}" / f"{k}.png"), np.full((14, 12, 3), 6 * k, np.uint8))
    return [*QUANT, keras_model(d, m), "q.tflite", "--dataset", "glyphs", "--num-samples", "8"]


@case("infer: several images into one image name", fragments=("x.jpg", "2 images need a directory"))
def _(d, m):
    return infer(d, m, "--image", photo(d, "a.jpg"), photo(d, "b.jpg"), "--output", "x.jpg")


@case("infer: two sources would share an output", fragments=("out/x.jpg", "both"))
def _(d, m):
    return infer(d, m, "--image", photo(d, "d1/x.jpg"), photo(d, "d2/x.jpg"), "--output", "out")


@case("infer: -t 1.5", fragments=("-t must be strictly between 0 and 1 (got 1.5)",))
def _(d, m):
    return infer(d, m, "--image", photo(d), "-t", "1.5")


@case("infer: --iou 0", fragments=("--iou",))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--iou", "0")


@case("infer: an empty classes file", fragments=("empty.names", "no class names"))
def _(d, m):
    return [*INFER, "--model", model(d, m), "--classes", names(d, "", "empty.names"), "--image", photo(d)]


@case("infer: a binary classes file", fragments=("bin.names", "not UTF-8"))
def _(d, m):
    (d / "bin.names").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    return [*INFER, "--model", model(d, m), "--classes", "bin.names", "--image", photo(d)]


@case("infer: the model is a directory", fragments=("mdir", "not a file"))
def _(d, m):
    (d / "mdir").mkdir()
    return [*INFER, "--model", "mdir", "--classes", names(d), "--image", photo(d)]


@case("infer: a 0-byte model", fragments=("zero.tflite", "not a TFLite"))
def _(d, m):
    (d / "zero.tflite").write_bytes(b"")
    return [*INFER, "--model", "zero.tflite", "--classes", names(d), "--image", photo(d)]


@case("infer: --output under an existing file", fragments=("file.txt", "is not a directory"))
def _(d, m):
    (d / "file.txt").write_text("mine")
    return infer(d, m, "--image", photo(d, "a.jpg"), photo(d, "b.jpg"), "--output", "file.txt")


@case("infer: --video with an image --output", fragments=("out.jpg", ".mp4"))
def _(d, m):
    return infer(d, m, "--video", video(d), "--output", "out.jpg")


@case("infer: a directory without images", fragments=("noimg", "no images"))
def _(d, m):
    (d / "noimg").mkdir()
    (d / "noimg" / "notes.txt").write_text("x")
    return infer(d, m, "--image", "noimg")


@case("infer: the only image is corrupt", fragments=("bad.jpg", "cannot be read"))
def _(d, m):
    (d / "bad.jpg").write_bytes(b"GIF89a nope")
    return infer(d, m, "--image", "bad.jpg")


@case("infer: upper-case extensions DOG.JPG -> OUT.PNG", status=0, creates=("OUT.PNG",), fragments=("wrote OUT.PNG",))
def _(d, m):
    return infer(d, m, "--image", photo(d, "DOG.JPG"), "--output", "OUT.PNG")


@case("infer: odd image sizes (1x1, 3x1000, 1000x3, grey, RGBA, 16-bit)", status=0,
      creates=tuple(f"out/{n}.png" for n in ("a1x1", "b3x1000", "c1000x3", "grey", "rgba", "u16")),
      fragments=("6 images, 0 unreadable",))
def _(d, m):
    (d / "odd").mkdir()
    images = {"a1x1": np.full((1, 1, 3), 200, np.uint8), "b3x1000": np.full((1000, 3, 3), 90, np.uint8),
              "c1000x3": np.full((3, 1000, 3), 30, np.uint8), "grey": np.full((50, 70), 128, np.uint8),
              "rgba": np.full((40, 60, 4), 77, np.uint8), "u16": np.full((30, 30, 3), 40000, np.uint16)}
    for name, image in images.items():
        cv2.imwrite(str(d / "odd" / f"{name}.png"), image)
    return infer(d, m, "--image", "odd", "--output", "out")


@case("infer: --anchors that does not exist", fragments=("none.txt", "no such file"))
def _(d, m):
    return [*INFER, "--model", bare_model(d, m), "--anchors", "none.txt", "--classes", names(d), "--image", photo(d)]


@case("infer: --quant on a Keras file (float)", fragments=("m.h5", "float32 input", "drop --quant"))
def _(d, m):
    return [*INFER, "--model", keras_model(d, m), "--classes", names(d), "--image", photo(d), "--quant"]


@case("edgetpu_check: a Keras file", fragments=("m.h5", "not a TFLite"), process=True)
def _(d, m):
    return ["-m", "utils.edgetpu_check", keras_model(d, m)]


@case("fidelity: no readable image", fragments=("none of the 1 images",), process=True)
def _(d, m):
    (d / "bad.jpg").write_bytes(b"nope")
    return ["-m", "utils.fidelity", model(d, m), model(d, m, "n.tflite"), "--images", "bad.jpg"]


@case("fetch_weights: --sha256 that is not a checksum", fragments=("--sha256",), process=True)
def _(d, m):
    return ["-m", "utils.fetch_weights", "--dest", "w.weights", "--sha256", "xyz"]


@case("infer: --save-txt with --video", fragments=("--save-txt", "--image"))
def _(d, m):
    return [*INFER, "--model", model(d, m), "--classes", names(d), "--video", "v.avi", "--save-txt", "labels"]


@case("infer: --save-txt writes one label file per image", status=0, creates=("labels/dog.txt",),
      fragments=("wrote 1 label file under labels",))
def _(d, m):
    return [*INFER, "--model", model(d, m), "--classes", names(d), "--image", photo(d), "--save-txt", "labels"]


@case("evaluate: a .data file without valid=", fragments=("obj.data", "no 'valid =' line"))
def _(d, m):
    (d / "obj.data").write_text("classes = 80\r\nnames = coco.names\r\n")
    return [*EVALUATE, "--model", model(d, m), "--data", "obj.data"]


@case("evaluate: --coco that is not a COCO file", fragments=("instances.json", "not a COCO instances file"))
def _(d, m):
    (d / "instances.json").write_text('{"images": []}')
    photo(d, "val/dog.jpg")
    return [*EVALUATE, "--model", model(d, m), "--classes", names(d), "--coco", "instances.json", "--images", "val"]


@case("evaluate: a label with a class beyond the names", fragments=("dog.txt:1", "class 3 is beyond the 3 class names"), process=True)
def _(d, m):
    photo(d, "val/dog.jpg")
    (d / "val" / "dog.txt").write_text("3 0.5 0.5 0.2 0.2\n")
    return [*EVALUATE, "--model", model(d, m), "--classes", names(d, "a\nb\nc\n"), "--images", "val"]


@case("evaluate: no ground truth named", fragments=("--images",))
def _(d, m):
    return [*EVALUATE, "--model", model(d, m), "--classes", names(d)]


# ---- round two: secrets in URLs, nothing readable, COCO fields, thin images, a full stdout -------

@case("infer: --video rtsp://admin:pa@ss@127.0.0.1:1/live", fragments=("stream rtsp://***@127.0.0.1:1/live",
                                                                       "cannot be opened"), absent=("pa@ss", "admin"))
def _(d, m):
    return infer(d, m, "--video", "rtsp://admin:pa@ss@127.0.0.1:1/live")


@case("infer: --video http://…?user=admin&password=…", fragments=("?user=***&password=***", "cannot be opened"),
      absent=("Qry5ecret", "admin"))
def _(d, m):
    return infer(d, m, "--video", "http://127.0.0.1:1/video.mjpg?user=admin&password=Qry5ecret")


@case("infer: --cam rtsp://user:secret@… --json", fragments=("rtsp://***@127.0.0.1:1/x",), absent=("Qry5ecret",))
def _(d, m):
    return infer(d, m, "--cam", "rtsp://admin:Qry5ecret@127.0.0.1:1/x", "--json")


@case("infer: --video rtmp://user:secret@… (a scheme not supported)", fragments=("rtmp://***@127.0.0.1/live",
                                                                                  "no such file"), absent=("Qry5ecret",))
def _(d, m):
    return infer(d, m, "--video", "rtmp://admin:Qry5ecret@127.0.0.1/live")


@case("infer: --verbose on http://…/user=admin_password=… (Xiongmai path style)", process=True,
      fragments=("user=***", "cannot be opened"), absent=("Qry5ecret", "admin"))
def _(d, m):
    return infer(d, m, "--video", "http://127.0.0.1:1/user=admin_password=Qry5ecret_channel=1", "--verbose")


def corrupt(d: Path, name: str) -> str:
    (d / name).parent.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(b"\xff\xd8\xff not a jpeg")
    return name


@case("evaluate: a directory whose only image cannot be decoded", status=1,
      fragments=("0 images, 1 unreadable (exit status 1)", "nothing evaluated"))
def _(d, m):
    corrupt(d, "val/a.jpg")
    return [*EVALUATE, "--model", model(d, m), "--classes", names(d), "--images", "val"]


@case("evaluate: a COCO file whose only file_name is missing", status=1,
      fragments=("0 images, 1 unreadable", "nothing evaluated"))
def _(d, m):
    (d / "val").mkdir()
    (d / "instances.json").write_text('{"images": [{"id": 1, "file_name": "gone.jpg"}], "annotations": [], '
                                      '"categories": [{"id": 18, "name": "dog"}]}')
    return [*EVALUATE, "--model", model(d, m), "--classes", names(d), "--coco", "instances.json", "--images", "val"]


@case("evaluate: --reference on two undecodable images", status=1, fragments=("0 images, 2 unreadable",))
def _(d, m):
    corrupt(d, "val/a.jpg")
    corrupt(d, "val/b.png")
    return [*EVALUATE, "--model", model(d, m), "--reference", model(d, m, "r.tflite"), "--classes", names(d),
            "--images", "val"]


@case("evaluate: a .data file whose list names only an undecodable image", status=1,
      fragments=("0 images, 1 unreadable",))
def _(d, m):
    corrupt(d, "a.jpg")
    (d / "valid.txt").write_text("a.jpg\n")
    (d / "obj.data").write_text(f"classes = 80\nvalid = valid.txt\nnames = {names(d)}\n")
    return [*EVALUATE, "--model", model(d, m), "--data", "obj.data"]


@case("evaluate: a COCO annotation without bbox", fragments=("instances.json", "annotation 0 (id 7)", "no 'bbox'"))
def _(d, m):
    photo(d, "val/a.jpg")
    (d / "instances.json").write_text('{"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 18, '
                                      '"name": "dog"}], "annotations": [{"id": 7, "image_id": 1, "category_id": 18}]}')
    return [*EVALUATE, "--model", model(d, m), "--classes", names(d), "--coco", "instances.json", "--images", "val"]


@case("evaluate: a COCO annotation for an image_id not in images",
      fragments=("annotation 0 (id 7)", "image_id 5 is not in 'images'"))
def _(d, m):
    photo(d, "val/a.jpg")
    (d / "instances.json").write_text('{"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 18, '
                                      '"name": "dog"}], "annotations": [{"id": 7, "image_id": 5, "category_id": 18, '
                                      '"bbox": [1, 2, 3, 4]}]}')
    return [*EVALUATE, "--model", model(d, m), "--classes", names(d), "--coco", "instances.json", "--images", "val"]


def thin_images(d: Path) -> str:
    """Images too thin for Darknet's letterbox arithmetic: one side rounds to 0 pixels."""
    (d / "thin").mkdir()
    dog = cv2.imread(str(MODEL_DATA / "samples" / "dog.jpg"))
    for name, (width, height) in {"wide.png": (20000, 20), "tall.png": (20, 20000), "row.png": (5000, 1),
                                  "column.png": (1, 5000)}.items():
        cv2.imwrite(str(d / "thin" / name), cv2.resize(dog, (width, height), interpolation=cv2.INTER_AREA))
    return "thin"


@case("infer: images too thin to letterbox (20000x20, 20x20000, 5000x1, 1x5000)", status=0,
      fragments=("4 images, 0 unreadable",))
def _(d, m):
    return infer(d, m, "--image", thin_images(d))


@case("evaluate: --reference on images too thin to letterbox", status=0, fragments=("4 images, agreement",))
def _(d, m):
    return [*EVALUATE, "--model", model(d, m), "--reference", model(d, m, "r.tflite"), "--classes", names(d),
            "--images", thin_images(d)]


@case("fidelity: images too thin to letterbox", status=0, fragments=("on 4 images",))
def _(d, m):
    return ["-m", "utils.fidelity", model(d, m), model(d, m, "r.tflite"), "--images", thin_images(d)]


FULL = ("stdout: cannot write (No space left on device)",)


@case("infer: --image --json --output > /dev/full", stdout="full", fragments=FULL)
def _(d, m):
    return infer(d, m, "--image", photo(d), "--json", "--output", "out/x.jpg")


@case("infer: a directory of images > /dev/full", stdout="full", fragments=FULL)
def _(d, m):
    photo(d, "in/a.jpg")
    photo(d, "in/b.jpg", "person.jpg")
    return infer(d, m, "--image", "in")


@case("evaluate: > /dev/full", stdout="full", fragments=FULL)
def _(d, m):
    return [*EVALUATE, "--model", model(d, m), "--reference", model(d, m, "r.tflite"), "--classes", names(d),
            "--images", photo(d)]


@case("edgetpu_check: > /dev/full", stdout="full", fragments=FULL)
def _(d, m):
    return ["-m", "utils.edgetpu_check", model(d, m)]


@case("fetch_weights: > /dev/full", stdout="full", fragments=FULL)
def _(d, m):
    return ["-m", "utils.fetch_weights", "--dest", weights(d, m)]


@case("infer: -t 0", fragments=("-t must be strictly between 0 and 1 (got 0)",))
def _(d, m):
    return infer(d, m, "--image", photo(d), "-t", "0")


@case("infer: --iou nan", fragments=("--iou must be above 0 and at most 1 (got nan)",))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--iou", "nan")


@case("evaluate: --iou 2, as inference.py refuses it", fragments=("--iou must be above 0 and at most 1 (got 2)",))
def _(d, m):
    return [*EVALUATE, "--model", model(d, m), "--classes", names(d), "--images", photo(d), "--iou", "2"]


@case("infer: a FIFO named beside a readable image", status=1, fragments=("2 images, 1 unreadable",),
      creates=())
def _(d, m):
    os.mkfifo(d / "fifo.jpg")
    return infer(d, m, "--image", "fifo.jpg", photo(d))


@case("fetch_weights: --url with a verified copy already there", status=0,
      fragments=("already fetched and verified; --url is tried only when there is no verified copy",))
def _(d, m):
    return ["-m", "utils.fetch_weights", "--dest", weights(d, m), "--url", "http://127.0.0.1:9/x"]


# ---- found by a hostile pass over the flags added since round one -------------------------------

@case("fetch_weights: --dest names a file of the user's", fragments=("dog.jpg", "is not the weights",
                                                                     "refusing to replace it"))
def _(d, m):
    return ["-m", "utils.fetch_weights", "--dest", photo(d), "--url", "http://127.0.0.1:9/x", "--timeout", "1"]


@case("quant: --debug-layers 0", fragments=("--debug-layers must be at least 1",))
def _(d, m):
    return [*QUANT, keras_model(d, m), "q.tflite", "--debug-layers", "0"]


# ---- #34: crafted metadata, absurd sizes, label files, names -------------------------------------

def model_with_metadata(d: Path, m: Models, payload: bytes, name: str = "crafted.tflite") -> str:
    """The int8 model with its embedded YOLO metadata replaced by ``payload``."""
    from utils.tflite import model as tflite_model
    from utils.yolo.meta import METADATA_NAME
    crafted = tflite_model.load(m.tflite)
    tflite_model.set_metadata(crafted, METADATA_NAME, payload)
    tflite_model.save(crafted, d / name)
    return name


def edited_metadata(d: Path, m: Models, **changes) -> str:
    from utils.tflite import model as tflite_model
    from utils.yolo.meta import METADATA_NAME
    data = json.loads(tflite_model.read_metadata(m.tflite.read_bytes(), METADATA_NAME))
    return model_with_metadata(d, m, json.dumps({**data, **changes}).encode())


_CRAFTED = {
    "extras is a string": (lambda d, m: edited_metadata(d, m, extras="x"), ("extras must be an object",)),
    "output_range of strings": (lambda d, m: edited_metadata(d, m, output_range=["a", "b"]),
                                ("output_range must be null or two numbers",)),
    "nested 100000 deep": (lambda d, m: model_with_metadata(d, m, b"[" * 100000 + b"]" * 100000), ("nested too deeply",)),
    "not UTF-8": (lambda d, m: model_with_metadata(d, m, b'{"classes": "\xff\xfe"}'), ("not UTF-8",)),
    "classes is a string": (lambda d, m: edited_metadata(d, m, classes="80"), ("classes must be a whole number",)),
    "an unknown post-process key": (lambda d, m: edited_metadata(d, m, extras={"detection_outputs": {"nms": 1}}),
                                    ("extras.detection_outputs", "unknown settings ['nms']")),
}
for _what, (_build, _fragments) in _CRAFTED.items():
    case(f"infer: crafted metadata, {_what}", fragments=("crafted.tflite", *_fragments))(
        lambda d, m, b=_build: [*INFER, "--model", b(d, m), "--classes", names(d), "--image", photo(d)])
    case(f"evaluate: crafted metadata, {_what}", fragments=("crafted.tflite", *_fragments))(
        lambda d, m, b=_build: [*EVALUATE, "--model", b(d, m), "--reference", model(d, m), "--classes", names(d),
                                "--images", photo(d)])
    case(f"fidelity report: crafted metadata, {_what}", fragments=("crafted.tflite", *_fragments))(
        lambda d, m, b=_build: ["-m", "utils.fidelity", b(d, m), model(d, m), "--images", photo(d)])


@case("convert: width=height=100000 needs more memory than the machine has",
      fragments=("tiny.cfg line 8: [net]", "100000x100000", "more than this machine's"))
def _(d, m):
    edited_cfg(d, "width=416\nheight=416", "width=100000\nheight=100000")
    return [*CONVERT, "tiny.cfg", weights(d, m), "out.h5"]


def huge_tflite(d: Path, m: Models) -> str:
    from utils.tflite import model as tflite_model
    huge = tflite_model.load(m.tflite)
    graph = huge.subgraphs[0]
    graph.tensors[graph.inputs[0]].shape = np.array([1, 100000, 100000, 3], np.int32)
    tflite_model.save(huge, d / "huge.tflite")
    return "huge.tflite"


@case("infer: a model whose input is 100000x100000", fragments=("huge.tflite", "more than this machine's"))
def _(d, m):
    return [*INFER, "--model", huge_tflite(d, m), "--classes", names(d), "--image", photo(d)]


@case("quant: a Keras model whose input is 100000x100000", fragments=("huge.h5", "more than this machine's"))
def _(d, m):
    import keras
    inputs = keras.Input((100000, 100000, 3), batch_size=1)
    keras.Model(inputs, keras.layers.Conv2D(16, 3, padding="same")(inputs)).save(d / "huge.h5")
    return [*QUANT, "huge.h5", "q.tflite"]


@case("infer: --save-txt into the directory of the ground-truth labels", fragments=("dog.txt", "never replaces"))
def _(d, m):
    photo(d, "set/dog.jpg")
    (d / "set" / "dog.txt").write_text("16 0.5 0.5 0.2 0.2\n")
    return infer(d, m, "--image", "set", "--save-txt", "set")


@case("infer: --output for images on a read-only file system, before any detection",
      fragments=("ro/out", "Read-only file system"), needs="root")
def _(d, m):
    mount(d / "ro", "size=1m,ro")
    return infer(d, m, "--image", photo(d), photo(d, "b.jpg", "person.jpg"), "--output", "ro/out")


@case("infer: a class name holding U+2028 is one name, as Darknet reads it", status=0,
      fragments=("dog.jpg:",))
def _(d, m):
    text = (MODEL_DATA / "coco.names").read_text().replace("person\n", "per\u2028son\n")
    return [*INFER, "--model", model(d, m), "--classes", names(d, text), "--image", photo(d)]


# ---- #33: the live view's address and token, --output as a URL -----------------------------------

HELD: list = []  # sockets a case keeps listening while its command runs


def listening_port() -> int:
    """A port another program (this test) listens on."""
    import socket
    sock = socket.create_server(("127.0.0.1", 0))
    HELD.append(sock)
    return sock.getsockname()[1]


@case("infer: --serve on a port in use", fragments=("--serve", "is in use"))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--serve", f"127.0.0.1:{listening_port()}")


@case("infer: --serve 0.0.0.0 with an empty token", fragments=("0.0.0.0:8080", "needs a token"))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--serve", "0.0.0.0:8080", "--serve-token", "")


@case("infer: --serve not an address", fragments=("--serve", "[HOST:]PORT"))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--serve", "http://x:80")


@case("infer: --serve a port out of range", fragments=("70000", "out of range"))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--serve", "70000")


@case("infer: --serve on an address of another machine", fragments=("192.0.2.7", "not an address of this machine"))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--serve", "192.0.2.7:8080", "--serve-token", "t")


@case("infer: --serve-token without --serve", fragments=("--serve-token", "--serve"))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--serve-token", "t")


@case("infer: --output a stream URL, echoed as given", fragments=("rtsp://127.0.0.1:8554/out", "--serve"),
      absent=("rtsp:/127",))
def _(d, m):
    return infer(d, m, "--video", video(d), "--output", "rtsp://127.0.0.1:8554/out")


@case("infer: --output a URL with a password: masked", fragments=("rtsp://***@cam/out",), absent=("hunter2",))
def _(d, m):
    return infer(d, m, "--video", video(d), "--output", "rtsp://admin:hunter2@cam/out")


@case("infer: --cam of a camera that is not there", fragments=("camera 9: cannot be opened",), absent=("camera camera",))
def _(d, m):
    return infer(d, m, "--cam", "9")


@case("infer: no --classes for a heads model", fragments=("m.tflite", "--classes"))
def _(d, m):
    return [*INFER, "--model", model(d, m), "--image", photo(d)]


# ---- the runner ----------------------------------------------------------------------------------

def mount(path: Path, options: str) -> None:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    MOUNTS.append(path)


MOUNTS: list[Path] = []


def can_mount_and_chattr() -> bool:
    return IS_ROOT and shutil.which("chattr") is not None and shutil.which("mount") is not None


def listing(directory: Path) -> dict[str, str]:
    """Every file and directory under ``directory``: its sha256 (or "dir" / the symlink's target)."""
    found = {}
    for path in sorted(directory.rglob("*")):
        key = str(path.relative_to(directory))
        if path.is_symlink():
            found[key] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            found[key] = "dir"
        elif not path.is_file():
            found[key] = "special"  # a FIFO: reading it would block
        else:
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def run(directory: Path, command: list[str], process: bool = True, timeout: float = 300,
        stdout: str = "") -> subprocess.CompletedProcess:
    """The command from ``directory``: a child process, or with ``process=False`` in this one (the
    same exit status and the same lines the script writes, without the start-up of Python and
    TensorFlow). Each script keeps child-process cases, where file descriptors and signals count."""
    if not process:
        return run_in_process(command, directory)
    script = command[0]
    argv = [sys.executable, *command] if script == "-m" else [sys.executable, str(ROOT / script), *command[1:]]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if stdout == "full":
        with open("/dev/full", "w") as full:
            result = subprocess.run(argv, cwd=directory, stdout=full, stderr=subprocess.PIPE, text=True,
                                    timeout=timeout, env=env)
        result.stdout = ""
        return result
    return subprocess.run(argv, cwd=directory, capture_output=True, text=True, timeout=timeout, env=env)


def record_row(item: Case, result: subprocess.CompletedProcess, line: str) -> None:
    table = os.environ.get("BAD_INPUT_TABLE")
    if table:
        with open(table, "a") as out:
            out.write(f"| {item.name} | {result.returncode} | `{line.replace('|', '/')}` |\n")


# ---- the resize mode (letterbox or stretch) ----------------------------------------------------

@case("convert: --resize squash", fragments=("--resize", "squash", "letterbox", "stretch"))
def _(d, m):
    return [*CONVERT, cfg(d), weights(d, m), "out.h5", "--resize", "squash"]


@case("convert: letter_box=2 in the cfg", fragments=("tiny.cfg line", "letter_box=2", "not 0 or 1"))
def _(d, m):
    return [*CONVERT, edited_cfg(d, "[net]", "[net]\nletter_box=2"), weights(d, m), "out.h5"]


@case("convert: letter_box=yes in the cfg", fragments=("tiny.cfg line", "letter_box=yes", "not an integer"))
def _(d, m):
    return [*CONVERT, edited_cfg(d, "[net]", "[net]\nletter_box=yes"), weights(d, m), "out.h5"]


@case("infer: --resize squash", fragments=("--resize", "squash"))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--resize", "squash")


@case("evaluate: --resize squash", fragments=("--resize", "squash"))
def _(d, m):
    return [*EVALUATE, "--model", model(d, m), "--classes", names(d), "--images", photo(d), "--resize", "squash"]


@case("infer: --resize stretch on a letterbox model: one warning, then detections", status=0,
      fragments=("dog 0.",))
def _(d, m):
    return infer(d, m, "--image", photo(d), "--resize", "stretch")


@case("quant: --dataset obj.data without a train= line", fragments=("obj.data", "no 'train =' line"))
def _(d, m):
    (d / "obj.data").write_text("classes = 80\nvalid = valid.txt\nnames = coco.names\n")
    return [*QUANT, keras_model(d, m), "q.tflite", "--dataset", "obj.data"]


@case("quant: --dataset obj.data whose train= list is missing", fragments=("train.txt", "no such file"))
def _(d, m):
    (d / "obj.data").write_text("classes = 80\ntrain = train.txt\nnames = coco.names\n")
    return [*QUANT, keras_model(d, m), "q.tflite", "--dataset", "obj.data"]


@case("infer: metadata with an unknown resize mode", fragments=("not valid YOLO metadata", "resize 'squash'"))
def _(d, m):
    from utils.tflite import model as tflite_model
    from utils.yolo.meta import METADATA_NAME
    crafted = tflite_model.load(m.tflite)
    raw = json.loads(tflite_model.read_metadata(m.tflite.read_bytes(), METADATA_NAME))
    tflite_model.set_metadata(crafted, METADATA_NAME, json.dumps({**raw, "resize": "squash"}).encode())
    tflite_model.save(crafted, d / "crafted.tflite")
    return [*INFER, "--model", "crafted.tflite", "--classes", names(d), "--image", photo(d)]


@pytest.mark.parametrize("item", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES])
def test_case(item: Case, tmp_path, models):
    if item.needs == "root" and not can_mount_and_chattr():
        pytest.skip("needs root, mount and chattr")
    work = tmp_path / "work"
    work.mkdir()
    try:
        command = item.build(work, models)
        before = listing(work)
        result = run(work, command, item.process, stdout=item.stdout)
        after = listing(work)
    finally:
        for sock in HELD:
            sock.close()
        HELD.clear()
        for path in MOUNTS:
            subprocess.run(["umount", str(path)], check=False)
        MOUNTS.clear()
        if item.needs == "root":
            subprocess.run(["chattr", "-R", "-i", str(work)], capture_output=True)
    assert "Traceback" not in result.stderr, result.stderr
    for secret in item.absent:
        assert secret not in result.stdout + result.stderr, (secret, result.stdout, result.stderr)
    lines = error_lines(result.stderr)
    if item.status == 2:
        line = assert_user_error(result, *item.fragments)
        assert after == before, "a refused command changed or left files"
    else:
        assert result.returncode == item.status, (result.returncode, result.stderr)
        text = result.stdout + result.stderr
        for fragment in item.fragments:
            assert fragment in text, (fragment, text)
        assert {k: v for k, v in after.items() if k in before} == before, "an input changed"
        added = {k for k in after if k not in before and after[k] != "dir"}
        assert added == set(item.creates), added
        said = (result.stdout + result.stderr).splitlines()
        line = next((x for x in said if item.fragments and item.fragments[0] in x), (lines or said or [""])[-1])
    assert not [k for k in after if Path(k).name.startswith(".")], "a temporary file was left"
    record_row(item, result, line)


def test_ctrl_c_during_video_exits_130_with_a_complete_output(tmp_path, models):
    """Ctrl-C: the message on stderr, nothing on stdout but the frames' JSON, exit 130, a playable file."""
    clip = video(tmp_path, "long.avi", frames=400)
    process = subprocess.Popen([sys.executable, str(ROOT / "inference.py"), "--no-display", "--model",
                                model(tmp_path, models), "--classes", names(tmp_path), "--video", clip,
                                "--output", "out.mp4", "--json"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = [process.stdout.readline() for _ in range(5)]
    assert all(line.startswith("{") for line in seen), seen
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert all(line.startswith("{") for line in rest.splitlines())
    frames = len(seen) + len(rest.splitlines())
    capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == frames and 5 <= frames < 400
    assert capture.read()[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco.names", "long.avi", "m.tflite", "out.mp4"]
    record_row(Case("infer: Ctrl-C during --video --output", lambda d, m: []), process,
               f"{stderr.strip().splitlines()[-1]} ({frames} frames written)")


def test_a_written_model_that_does_not_run_replaces_nothing(tmp_path, models):
    """The quantizer's safety net behind --output-range's checks: the written model is invoked in a
    child process before the rename. A head range of +-1e-6 makes XNNPACK refuse the model."""
    from utils.errors import UserError
    from utils.quantize import quantizer as quantize
    from utils.runtime.interpreters import smoke_test
    from utils.tflite import model as tflite_model
    broken = tflite_model.load(models.tflite)
    quantize.fix_output_ranges(broken, (-1e-6, 1e-6))
    dest = tmp_path / "q.tflite"
    dest.write_bytes(b"the user's previous model")
    with pytest.raises(UserError, match="the written model does not run"):
        tflite_model.save(broken, dest, verify=smoke_test)
    assert dest.read_bytes() == b"the user's previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["q.tflite"]


def test_a_video_cut_short_by_an_error_replaces_nothing(tmp_path):
    from utils.media.sinks import VideoSink
    dest = tmp_path / "out.avi"
    dest.write_bytes(b"the user's previous video")
    sink = VideoSink(dest, 5.0)
    sink.write(np.zeros((32, 32, 3), np.uint8))
    sink.close(keep=False)
    assert dest.read_bytes() == b"the user's previous video"
    assert [p.name for p in tmp_path.iterdir()] == ["out.avi"]


# ---- the library keeps the same promise ----------------------------------------------------------

@pytest.mark.parametrize("image, fragment", [
    (None, "got NoneType (cv2.imread returns None"),
    ([[0, 0, 0]], "got list"),
    (np.zeros((48, 64, 3), np.float64), "dtype float64; expected uint8"),
    (np.zeros((48, 64, 3), np.uint16), "dtype uint16"),
    (np.zeros((0, 0, 3), np.uint8), "is empty"),
    (np.zeros((48, 0, 3), np.uint8), "is empty"),
    (np.zeros((48, 64, 2), np.uint8), "shape (48, 64, 2)"),
    (np.zeros((2, 48, 64, 3), np.uint8), "shape (2, 48, 64, 3)"),
])
def test_detector_refuses_what_is_not_an_image(models, image, fragment):
    from utils.detector import Detector
    from utils.errors import UserError
    detector = Detector(models.tflite)
    with pytest.raises(UserError) as refused:
        detector.detect(image)
    assert fragment in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(UserError):
        list(detector.detect_stream([cv2.imread(str(MODEL_DATA / "samples" / "dog.jpg")), image]))


def test_detector_converts_grayscale_and_bgra(models):
    from utils.detector import Detector
    detector = Detector(models.tflite)
    bgr = cv2.imread(str(MODEL_DATA / "samples" / "dog.jpg"))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    as_gray = list(detector.detect(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)))
    assert list(detector.detect(gray)) == as_gray and list(detector.detect(gray[:, :, None])) == as_gray
    assert list(detector.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))) == list(detector.detect(bgr))
    assert list(detector.detect(np.asfortranarray(bgr))) == list(detector.detect(bgr))  # any memory layout


def test_detector_detects_on_images_too_thin_to_letterbox(models):
    """Darknet's arithmetic gives a 0-pixel side: the toolkit letterboxes onto a 1-pixel band instead."""
    from utils.detector import Detector
    detector = Detector(models.tflite)
    dog = cv2.imread(str(MODEL_DATA / "samples" / "dog.jpg"))
    for width, height in ((20000, 20), (20, 20000), (5000, 1), (1, 5000), (1, 1)):
        detections = detector.detect(cv2.resize(dog, (width, height), interpolation=cv2.INTER_AREA))
        assert np.isfinite(detections.boxes).all()


@pytest.mark.parametrize("options, message", [
    ({"threshold": -1}, "threshold must be strictly between 0 and 1 (got -1)"),
    ({"threshold": 0}, "threshold must be strictly between 0 and 1 (got 0)"),
    ({"threshold": float("nan")}, "threshold must be strictly between 0 and 1 (got nan)"),
    ({"iou": 2}, "iou must be above 0 and at most 1 (got 2)"),
    ({"iou": 0}, "iou must be above 0 and at most 1 (got 0)"),
    ({"reconnect": -1}, "reconnect must be 0 or more attempts (got -1)"),
])
def test_detector_and_flags_share_one_validation(models, tmp_path, options, message):
    from utils.detector import Detector
    from utils.errors import UserError
    with pytest.raises(UserError, match=re.escape(message)):
        Detector(models.tflite, **options)
    flag = {"threshold": "-t", "iou": "--iou", "reconnect": "--reconnect"}[next(iter(options))]
    value = f"{next(iter(options.values())):g}"
    result = run(tmp_path, [*INFER, "--model", str(models.tflite), "--classes", str(MODEL_DATA / "coco.names"),
                            "--image", "x.jpg", flag, value], process=False)
    assert_user_error(result, message.replace(next(iter(options)), flag, 1))
