#!/usr/bin/env python3
"""Inference as a Raspberry Pi OS 64-bit user gets it, emulated, compared value for value with this machine.

    sudo python bench/check_arm64.py [--cpu cortex-a72|cortex-a76] [--root DIR] [--fresh]

(or ``make check-arm64``). Needs root and Debian's apt on an x86-64 Linux host: it installs
qemu-user-static, binfmt-support and debootstrap, builds a Debian Bookworm arm64 root (what Raspberry
Pi OS Bookworm 64-bit is built on: Python 3.11, glibc 2.36) and, inside it, installs
requirements-infer.txt and requirements-tflite-runtime.txt with pip as a Pi user would. Then it runs
the int8 Tiny YOLOv3 (leaky kept, and PReLU) on the photos with each kernel set and with
tflite_runtime, on both machines, and compares the input tensors, the raw int8 heads and
inference.py's JSON. Too slow for ``make test``: about 13 minutes with the root kept (building it adds about 4),
mostly the reference kernels under emulation.

Two emulation pitfalls are handled: qemu passes the host's x86 /proc/cpuinfo through, on which
LiteRT crashes, so a Pi's is mounted over it; and qemu's default CPU advertises SVE2/SME, with which
XNNPACK's int8 results are wrong, so QEMU_CPU names the Pi's core (Pi 4: cortex-a72, Pi 5: cortex-a76).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.darknet.fetch_weights import fetch_weights  # noqa: E402
from utils.machine import cpu_description  # noqa: E402
from utils.testing.darknet_reference import reference_photos  # noqa: E402

MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("qemu-user-static", "binfmt-support", "debootstrap")
# (label, runtime, kernels, venv inside the root and on this machine)
RUNS = (("xnnpack", "litert", "xnnpack", "venv-infer"), ("builtin", "litert", "builtin", "venv-infer"),
        ("reference", "litert", "reference", "venv-infer"),
        ("tflite_runtime", "tflite_runtime", "builtin", "venv-tflite-runtime"))
HOST_VENVS = {"venv-infer": ROOT / ".venv", "venv-tflite-runtime": ROOT / ".venv-tflite-runtime"}
PI = {  # what /proc/cpuinfo says on a Pi 4 and a Pi 5 (64-bit kernel), one core of four
    "cortex-a72": ("fp asimd evtstrm crc32 cpuid", "0x0", "0xd08", "3", "Raspberry Pi 4 Model B Rev 1.4"),
    "cortex-a76": ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
                   "dcpop asimddp", "0x4", "0xd0b", "1", "Raspberry Pi 5 Model B Rev 1.0"),
}
APP = Path("/opt/tinyyolo")  # the repository's copy inside the root


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


def prepare_host() -> None:
    """qemu-user-static, binfmt-support and debootstrap, and qemu registered for arm64 binaries."""
    if not all(shutil.which(tool) for tool in ("qemu-aarch64-static", "debootstrap", "update-binfmts")):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run("apt-get", "update", "-qq", env=env)
        run("apt-get", "install", "-y", "-qq", *PACKAGES, env=env, stdout=subprocess.DEVNULL)
    if not Path("/proc/sys/fs/binfmt_misc/register").exists():
        run("mount", "binfmt_misc", "-t", "binfmt_misc", "/proc/sys/fs/binfmt_misc")
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        run("update-binfmts", "--enable", "qemu-aarch64")


class Root:
    """A Debian Bookworm arm64 root, entered through a private mount namespace (proc, a Pi's
    cpuinfo over it, /dev), so that nothing stays mounted when a command ends."""

    def __init__(self, path: Path, cpu: str):
        self.path, self.cpu = path, cpu

    def build(self) -> float:
        start = time.perf_counter()
        partial = self.path.with_name(self.path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        run("debootstrap", "--arch=arm64", "--variant=minbase", "--include=python3,python3-venv,python3-pip,"
            "ca-certificates", "bookworm", partial, MIRROR, stdout=subprocess.DEVNULL)
        partial.rename(self.path)
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


def copy_app(root: Path, models: dict[str, Path], photos: list[Path]) -> None:
    target = root / APP.relative_to("/")
    shutil.rmtree(target, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("utils", "bench", "model_data"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    for path in [*ROOT.glob("*.py"), *ROOT.glob("requirements-*.txt")]:
        shutil.copy(path, target / path.name)
    (target / "out").mkdir()
    (target / "photos").mkdir()
    for path in models.values():
        shutil.copy(path, target / "out" / path.name)
    for path in photos:
        shutil.copy(path, target / "photos" / path.name)


def pip_install(root: Root, venv: str, requirements: str) -> float:
    start = time.perf_counter()
    root("python3", "-m", "venv", f"/opt/{venv}")
    root(f"/opt/{venv}/bin/pip", "install", "--quiet", "--only-binary", ":all:", "-r", f"{APP}/{requirements}")
    return time.perf_counter() - start


def build_models(work: Path) -> dict[str, Path]:
    """The int8 Tiny YOLOv3, leaky kept and PReLU, calibrated as ``make demo`` does."""
    weights, python = fetch_weights(log=lambda message: None), HOST_VENVS["venv-infer"] / "bin" / "python"
    models = {}
    for leaky in ("keep", "prelu"):
        h5, tflite = work / f"yolov3-tiny-{leaky}.h5", work / f"yolov3-tiny-{leaky}.tflite"
        run(python, "convert.py", "model_data/yolov3-tiny.cfg", weights, h5, "--leaky", leaky, cwd=ROOT,
            stdout=subprocess.DEVNULL)
        run(python, "keras_to_tflite_quant.py", h5, tflite, "--dataset", "model_data/samples", cwd=ROOT,
            stdout=subprocess.DEVNULL)
        models[leaky] = tflite
    return models


def detections_json(stdout: str) -> list:
    """The detections of inference.py's JSON lines (the paths and timings differ between machines)."""
    return [json.loads(line)["detections"] for line in stdout.splitlines()]


