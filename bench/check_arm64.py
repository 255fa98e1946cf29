#!/usr/bin/env python3
"""int8 inference as a Raspberry Pi OS 64-bit user gets it, emulated: agreement with Darknet, value
differences from this machine, and why the kernel sets differ.

    sudo python bench/check_arm64.py [--cpu cortex-a72|cortex-a76] [--root DIR] [--fresh]
        [--methods mse minmax auto mse+bias ...]

(or ``make check-arm64``). Needs root and Debian's apt on an x86-64 Linux host: it installs
qemu-user-static, binfmt-support, debootstrap, darknet and opencv-doc, builds a Debian Bookworm
arm64 root (what Raspberry Pi OS Bookworm 64-bit is built on: Python 3.11, glibc 2.36) and, inside
it, installs requirements-infer.txt and requirements-tflite-runtime.txt with pip as a Pi user would.

The int8 Tiny YOLOv3 (leaky kept, for the CPU; PReLU, the Edge TPU's model) is calibrated on
OpenCV's sample photos with each ``--methods`` entry (default: the quantizer's default; the syntax
is bench/defaults.py's) and scored on images it never saw: Darknet's photos and the clip's frames.
It prints:

1. agreement mAP@0.5 and @[.5:.95] with Darknet's own detections (libdarknet, the cfg's resize),
   per model and kernel set, on this machine and on arm64 side by side, with the model's ±1-step
   sensitivity (utils/quantize/sensitivity.py);
2. the share of int8 values that differ between the machines (input tensors, heads);
3. the rounding each kernel set uses for each rescaling op on each machine, found from its own
   intermediate tensors (utils/quantize/kernel_rounding.py): kernel sets with the same schemes
   compute the same values, so the table predicts which runs will disagree.

About 20 minutes with the root kept (building it adds about 5), mostly inference under emulation
(about 2.5 s per image per kernel set; the reference kernels only run on the photos, for table 2).
Every extra method adds about 5 minutes (fine-tuning more, to build it).

Two emulation pitfalls are handled: qemu passes the host's x86 /proc/cpuinfo through, on which
LiteRT crashes, so a Pi's is mounted over it; and qemu's default CPU advertises SVE2/SME, with which
XNNPACK's int8 results are wrong, so QEMU_CPU names the Pi's core (Pi 4: cortex-a72, Pi 5: cortex-a76).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from defaults import MODELS, quantize  # noqa: E402  (bench/defaults.py: the same methods, the same syntax)

from utils.console import quiet_libraries  # noqa: E402
from utils.darknet.fetch_weights import fetch_weights  # noqa: E402
from utils.evaluation.metrics import agreement  # noqa: E402
from utils.machine import cpu_description  # noqa: E402
from utils.media.images import read_image  # noqa: E402
from utils.quantize import kernel_rounding, ranges  # noqa: E402
from utils.quantize.auto import AUTO  # noqa: E402
from utils.quantize.sensitivity import MOVED_SHARE, step_sensitivity  # noqa: E402
from utils.testing import darknet_reference  # noqa: E402
from utils.testing.image_sets import clip_frames, opencv_photos  # noqa: E402
from utils.yolo.detector import Detector  # noqa: E402
from utils.yolo.types import Detections  # noqa: E402

MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("qemu-user-static", "binfmt-support", "debootstrap", "darknet", "opencv-doc")
HOST_TOOLS = ("qemu-aarch64-static", "debootstrap", "update-binfmts", "darknet")


class Run:
    """One way to run the model: runtime, kernels, the venv it lives in, and whether users run it
    (scored for fidelity on every image) or it is only checked value for value on the photos."""

    def __init__(self, label: str, runtime: str, kernels: str, venv: str, scored: bool):
        self.label, self.runtime, self.kernels, self.venv, self.scored = label, runtime, kernels, venv, scored

    @property
    def flags(self) -> list[str]:
        return ["--runtime", self.runtime, "--kernels", self.kernels]


RUNS = (Run("xnnpack", "litert", "xnnpack", "venv-infer", True), Run("builtin", "litert", "builtin", "venv-infer", True),
        Run("tflite_runtime", "tflite_runtime", "builtin", "venv-tflite-runtime", True),
        Run("reference", "litert", "reference", "venv-infer", False))
HOST_VENVS = {"venv-infer": ROOT / ".venv", "venv-tflite-runtime": ROOT / ".venv-tflite-runtime"}
PI = {  # what /proc/cpuinfo says on a Pi 4 and a Pi 5 (64-bit kernel), one core of four
    "cortex-a72": ("fp asimd evtstrm crc32 cpuid", "0x0", "0xd08", "3", "Raspberry Pi 4 Model B Rev 1.4"),
    "cortex-a76": ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
                   "dcpop asimddp", "0x4", "0xd0b", "1", "Raspberry Pi 5 Model B Rev 1.0"),
}
APP = Path("/opt/tinyyolo")  # the repository's copy inside the root


class Failed(Exception):
    """A step that cannot go on: its one-line reason."""


def pi_cpuinfo(cpu: str) -> str:
    features, variant, part, revision, model = PI[cpu]
    cores = "".join(f"processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
                    f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n\n"
                    for n in range(4))
    return f"{cores}Revision\t: c03114\nModel\t\t: {model}\n"


def step(message: str) -> None:
    print(message, flush=True)


def run(*command, **options) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], check=True, **options)


def stderr_tail(error: subprocess.CalledProcessError) -> str:
    lines = (error.stderr or "").strip().splitlines() if isinstance(error.stderr, str) else []
    return f": {lines[-1]}" if lines else ""


def prepare_host() -> None:
    """The host's packages, and qemu registered for arm64 binaries."""
    if not all(shutil.which(tool) for tool in HOST_TOOLS) or not opencv_photos():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            run("apt-get", "update", "-qq", env=env, capture_output=True, text=True)
            run("apt-get", "install", "-y", "-qq", *PACKAGES, env=env, capture_output=True, text=True)
        except subprocess.CalledProcessError as error:
            raise Failed(f"apt-get could not install {' '.join(PACKAGES)}{stderr_tail(error)}") from None
    if not Path("/proc/sys/fs/binfmt_misc/register").exists():
        run("mount", "binfmt_misc", "-t", "binfmt_misc", "/proc/sys/fs/binfmt_misc")
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        run("update-binfmts", "--enable", "qemu-aarch64")


