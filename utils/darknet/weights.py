"""Read Darknet ``.weights`` files, requiring the file to match the cfg exactly."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.darknet.cfg import ConvLayout
from utils.errors import UserError


@dataclass
class ConvWeights:
    """Weights of one ``[convolutional]`` layer, kernel in Keras order (size, size, in/groups, out)."""

    kernel: np.ndarray
    bias: np.ndarray                 # conv bias, or batch-norm beta
    bn_scale: np.ndarray | None = None
    bn_mean: np.ndarray | None = None
    bn_variance: np.ndarray | None = None


def header_size(major: int, minor: int) -> int:
    """Bytes of header: 3 int32 then ``seen`` as int64 (newer files) or int32."""
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    return 12 + (8 if wide else 4)


def read_version(path: str | Path) -> tuple[int, int, int]:
    """The (major, minor, revision) a weights file's header records: which Darknet wrote it."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            raw = stream.read(12)
    except OSError as error:
        raise UserError(f"weights {path}: cannot read ({error.strerror})") from None
    if len(raw) < 12:
        raise UserError(f"weights {path}: too short for a Darknet header ({len(raw)} bytes)")
    major, minor, revision = (int(v) for v in np.frombuffer(raw, np.int32, 3))
    return major, minor, revision


def read_weights(path: str | Path, layouts: list[ConvLayout]) -> list[ConvWeights]:
    """Read one ConvWeights per layout; the file must hold exactly what the cfg needs."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UserError(f"weights {path}: cannot read ({error.strerror})") from None
    if len(raw) < 20:
        raise UserError(f"weights {path}: too short for a Darknet header ({len(raw)} bytes)")
    major, minor, _revision = np.frombuffer(raw, np.int32, 3)
    start = header_size(int(major), int(minor))
    if (len(raw) - start) % 4:
        raise UserError(f"weights {path}: size is not a whole number of floats after the header")
    floats = np.frombuffer(raw, np.float32, offset=start)
    expected = sum(layout.float_count() for layout in layouts)
    offset = 0
    result = []
    for layout in layouts:
        need = layout.float_count()
        if offset + need > floats.size:
            raise UserError(
                f"weights {path}: floats run out at layer {layout.index} ([convolutional] on cfg line "
                f"{layout.line}): the cfg needs {expected} floats, the file has {floats.size}; "
                "cfg and weights do not belong together")
        chunk = floats[offset:offset + need]
        offset += need
        n = layout.filters
        parts = [chunk[i * n:(i + 1) * n] for i in range(4 if layout.batch_normalize else 1)]
        kernel = chunk[len(parts) * n:].reshape(n, layout.channels // layout.groups, layout.size, layout.size)
        weights = ConvWeights(kernel=kernel.transpose(2, 3, 1, 0), bias=parts[0])
        if layout.batch_normalize:
            weights.bn_scale, weights.bn_mean, weights.bn_variance = parts[1:]
        result.append(weights)
    if offset != floats.size:
        raise UserError(f"weights {path}: {floats.size - offset} floats left over after the last layer "
                        f"(the cfg needs {expected}, the file has {floats.size}); "
                        "cfg and weights do not belong together")
    return result


def write_weights(path: str | Path, layouts: list[ConvLayout], rng: np.random.Generator,
                  scale: float = 0.01) -> None:
    """Write random weights in Darknet's layout (int64 header form), for tests and benchmarks.

    BN variances are positive and the gains modest, so activations stay O(1) even through the
    residual stacks of YOLOv3 (absolute comparisons with other implementations stay meaningful).
    """
    parts = [np.array([0, 2, 0], np.int32).tobytes(), np.array([0], np.int64).tobytes()]
    for layout in layouts:
        n = layout.filters
        fan_in = layout.channels // layout.groups * layout.size ** 2
        parts.append(rng.normal(0, scale, n).astype(np.float32).tobytes())
        if layout.batch_normalize:
            parts.append(rng.uniform(0.8, 1.2, n).astype(np.float32).tobytes())
            parts.append(rng.normal(0, scale, n).astype(np.float32).tobytes())
            parts.append(rng.uniform(0.5, 1.5, n).astype(np.float32).tobytes())
        kernel = rng.normal(0, np.sqrt(1.0 / fan_in), n * fan_in).astype(np.float32)
        parts.append(kernel.tobytes())
    Path(path).write_bytes(b"".join(parts))