def host(*command, capture: bool = False) -> subprocess.CompletedProcess:
    return run(*command, capture_output=capture, text=True)


def run_both(root: Root, models: dict[str, Path], photos: list[Path], work: Path) -> dict:
    """{(model, label): (host npz, arm64 npz, arm64 npz from the host's inputs, host detections,
    arm64 detections)}, from bench/tensors_dump.py and inference.py --json on the same models and photos."""
    arm_photos = [APP / "photos" / p.name for p in photos]
    results = {}
    for leaky, model in models.items():
        arm_model = APP / "out" / model.name
        for label, runtime, kernels, venv in RUNS:
            flags, name = ["--runtime", runtime, "--kernels", kernels], f"{leaky}-{label}"
            python, arm_python = HOST_VENVS[venv] / "bin" / "python", f"/opt/{venv}/bin/python"
            host(python, ROOT / "bench" / "tensors_dump.py", model, work / f"host-{name}.npz", *photos, *flags)
            shutil.copy(work / f"host-{name}.npz", root.path / "tmp" / f"host-{name}.npz")
            root(arm_python, APP / "bench" / "tensors_dump.py", arm_model, f"/tmp/arm-{name}.npz", *arm_photos, *flags)
            root(arm_python, APP / "bench" / "tensors_dump.py", arm_model, f"/tmp/same-{name}.npz", *arm_photos,
                 *flags, "--inputs", f"/tmp/host-{name}.npz")
            for prefix in ("arm", "same"):
                shutil.move(root.path / "tmp" / f"{prefix}-{name}.npz", work / f"{prefix}-{name}.npz")
            found = [detections_json(runner(py, app / "inference.py", "--model", m, "--classes",
                                            app / "model_data" / "coco.names", "--json", "--no-display", *flags,
                                            "--image", *images, capture=True).stdout)
                     for runner, py, app, m, images in ((host, python, ROOT, model, photos),
                                                        (root, arm_python, APP, arm_model, arm_photos))]
            results[leaky, label] = (work / f"host-{name}.npz", work / f"arm-{name}.npz", work / f"same-{name}.npz",
                                     *found)
    return results