def reachable(url: str) -> str | None:
    """None when ``url`` answers, else why not."""
    try:
        urllib.request.urlopen(url, timeout=10).close()
        return None
    except OSError as error:
        return str(getattr(error, "reason", error))


class Root:
    """A Debian Bookworm arm64 root, entered through a private mount namespace (proc, a Pi's
    cpuinfo over it, /dev), so that nothing stays mounted when a command ends."""

    def __init__(self, path: Path, cpu: str):
        self.path, self.cpu = path, cpu
        self.partial = path.with_name(path.name + ".partial")

    def problem(self, fresh: bool = False) -> str | None:
        """Why the directory at ``path`` is not a usable root (None: it is, or it does not exist);
        ``fresh``: whether it may be removed and built again (only if it is a Debian root)."""
        if not self.path.exists():
            return None
        if not (self.path / "etc" / "debian_version").is_file():
            return f"--root {self.path} exists and is not a Debian root (no etc/debian_version); choose another --root"
        if not fresh and not (self.path / "usr" / "bin" / "python3").exists():
            return f"the arm64 root {self.path} is broken (no usr/bin/python3); run again with --fresh to rebuild it"
        return None

    def build(self) -> float:
        """debootstrap into ``path``.partial, renamed when complete: an interrupted build is removed
        and the next run starts it again."""
        start = time.perf_counter()
        shutil.rmtree(self.partial, ignore_errors=True)
        try:
            run("debootstrap", "--arch=arm64", "--variant=minbase", "--include=python3,python3-venv,python3-pip,"
                "ca-certificates", "bookworm", self.partial, MIRROR, capture_output=True, text=True)
        except subprocess.CalledProcessError as error:
            raise Failed(f"debootstrap of the arm64 root failed{stderr_tail(error)}") from None
        finally:
            if not (self.partial / "usr" / "bin" / "python3").exists():
                shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.rename(self.path)
        return time.perf_counter() - start

    def __call__(self, *command: str, capture: bool = False) -> subprocess.CompletedProcess:
        cpuinfo = self.path / "etc" / "pi-cpuinfo"
        cpuinfo.write_text(pi_cpuinfo(self.cpu))
        shutil.copy("/etc/resolv.conf", self.path / "etc" / "resolv.conf")
        # The host's trust store, so that pip works behind a proxy whose CA only the host trusts.
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", self.path / "etc" / "ssl" / "host-ca-certificates.crt")
        script = ('mount -t proc proc "$1/proc" && mount --bind "$1/etc/pi-cpuinfo" "$1/proc/cpuinfo" && '
                  'mount --bind /dev "$1/dev" && shift && exec chroot "$@"')
        env = {"QEMU_CPU": self.cpu, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
               "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1",
               "PIP_CERT": "/etc/ssl/host-ca-certificates.crt"}
        return run("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", self.path, self.path,
                   *command, env=env, capture_output=capture, text=True)


