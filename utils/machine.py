"""What a benchmark says about the machine it ran on (timings differ between CPUs: name it)."""
from __future__ import annotations

import math
import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The instruction sets that decide int8 and float speed: 8-bit dot products (x86 VNNI/AMX, Arm
# asimddp/i8mm) are what make int8 faster than float on a CPU.
_SPEED_FEATURES = {"avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512F", "avx512_vnni": "AVX-512 VNNI",
                   "avx_vnni": "AVX-VNNI", "amx_int8": "AMX-INT8", "asimd": "NEON", "asimddp": "NEON dot product",
                   "i8mm": "I8MM", "sve": "SVE", "sve2": "SVE2"}


def instruction_sets(cpuinfo: str | None = None) -> list[str]:
    """The CPU's SIMD extensions that matter for inference speed, from Linux's /proc/cpuinfo (or the
    text ``cpuinfo``); empty elsewhere, or when unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    except OSError:
        return []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            present = set(value.split())
            return [name for flag, name in _SPEED_FEATURES.items() if flag in present]
    return []


def has_int8_dot_products(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has 8-bit dot-product instructions, without which int8 inference is no faster
    than float (an AVX2-only x86 measured 41.9 ms int8 against 41.2 ms float for Tiny YOLOv3)."""
    return bool({"AVX-512 VNNI", "AVX-VNNI", "AMX-INT8", "NEON dot product", "I8MM"} & set(instruction_sets(cpuinfo)))


def cpu_description() -> str:
    """The CPU's name and its inference-relevant instruction sets, for a benchmark's heading."""
    sets = instruction_sets()
    return f"{cpu_name()} ({', '.join(sets) if sets else 'instruction sets unknown'})"


def peak_memory_mib() -> float | None:
    """This process's peak resident memory in MiB (None where the OS does not say, as on Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024  # macOS counts bytes, Linux KiB


def memory_bytes() -> int | None:
    """The machine's physical memory, or None where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def memory_problem(needed: int, what: str) -> str | None:
    """Why ``needed`` bytes for ``what`` cannot fit in this machine's memory, or None."""
    total = memory_bytes()
    if total is None or needed <= total:
        return None
    return (f"{what} needs {needed / 2**30:.1f} GiB for one image, more than this machine's "
            f"{total / 2**30:.1f} GiB of memory")


def activation_bytes(tensors) -> int:
    """A floor on the memory one forward pass needs: its largest tensor and one more as large at once
    (``tensors``: (shape, bytes per element) of every activation; unknown dimensions count as 1)."""
    return 2 * max((math.prod(d or 1 for d in shape) * itemsize for shape, itemsize in tensors), default=0)
