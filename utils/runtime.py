"""Load a ``.tflite`` model on LiteRT, tflite_runtime or TensorFlow, on the CPU or the Edge TPU."""
from __future__ import annotations

import ctypes
import platform
import time
from pathlib import Path

import numpy as np

from . import tflite_model
from .decode import HeadOutput
from .errors import UserError
from .interpreters import interpreter_api
from .preprocess import Letterbox, Preprocessor
from .yolo_meta import METADATA_NAME, YoloMeta

EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}


def edgetpu_delegate(load_delegate, device: str | None):
    """The Edge TPU delegate, or a UserError saying what is missing."""
    library = EDGETPU_LIBRARY.get(platform.system(), "libedgetpu.so.1")
    try:  # checked first: a failed load_delegate leaves LiteRT printing a traceback at exit
        ctypes.CDLL(library)
    except OSError:
        raise UserError(f"Edge TPU runtime not found: {library} cannot be loaded. Install it "
                        "(Coral's libedgetpu1-std package, or a build matching your TFLite runtime), "
                        "or run on the CPU without --edge_tpu") from None
    try:
        return load_delegate(library, {"device": device} if device else {})
    except (ValueError, OSError, RuntimeError) as error:
        raise UserError(f"no Edge TPU found{f' at {device}' if device else ''}: {library} is installed but "
                        f"the delegate failed ({error}); check the USB connection or --device") from None


class Model:
    """A YOLO ``.tflite`` model: exact pre-processing in, raw heads out, matched by grid size."""

    def __init__(self, path: str | Path, runtime: str = "auto", threads: int | None = None,
                 edge_tpu: bool = False, device: str | None = None):
        self.path = Path(path)
        data = tflite_model.read_bytes(self.path)
        self.compiled = tflite_model.is_compiled_for_edgetpu(data)
        if self.compiled and not edge_tpu:
            raise UserError(f"model {self.path} is compiled for the Edge TPU (it contains an edgetpu-custom-op) "
                            "and cannot run on the CPU: add --edge_tpu, or use the uncompiled .tflite")
        interpreter_class, load_delegate, self.runtime = interpreter_api(runtime)
        delegates = [edgetpu_delegate(load_delegate, device)] if edge_tpu else None
        try:
            self.interpreter = interpreter_class(model_content=data, num_threads=threads,
                                                 experimental_delegates=delegates)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise UserError(f"model {self.path}: {self.runtime} cannot load it "
                            f"({str(error).strip().splitlines()[0][:160]})") from None
        raw_meta = tflite_model.read_metadata(data, METADATA_NAME)
        self.meta = YoloMeta.from_json(raw_meta.decode(), f"model {self.path}") if raw_meta else None
        detail = self.interpreter.get_input_details()[0]
        self.input_index = detail["index"]
        self.input_dtype = np.dtype(detail["dtype"])
        _, height, width, _ = detail["shape"]
        self.input_size = (int(width), int(height))
        scale, zero_point = detail["quantization"]
        try:
            self.preprocess = Preprocessor(self.input_size, self.input_dtype, scale, zero_point, threads)
        except ValueError as error:
            raise UserError(f"model {self.path}: {error} (float32, or uint8/int8 with a scale, is supported)") from None
        self.outputs = {}
        for out in self.interpreter.get_output_details():
            shape = out["shape"]
            if len(shape) != 4:
                raise UserError(f"model {self.path}: output {out['name']} of shape {list(shape)} is not a YOLO head")
            grid = (int(shape[2]), int(shape[1]))
            if grid in self.outputs:
                raise UserError(f"model {self.path}: two outputs share the grid {grid}")
            self.outputs[grid] = (out["index"], *out["quantization"], int(shape[3]))
        self.quantized = self.input_dtype != np.float32
        start = time.perf_counter()  # the first invoke prepares kernels (and loads an Edge TPU): not a frame
        self.interpreter.invoke()
        self.warmup_ms = (time.perf_counter() - start) * 1e3

    def output_channels(self, grid: tuple[int, int]) -> int:
        return self.outputs[grid][3]

    def run(self, tensor: np.ndarray) -> dict[tuple[int, int], HeadOutput]:
        """Invoke on a prepared input tensor; raw outputs by (grid_w, grid_h)."""
        self.interpreter.set_tensor(self.input_index, tensor)
        self.interpreter.invoke()
        return {grid: HeadOutput(self.interpreter.get_tensor(index), scale, zero_point)
                for grid, (index, scale, zero_point, _) in self.outputs.items()}

    def timed_run(self, image_bgr: np.ndarray) -> tuple[dict, Letterbox, float, float, float]:
        """Pre-process and run; (outputs, letterbox, pre ms, invoke ms, set-up ms).

        Set-up is the one-off cost of a new image size (building its resize graph), kept out of pre.
        """
        start = time.perf_counter()
        tensor, box = self.preprocess(image_bgr)
        ready = time.perf_counter()
        outputs = self.run(tensor)
        setup = self.preprocess.setup_ms
        return outputs, box, (ready - start) * 1e3 - setup, (time.perf_counter() - ready) * 1e3, setup