def copy_app(root: Path, models: list[Path], images: list[Path]) -> None:
    target = root / APP.relative_to("/")
    shutil.rmtree(target, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("utils", "bench", "model_data"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    for path in [*ROOT.glob("*.py"), *ROOT.glob("requirements-*.txt")]:
        shutil.copy(path, target / path.name)
    for directory, paths in (("out", models), ("images", images)):
        (target / directory).mkdir()
        for path in paths:
            shutil.copy(path, target / directory / path.name)


def pip_install(root: Root, venv: str, requirements: str) -> float:
    """A venv inside the root with ``requirements``; removed again if pip fails, so the next run retries."""
    start = time.perf_counter()
    try:
        root("python3", "-m", "venv", f"/opt/{venv}")
        root(f"/opt/{venv}/bin/pip", "install", "--quiet", "--only-binary", ":all:", "-r", f"{APP}/{requirements}",
             capture=True)
    except subprocess.CalledProcessError as error:
        shutil.rmtree(root.path / "opt" / venv, ignore_errors=True)
        raise Failed(f"pip install -r {requirements} in the arm64 root failed{stderr_tail(error)}") from None
    (root.path / "opt" / venv / ".installed").touch()
    return time.perf_counter() - start


def build_models(work: Path, methods: list[str], calibration: list[Path]) -> dict[tuple[str, str], Path]:
    """{(method, model): int8 Tiny YOLOv3}, leaky kept and PReLU, calibrated on ``calibration``."""
    weights, python = fetch_weights(log=lambda message: None), HOST_VENVS["venv-infer"] / "bin" / "python"
    models = {}
    for leaky in MODELS:
        h5 = work / f"yolov3-tiny-{leaky}.h5"
        run(python, "convert.py", "model_data/yolov3-tiny.cfg", weights, h5, "--leaky", leaky, cwd=ROOT,
            stdout=subprocess.DEVNULL)
        for number, method in enumerate(methods):
            models[method, leaky] = work / f"yolov3-tiny-{leaky}-{number}.tflite"
            quantize(h5, models[method, leaky], calibration, method, 100)
            kernel_rounding.with_all_outputs(models[method, leaky], all_outputs(models[method, leaky]))
    return models


def all_outputs(model: Path) -> Path:
    return model.with_name(model.stem + "-all.tflite")


def darknet_detections(images: list[np.ndarray], resize: str) -> list[Detections]:
    """Darknet's own detections at 0.25, the image resized as the model resizes it (``resize``: the
    converter reads it from the cfg and the weights; letterbox for these 2018 weights)."""
    darknet = darknet_reference.Darknet(ROOT / "model_data" / "yolov3-tiny.cfg", fetch_weights(log=lambda m: None))
    found = []
    for image in images:
        rows = darknet.detect(image, 80, resize=resize)
        found.append(Detections(np.array([r[2] for r in rows], np.float32).reshape(-1, 4),
                                np.array([r[1] for r in rows], np.float32), np.array([r[0] for r in rows], np.int64)))
    return found


def detections(npz, count: int) -> list[Detections]:
    return [Detections(npz[f"{n}/boxes"], npz[f"{n}/scores"], npz[f"{n}/classes"]) for n in range(count)]


def dump_both(root: Root, model: Path, run_: Run, images: list[Path], photos: int, work: Path, name: str,
              with_all: bool) -> tuple[Path, Path, Path | None]:
    """(host npz, arm64 npz, arm64 npz of the first ``photos`` from the host's input tensors): the last,
    for the value table, only ``with_all`` (every tensor of the first image too), None when the inputs agree."""
    python, arm_python = HOST_VENVS[run_.venv] / "bin" / "python", f"/opt/{run_.venv}/bin/python"
    extra_host = ["--all-tensors", all_outputs(model)] if with_all else []
    extra_arm = ["--all-tensors", APP / "out" / all_outputs(model).name] if with_all else []
    arm_images, arm_model = [APP / "images" / p.name for p in images], APP / "out" / model.name
    host, arm = work / f"host-{name}.npz", work / f"arm-{name}.npz"
    run(python, ROOT / "bench" / "tensors_dump.py", model, host, *images, *run_.flags, *extra_host)
    root(arm_python, APP / "bench" / "tensors_dump.py", arm_model, f"/tmp/{arm.name}", *arm_images, *run_.flags, *extra_arm)
    shutil.move(root.path / "tmp" / arm.name, arm)
    if not with_all or differences(host, arm, "input")[1] == 0:
        return host, arm, None
    same = work / f"same-{name}.npz"
    shutil.copy(host, root.path / "tmp" / host.name)
    root(arm_python, APP / "bench" / "tensors_dump.py", arm_model, f"/tmp/{same.name}", *arm_images[:photos],
         *run_.flags, "--inputs", f"/tmp/{host.name}")
    shutil.move(root.path / "tmp" / same.name, same)
    return host, arm, same


def differences(a_path: Path, b_path: Path, kind: str) -> tuple[float, int]:
    """(share of the ``kind`` tensors' values ("input" or "head") that differ, largest difference in 8-bit steps)."""
    a, b = np.load(a_path), np.load(b_path)
    keys = [k for k in b.files if k.split("/")[1].startswith(kind) and not k.startswith("all/")]
    diff = np.concatenate([np.abs(a[k].astype(np.int32) - b[k].astype(np.int32)).ravel() for k in keys])
    return float((diff > 0).mean()), int(diff.max())


def cell(share: float, steps: int) -> str:
    return "identical" if steps == 0 else f"{share:.2%}, {steps}" if share >= 0.001 else f"{share:.5%}, {steps}"


def schemes_of(npz_path: Path, model: Path) -> tuple[dict[str, str], bool]:
    """(each rescaling op's rounding on the machine that wrote ``npz_path``, whether numpy rounding
    so reproduces that machine's heads bit for bit)."""
    npz = np.load(npz_path)
    tensors = {k[4:]: npz[k] for k in npz.files if k.startswith("all/")}
    schemes = kernel_rounding.by_op(kernel_rounding.explain(model, tensors))
    return schemes, kernel_rounding.reproduces(model, tensors, schemes)


def sensitivity(model: Path, host_npz: Path, images: list[Path], schemes: dict[str, str]) -> str:
    detector = Detector(model)
    npz = np.load(host_npz)
    boxes = [detector.adapters[0].prepare(read_image(p))[1] for p in images]
    changed, total = step_sensitivity(model, [npz[f"{n}/input"] for n in range(len(images))], boxes,
                                      detector.meta, schemes)
    return f"{changed:.1%} of {total}"


def method_problem(method: str) -> str | None:
    """Why ``method`` (bench/defaults.py's syntax: METHOD[+bias|+finetune][@N]) is not one, or None."""
    base, _, count = method.partition("@")
    base, _, rounding = base.partition("+")
    if rounding not in ("", "bias", "finetune"):
        return f"--methods {method}: the rounding step is +bias or +finetune"
    if count and not (count.isdigit() and int(count) > 0):
        return f"--methods {method}: @N takes a number of samples"
    if base == AUTO:
        return None
    try:
        ranges.parse_method(base)
    except ValueError as error:
        return f"--methods: {error}"
    return None


def preflight(args) -> str | None:
    """Why this machine or these arguments cannot run the check (None: they can)."""
    problems = [p for p in map(method_problem, args.methods) if p]
    if problems:
        return problems[0]
    if os.geteuid() != 0 or platform.machine() != "x86_64" or not shutil.which("apt-get"):
        return "needs root on an x86-64 Debian or Ubuntu host (apt-get, mount, chroot): sudo make check-arm64"
    missing = [str(v) for v in HOST_VENVS.values() if not (v / "bin" / "python").exists()]
    if missing:
        return (f"the host's venvs are missing ({', '.join(missing)}): make .venv/.installed "
                ".venv-tflite-runtime/.installed")
    return Root(args.root, args.cpu).problem(args.fresh)


def measure(args, root: Root, work: Path) -> None:
    photos, frames = darknet_reference.reference_photos(), clip_frames(work, every=2)
    if args.tiny:
        photos, frames = photos[:1], frames[:1]
    calibration, images = opencv_photos(), photos + frames
    photos = len(photos)
    started = time.perf_counter()
    models = build_models(work, args.methods, calibration)
    step(f"{len(models)} int8 models, calibrated on {len(calibration)} OpenCV photos: {time.perf_counter() - started:.0f} s")
    copy_app(args.root, [p for m in models.values() for p in (m, all_outputs(m))], images)
    for venv, requirements in (("venv-infer", "requirements-infer.txt"),
                               ("venv-tflite-runtime", "requirements-tflite-runtime.txt")):
        if not (args.root / "opt" / venv / ".installed").exists():
            step(f"pip install -r {requirements} (emulated): {pip_install(root, venv, requirements):.0f} s")
        versions = root(f"/opt/{venv}/bin/python", "-m", "pip", "list", "--format=freeze", capture=True).stdout
        step(f"  {venv}: {', '.join(line for line in versions.split() if not line.startswith(('pip=', 'setuptools=')))}")
    step(f"scored on {len(images)} images: {photos} photos ({', '.join(p.name for p in images[:photos])}) and "
         f"{len(images) - photos} frames of model_data/samples/clip.mp4")
    resize = Detector(next(iter(models.values()))).meta.resize
    decoded = [read_image(p) for p in images]
    reference = darknet_detections(decoded, resize)
    sizes = [(image.shape[1], image.shape[0]) for image in decoded]
    fidelity, values, schemes = [], [], {}
    for (method, leaky), model in models.items():
        default = method == args.methods[0]
        for run_ in RUNS:
            if not default and (not run_.scored or run_.runtime == "tflite_runtime"):
                continue  # the other methods: LiteRT's two kernel sets
            started = time.perf_counter()
            scored = images if run_.scored else images[:photos]
            host, arm, same = dump_both(root, model, run_, scored, photos, work, f"{leaky}-{method}-{run_.label}", default)
            if default:
                values.append((leaky, run_.label, host, arm, same or arm))
                schemes[leaky, run_.label] = (schemes_of(host, model), schemes_of(arm, model))
            if run_.scored:
                host_score = agreement(reference, detections(np.load(host), len(images)), sizes)
                arm_score = agreement(reference, detections(np.load(arm), len(images)), sizes)
                fidelity.append((method, leaky, run_.label, host_score, arm_score))
            step(f"  {method} / {leaky} / {run_.label}: {time.perf_counter() - started:.0f} s")
    sensitivities = {}
    for (method, leaky), model in models.items():
        host = work / f"host-{leaky}-{method}-xnnpack.npz"
        sensitivities[method, leaky] = sensitivity(model, host, images[:photos], schemes[leaky, "xnnpack"][0][0])
    report(args, resize, fidelity, values, schemes, sensitivities)


def report(args, resize, fidelity, values, schemes, sensitivities) -> None:
    print(f"\n1. Agreement with Darknet's detections (libdarknet, {resize}, at 0.25; mAP@0.5 / mAP@[.5:.95]); "
          f"±1 step: detections at 0.25 that "
          f"change when {MOVED_SHARE:.0%} of every rescaling op's values move one step (numpy, XNNPACK's rounding)")
    print(f"{'method':18} {'model':6} {'kernels':15} {'x86-64':>16} {'arm64 (' + args.cpu + ')':>24} {'±1 step':>14}")
    for method, leaky, label, host, arm in fidelity:
        print(f"{method:18} {leaky:6} {label:15} {host[0]:7.4f} / {host[1]:.4f} {arm[0]:15.4f} / {arm[1]:.4f} "
              f"{sensitivities[method, leaky]:>14}")
    print("\n2. Values: the share of int8 values that differ between arm64 and this machine, and the largest "
          "difference in steps\n" f"{'model':6} {'kernels':15} {'input tensors':>16} {'heads, same input':>18} "
          f"{'heads, own input':>17} {'detections':>11}")
    for leaky, label, host, arm, same in values:
        a, b = np.load(host), np.load(arm)
        same_detections = all(np.array_equal(a[k], b[k]) for k in a.files if k.split("/")[1] in ("boxes", "classes", "scores"))
        print(f"{leaky:6} {label:15} {cell(*differences(host, arm, 'input')):>16} {cell(*differences(host, same, 'head')):>18} "
              f"{cell(*differences(host, arm, 'head')):>17} {'identical' if same_detections else 'differ':>11}")
    print("\n3. Rounding of each rescaling op, found from each machine's own intermediate tensors (first photo); "
          "the same schemes give the same values")
    print(f"{'model':6} {'kernels':15} {'x86-64':>46} {'arm64':>46}")
    for (leaky, label), found in schemes.items():
        shown = [", ".join(f"{op} {scheme}" for op, scheme in ops.items()) + (" ✓" if exact else " ✗")
                 for ops, exact in found]
        print(f"{leaky:6} {label:15} {shown[0]:>46} {shown[1]:>46}")
    print("(schemes: double = gemmlowp's two roundings, ties away from zero, TFLite's reference; double-up = the "
          "same, ties up, TFLite's built-in CONV_2D on x86; single = one rounding; fp32 = float32 multiply, ties to even, XNNPACK's; "
          "q8 = XNNPACK's LEAKY_RELU with 8-bit multipliers; a=b: both reproduce every value. ✓: numpy rounding so "
          "(utils/quantize/numpy_kernels.py) computes that machine's heads bit for bit, ✗: it does not)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", choices=sorted(PI), default="cortex-a72", help="the Pi's core (default: Pi 4)")
    parser.add_argument("--root", type=Path, default=Path("/var/tmp/tinyyolo-arm64"), help="where the root is kept")
    parser.add_argument("--fresh", action="store_true", help="build the root and its venvs again")
    parser.add_argument("--methods", nargs="+", default=["mse"],
                        help="calibration methods to score, bench/defaults.py's syntax (default: mse, the quantizer's)")
    parser.add_argument("--tiny", action="store_true", help="one photo and one frame: a quick check of the script")
    args = parser.parse_args()
    quiet_libraries(False)
    # A supervisor's SIGTERM unwinds like Ctrl-C: the work directory and a half-built root are removed.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(143))
    problem = preflight(args)
    if problem:
        print(f"check_arm64.py: error: {problem}", file=sys.stderr)
        return 2
    step(f"Host: {cpu_description()}, Python "
         f"{platform.python_version()}; emulated: Debian Bookworm arm64, QEMU_CPU={args.cpu}, {time.strftime('%Y-%m-%d')}")
    root = Root(args.root, args.cpu)
    if args.fresh or not args.root.exists():  # before anything changes on this machine
        why = reachable(MIRROR)
        if why:
            raise Failed(f"cannot reach {MIRROR} ({why}): building the arm64 root needs the network once")
    prepare_host()
    if args.fresh:
        shutil.rmtree(args.root, ignore_errors=True)
    if not args.root.exists():
        step(f"debootstrap bookworm arm64 (emulated): {root.build():.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        measure(args, root, Path(tmp))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as failure:
        print(f"check_arm64.py: error: {failure}", file=sys.stderr)
        sys.exit(2)
    except subprocess.CalledProcessError as error:
        print(f"check_arm64.py: {' '.join(map(str, error.cmd[-6:]))} failed with status {error.returncode}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # a root half built is removed by Root.build; the work directory by its context
        print("check_arm64.py: interrupted", file=sys.stderr)
        sys.exit(130)