def differences(a_path: Path, b_path: Path, kind: str) -> tuple[float, int]:
    """(share of the ``kind`` tensors' values ("input" or "head") that differ, largest difference in 8-bit steps)."""
    a, b = np.load(a_path), np.load(b_path)
    keys = [k for k in a.files if k.split("/")[1].startswith(kind)]
    diff = np.concatenate([np.abs(a[k].astype(np.int32) - b[k].astype(np.int32)).ravel() for k in keys])
    return float((diff > 0).mean()), int(diff.max())


def cell(share: float, steps: int) -> str:
    return "identical" if steps == 0 else f"{share:.4%}, {steps}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", choices=sorted(PI), default="cortex-a72", help="the Pi's core (default: Pi 4)")
    parser.add_argument("--root", type=Path, default=Path("/var/tmp/tinyyolo-arm64"), help="where the root is kept")
    parser.add_argument("--fresh", action="store_true", help="build the root and its venvs again")
    args = parser.parse_args()
    if os.geteuid() != 0 or platform.machine() != "x86_64" or not shutil.which("apt-get"):
        print("check_arm64: needs root on an x86-64 Debian or Ubuntu host (apt-get, mount, chroot)", file=sys.stderr)
        return 2
    missing = [str(v) for v in HOST_VENVS.values() if not (v / "bin" / "python").exists()]
    if missing:
        print(f"check_arm64: the host's venvs are missing ({', '.join(missing)}): make .venv/.installed "
              ".venv-tflite-runtime/.installed", file=sys.stderr)
        return 2
    step(f"Host: {cpu_description()}, Python "
         f"{platform.python_version()}; emulated: Debian Bookworm arm64, QEMU_CPU={args.cpu}, {time.strftime('%Y-%m-%d')}")
    prepare_host()
    root = Root(args.root, args.cpu)
    if args.fresh:
        shutil.rmtree(args.root, ignore_errors=True)
    if not args.root.exists():
        step(f"debootstrap bookworm arm64 (emulated): {root.build():.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models, photos = build_models(work), reference_photos()
        copy_app(args.root, models, photos)
        for venv, requirements in (("venv-infer", "requirements-infer.txt"),
                                   ("venv-tflite-runtime", "requirements-tflite-runtime.txt")):
            if not (args.root / "opt" / venv / ".installed").exists():
                seconds = pip_install(root, venv, requirements)
                (args.root / "opt" / venv / ".installed").touch()
                step(f"pip install -r {requirements} (emulated): {seconds:.0f} s")
            else:
                step(f"{venv}: installed by an earlier run (--fresh installs it again)")
            versions = root(f"/opt/{venv}/bin/python", "-m", "pip", "list", "--format=freeze", capture=True).stdout
            step(f"  {venv}: {', '.join(line for line in versions.split() if not line.startswith(('pip=', 'setuptools=')))}")
        step(f"{len(photos)} photos: {', '.join(p.name for p in photos)}")
        results = run_both(root, models, photos, work)
        print(f"\n{'model':6} {'kernels':15} {'input tensors':>20} {'heads, same input':>20} "
              f"{'heads, own input':>20} {'JSON':>9}")
        for (leaky, label), (host_npz, arm_npz, same_npz, host_json, arm_json) in results.items():
            print(f"{leaky:6} {label:15} {cell(*differences(host_npz, arm_npz, 'input')):>20} "
                  f"{cell(*differences(host_npz, same_npz, 'head')):>20} {cell(*differences(host_npz, arm_npz, 'head')):>20} "
                  f"{'identical' if arm_json == host_json else 'DIFFERS':>9}")
    print("(arm64 under qemu against this machine, on the photos: the share of int8 values that differ and the "
          "largest difference in steps; 'same input' feeds the arm64 kernels this machine's input tensors; JSON: "
          "inference.py's detections)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as error:
        print(f"check_arm64: {' '.join(map(str, error.cmd[-6:]))} failed with status {error.returncode}", file=sys.stderr)
        sys.exit(1)
