"""Run a ``.tflite`` model: runtime, kernels, threads, Edge TPU delegate and device, tensors in and out.

Nothing here knows about YOLO; ``utils.yolo.adapter`` turns images into the input and outputs into heads.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from utils.errors import DeviceError, UserError
from utils.machine import activation_bytes, memory_problem
from utils.runtime import edgetpu
from utils.runtime.faults import DeviceFault, libedgetpu_words
from utils.runtime.interpreters import interpreter_api
from utils.runtime.tensors import TensorInfo
from utils.tflite import model as tflite_model

DETECTION_POST_PROCESS = "TFLite_Detection_PostProcess"


def _info(detail: dict) -> TensorInfo:
    scale, zero_point = detail["quantization"]
    return TensorInfo(int(detail["index"]), detail["name"], tuple(int(v) for v in detail["shape"]),
                      np.dtype(detail["dtype"]), float(scale), int(zero_point))


class Engine:
    """One interpreter for one model on the CPU or one Edge TPU."""

    def __init__(self, path: str | Path, runtime: str = "auto", threads: int | None = None,
                 kernels: str | None = None, edge_tpu: bool = False, device: str | None = None,
                 warm: bool = True):
        self.path = Path(path)
        self.data = tflite_model.read_bytes(self.path)
        self.compiled = tflite_model.is_compiled_for_edgetpu(self.data)
        if self.compiled and not edge_tpu:
            raise UserError(f"model {self.path} is compiled for the Edge TPU (it contains an edgetpu-custom-op) "
                            "and cannot run on the CPU: add --edge_tpu, or use the uncompiled .tflite")
        if threads != 1 and DETECTION_POST_PROCESS in tflite_model.custom_ops(self.data):
            # TFLite's TFLite_Detection_PostProcess loses detections with 2 threads (LiteRT 2.3 and
            # tflite_runtime 2.14: the top car of dog.jpg vanishes; every other tensor is identical).
            threads = 1
        if problem := memory_problem(activation_bytes(tflite_model.tensor_shapes(self.data)), "this model"):
            # refused before anything is allocated
            raise UserError(f"model {self.path}: {problem}")
        api = interpreter_api(runtime)
        self.runtime, self.kernels, self.device = api.runtime, kernels or api.default_kernels(), device
        self.threads, self.edge_tpu = threads, edge_tpu
        delegates = [edgetpu.delegate(api.load_delegate, device)] if edge_tpu else None
        try:
            self.interpreter = api.interpreter(self.kernels, model_content=self.data, num_threads=threads,
                                               experimental_delegates=delegates)
        except (ValueError, RuntimeError) as error:
            raise UserError(f"model {self.path}: {self.runtime} cannot load it "
                            f"({str(error).strip().splitlines()[0][:160]})") from None
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise UserError(f"model {self.path}: {len(inputs)} inputs; one image input is supported")
        self.input = _info(inputs[0])
        self.outputs = [_info(detail) for detail in self.interpreter.get_output_details()]
        self.warmup_ms = 0.0
        if warm:
            try:
                self.warm_up()
            except DeviceFault as fault:
                self.close()
                where = f"Edge TPU {device}" if device else "the Edge TPU"
                raise DeviceError(f"{where}: its first invoke failed ({fault.reason})", fault.reason) from None

    def warm_up(self) -> None:
        """The first invoke, which prepares the kernels (and loads the model onto an Edge TPU): not a
        frame. On an Edge TPU a failure raises ``DeviceFault`` (the caller may retry it, or close)."""
        start = time.perf_counter()
        self._invoke()
        self.warmup_ms = (time.perf_counter() - start) * 1e3

    @property
    def description(self) -> str:
        return f"{self.runtime}, {self.kernels} kernels"

    @property
    def leaves_cpu_free(self) -> bool:
        """Whether ``invoke()`` leaves a CPU core idle, so that other work can overlap it: on an Edge
        TPU, or with fewer interpreter threads than cores."""
        return self.edge_tpu or (self.threads is not None and self.threads < (os.cpu_count() or 1))

    def metadata(self, name: str) -> bytes | None:
        """The model's metadata buffer called ``name``."""
        return tflite_model.read_metadata(self.data, name)

    @property
    def quantized(self) -> bool:
        return self.input.dtype != np.float32

    def invoke(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run on ``tensor`` (the input's shape and dtype); the outputs in ``self.outputs`` order.
        On an Edge TPU, a failed invoke raises ``DeviceFault``."""
        self.interpreter.set_tensor(self.input.index, tensor)
        self._invoke()
        return [self.interpreter.get_tensor(output.index) for output in self.outputs]

    def _invoke(self) -> None:
        try:
            self.interpreter.invoke()
        except RuntimeError as error:
            if not self.edge_tpu:
                raise
            raise DeviceFault(self.device or "the Edge TPU", libedgetpu_words(error)) from None

    def close(self) -> None:
        """Release the interpreter and with it the delegate (and so the device)."""
        self.interpreter = None


def open_engine(path: str | Path, runtime: str = "auto", threads: int | None = None, kernels: str | None = None,
                edge_tpu: bool = False, device: str | None = None, warm: bool = True):
    """An ``Engine`` for a ``.tflite``, a ``KerasEngine`` (TensorFlow) for a float ``.h5``/``.keras``.
    ``warm``: run the first invoke now (a failure is a ``DeviceError``); else call ``warm_up()``."""
    if Path(path).suffix.lower() in (".h5", ".keras"):
        if edge_tpu:
            raise UserError(f"model {path}: a Keras model cannot run on the Edge TPU; quantize and compile it")
        from utils.runtime.keras_engine import KerasEngine
        return KerasEngine(path)
    return Engine(path, runtime, threads, kernels, edge_tpu, device, warm)
