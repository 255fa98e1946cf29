"""Run a float Keras model (``.h5``/``.keras`` from convert.py) behind the engine's interface, so that
the YOLO adapter, the detector and evaluate.py treat it like any ``.tflite``. Needs TensorFlow."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from utils.errors import UserError
from utils.machine import activation_bytes, memory_problem
from utils.runtime.tensors import TensorInfo

SUFFIXES = (".h5", ".keras")


def load_keras_model(path: Path):
    """The Keras model at ``path`` (``.h5`` or ``.keras``, in any letter case); refused when one image
    through it needs more memory than the machine has."""
    model = _load(path)
    problem = memory_problem(activation_bytes((layer.output.shape[1:], 4) for layer in model.layers
                                              if hasattr(layer, "output")), f"input {list(model.inputs[0].shape[1:])}")
    if problem:
        raise UserError(f"model {path}: {problem}")
    return model


def _load(path: Path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up lines are not ours to print
    from utils.console import native_stderr_hidden
    with native_stderr_hidden():
        import keras

    from utils.runtime import keras_layers  # noqa: F401  (registers the custom layers for load_model)
    suffix = path.suffix.lower()
    try:
        if suffix == path.suffix:
            return keras.models.load_model(path, compile=False)
        with tempfile.TemporaryDirectory() as directory:  # Keras picks the format by a lower-case name
            alias = Path(directory) / f"model{suffix}"
            try:
                os.symlink(path.resolve(), alias)
            except OSError:  # Windows allows symbolic links to administrators and developer mode only
                shutil.copyfile(path, alias)
            return keras.models.load_model(alias, compile=False)
    except Exception as error:  # Keras raises many types for a foreign file
        first = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise UserError(f"model {path}: not a Keras model this toolkit can read ({first})") from None


def _info(index: int, name: str, shape) -> TensorInfo:
    return TensorInfo(index, name, tuple(1 if d is None else int(d) for d in shape), np.dtype(np.float32), 0.0, 0)


class KerasEngine:
    """A float Keras model on TensorFlow; the same attributes and ``invoke`` as ``Engine``."""

    runtime, kernels, device, compiled, quantized = "auto", None, None, False, False
    leaves_cpu_free = False  # TensorFlow uses every core
    description = "keras, float"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        from utils.files import require_file
        self.model = load_keras_model(require_file(self.path, "model"))
        if len(self.model.inputs) != 1:
            raise UserError(f"model {self.path}: {len(self.model.inputs)} inputs; one image input is supported")
        self.input = _info(0, self.model.inputs[0].name, self.model.inputs[0].shape)
        self.outputs = [_info(i, o.name, o.shape) for i, o in enumerate(self.model.outputs)]
        start = time.perf_counter()
        self.invoke(np.zeros(self.input.shape, np.float32))
        self.warmup_ms = (time.perf_counter() - start) * 1e3

    def warm_up(self) -> None:
        """Done when opened: a float model on the CPU has no device to fail."""

    def close(self) -> None:
        self.model = None

    def metadata(self, name: str) -> bytes | None:
        return None  # a Keras model's metadata is its sidecar file

    def invoke(self, tensor: np.ndarray) -> list[np.ndarray]:
        outputs = self.model(tensor, training=False)
        return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
