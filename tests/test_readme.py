"""README.md stays true: its two commands are the Makefile's, and its walkthrough runs top to bottom,
as written, in a fresh copy of the repository."""
import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from conftest import ROOT
from utils.testing.figures import image_size

README = ROOT / "README.md"
# The only walkthrough lines that may be skipped: they need Coral's compiler, a camera or an Edge TPU.
NEEDS_HARDWARE = ("edgetpu_compiler", "--cam", "--edge_tpu")


def walkthrough(heading: str = "## Walkthrough") -> list[str]:
    """The commands of a section's first shell block, in order (comments and blank lines dropped)."""
    section = README.read_text().split(heading, 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


DOCS = ROOT / "docs"


def demo_console_block() -> list[str]:
    """The console block after "The last lines `make demo` prints"."""
    section = README.read_text().split("The last lines `make demo` prints", 1)[1]
    return section.split("```text\n", 1)[1].split("```", 1)[0].splitlines()


def numbers_out(line: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "N", line)


def library_example() -> str:
    """The Library section's Python block."""
    section = README.read_text().split("## Library", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_library_example_is_ten_lines_at_most():
    assert len([line for line in library_example().splitlines() if line.strip()]) <= 10


def test_two_commands_are_make_targets():
    commands = re.findall(r"^make (\w+)", README.read_text().split("## Two commands", 1)[1].split("##", 1)[0], re.M)
    assert commands == ["demo", "test"]
    targets = re.findall(r"^(\w[\w-]*):", (ROOT / "Makefile").read_text(), re.M)
    assert {"demo", "test"} <= set(targets)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_walkthrough_skips_only_hardware_lines():
    skipped = [line for line in walkthrough() if any(word in line for word in NEEDS_HARDWARE)]
    assert len(skipped) == 3, skipped  # the compiler, one CPU camera line, one Edge TPU camera line


@pytest.mark.slow
def test_walkthrough_runs_as_written(tmp_path, weights):
    """A copy of the files a commit would hold (a fresh clone), then every line in one shell."""
    clone = tmp_path / "clone"
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    lines = [line for line in walkthrough() if not any(word in line for word in NEEDS_HARDWARE)]
    script = "set -euo pipefail\n" + "\n".join(f"echo '+ {line[:60]}' >&2\n{line}" for line in lines)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)
    result = subprocess.run(["bash", "-c", script], cwd=clone, capture_output=True, text=True, env=env, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    out = clone / "out"
    for name in ("yolov3-tiny-cpu.tflite", "yolov3-tiny-tpu.tflite", "annotated/dog.jpg", "annotated/person.jpg",
                 "clip_boxes.mp4", "clip.jsonl"):
        assert (out / name).is_file(), name
    assert "dog" in result.stdout and "Number of operations that will run on CPU: 0" in result.stdout
    assert "mAP@0.5" in result.stdout and "yolov3-tiny-tpu.tflite (litert, xnnpack kernels)" in result.stdout
    assert int(cv2.VideoCapture(str(out / "clip_boxes.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    assert len((out / "clip.jsonl").read_text().splitlines()) == 24
    assert "Traceback" not in result.stderr
    # README's console block of make demo's last lines is what the same quantization prints, numbers aside.
    shown = [numbers_out(line) for line in demo_console_block()]
    printed = [numbers_out(line) for line in result.stdout.splitlines()]
    assert any(printed[i:i + len(shown)] == shown for i in range(len(printed))), "\n".join(demo_console_block())
    # README's pictures: the walkthrough's own outputs (TINYYOLO_UPDATE_DOCS=1 copies them to docs/).
    for made, shown_as in ((out / "annotated" / "dog.jpg", DOCS / "dog_detections.jpg"),
                           (out / "plots" / "pr_all_models.png", DOCS / "pr-curve.png")):
        if os.environ.get("TINYYOLO_UPDATE_DOCS"):
            shutil.copy(made, shown_as)
        assert image_size(shown_as) == image_size(made), (shown_as, made)
        assert f"]({shown_as.relative_to(ROOT)})" in README.read_text()
    python = str(clone / ".venv" / "bin" / "python")
    example = subprocess.run([python, "-c", library_example()], cwd=clone, capture_output=True, text=True, env=env,
                             timeout=300)
    assert example.returncode == 0 and not example.stderr, example.stderr  # LiteRT's INFO line included
    labels = [line.split()[0] for line in example.stdout.splitlines()]
    assert {"dog", "bicycle", "car"} <= set(labels), example.stdout
    # From another directory, as the Library section says: the repository on PYTHONPATH, absolute paths.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = library_example().replace('"out/', f'"{clone}/out/').replace('"model_data/', f'"{clone}/model_data/')
    (elsewhere / "detect.py").write_text(code)
    outside = subprocess.run([python, "detect.py"], cwd=elsewhere, capture_output=True, text=True,
                             env={**env, "PYTHONPATH": str(clone)}, timeout=300)
    assert outside.returncode == 0 and outside.stdout == example.stdout, outside.stderr
    assert "PYTHONPATH=" in README.read_text().split("## Library", 1)[1].split("##", 1)[0]


def test_help_examples_name_files_that_exist_or_the_walkthrough_makes():
    """Each script's --help examples, pasted after the walkthrough, find their files (``YOUR…`` names
    stand for the user's own data)."""
    made = set(re.findall(r"\bout/[\w./-]+", "\n".join(walkthrough())))
    for script in ("convert.py", "keras_to_tflite_quant.py", "inference.py", "evaluate.py"):
        docstring = ast.get_docstring(ast.parse((ROOT / script).read_text()))
        commands = re.findall(r"^ +(python .*?[^\\])$", docstring.replace("\\\n", " "), re.M)
        assert commands, script
        for token in " ".join(commands).split()[1:]:
            token = token.strip('"')
            if token.startswith(("--", "-m", "$(", "YOUR", "utils.")) or not ("/" in token or "." in token):
                continue
            if re.fullmatch(r"[\w.\[\]:]*:\d+", token):  # an address, such as --serve 0.0.0.0:8080
                continue
            if token.startswith("out/"):
                assert token in made, (script, token)
            else:
                assert (ROOT / token).exists(), (script, token)


@pytest.mark.slow
def test_your_own_model_section_runs_as_written(tmp_path, weights, model_factory):
    """README's "Your own model, end to end" on a stand-in project in Darknet's layout: the real weights
    and cfg under a custom project's names, two labelled training images and two validation images."""
    from utils.yolo.detector import Detector

    project = tmp_path / "project"
    images, labels = project / "data" / "obj" / "images", project / "data" / "obj" / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    shutil.copy(ROOT / "model_data" / "yolov3-tiny.cfg", project / "yolo-obj.cfg")
    shutil.copy(weights, project / "yolo-obj_best.weights")
    shutil.copy(ROOT / "model_data" / "coco.names", project / "obj.names")
    with Detector(model_factory("tiny_keep_float", quant_args=["--float"]), ROOT / "model_data" / "coco.names") as float_model:
        for photo in sorted((ROOT / "model_data" / "samples").glob("*.jpg")):
            for name, image in ((photo.stem, cv2.imread(str(photo))),
                                (f"{photo.stem}-flipped", cv2.flip(cv2.imread(str(photo)), 1))):
                cv2.imwrite(str(images / f"{name}.jpg"), image)
                (labels / f"{name}.txt").write_text(float_model.detect(image).to_labels(image.shape[1], image.shape[0]))
    (project / "data" / "train.txt").write_text("data/obj/images/dog.jpg\ndata/obj/images/person.jpg\n")
    (project / "data" / "valid.txt").write_text("data/obj/images/dog-flipped.jpg\ndata/obj/images/person-flipped.jpg\n")
    (project / "obj.data").write_text("classes = 80\ntrain = data/train.txt\nvalid = data/valid.txt\nnames = obj.names\n")
    shutil.copy(images / "dog-flipped.jpg", project / "data" / "test.jpg")
    lines = [line for line in walkthrough("## Your own model, end to end")
             if not any(word in line for word in NEEDS_HARDWARE)]
    assert len(lines) == 7, lines
    script = "set -euo pipefail\n" + "\n".join(lines)
    env = {**os.environ, "REPO": str(ROOT), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", script], cwd=project, capture_output=True, text=True, env=env, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for name in ("obj-cpu.tflite", "obj-tpu.tflite", "obj-plots/pr_all_models.png"):
        assert (project / "out" / name).is_file(), name
    assert "data/test.jpg: " in result.stdout and "dog" in result.stdout.split("data/test.jpg: ")[1].splitlines()[0]
    assert result.stdout.count("mAP@0.5") == 2


def test_make_demo_makes_only_what_changed(tmp_path):
    """make demo's steps are files: with every one newer than its inputs nothing runs; a newer cfg
    makes both conversions, both quantizations and the detection again."""
    out, cfg = tmp_path / "out", tmp_path / "tiny.cfg"
    out.mkdir()
    shutil.copy(ROOT / "model_data" / "yolov3-tiny.cfg", cfg)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in (".installed", "yolov3-tiny-cpu.h5", "yolov3-tiny-tpu.h5", "yolov3-tiny-cpu.tflite",
                 "yolov3-tiny-tpu.tflite", "dog_detections.jpg"):
        ((venv if name == ".installed" else out) / name).touch()
        os.utime((venv if name == ".installed" else out) / name, (2e9, 2e9))
    make = ["make", "-C", str(ROOT), f"OUT={out}", f"CFG={cfg}", f"VENV={venv}"]
    assert subprocess.run([*make, "-q", "demo"]).returncode == 0  # up to date: nothing to do
    os.utime(cfg, (2.1e9, 2.1e9))
    planned = subprocess.run([*make, "-n", "demo"], capture_output=True, text=True, check=True).stdout
    steps = [line.split()[1] for line in planned.splitlines() if line.startswith(str(venv))]
    assert sorted(steps) == sorted(["convert.py"] * 2 + ["keras_to_tflite_quant.py"] * 2 + ["inference.py"]), planned
