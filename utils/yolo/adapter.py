"""The YOLO side of running a model on an engine: Darknet's letterbox or stretch in, heads by grid size out,
then decoding and NMS. The engine underneath (any runtime, kernels, device) is not its concern."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from utils.errors import UserError
from utils.runtime.engine import DETECTION_POST_PROCESS, Engine
from utils.tflite import model as tflite_model
from utils.yolo.decode import decode
from utils.yolo.letterbox import Preprocessor
from utils.yolo.meta import METADATA_NAME, YoloMeta, load_meta_file, resolve_meta, sidecar_paths
from utils.yolo.nms import nms
from utils.yolo.ssd_outputs import PostProcess, is_detection_outputs, read_detections
from utils.yolo.types import Detections, HeadOutput, Letterbox


def output_heads(engine: Engine) -> dict[tuple[int, int], int]:
    """The model's outputs as {grid (w, h): channels}, each a YOLO head ``(1, gh, gw, channels)``."""
    heads = {}
    for output in engine.outputs:
        if len(output.shape) != 4:
            raise UserError(f"model {engine.path}: output {output.name} of shape {list(output.shape)} is not a YOLO head")
        grid = (output.shape[2], output.shape[1])
        if grid in heads:
            raise UserError(f"model {engine.path}: two outputs share the grid {grid}")
        heads[grid] = output.shape[3]
    return heads


def input_size(engine: Engine) -> tuple[int, int]:
    """The model's input (width, height)."""
    return engine.input.shape[2], engine.input.shape[1]


def has_detection_outputs(engine: Engine) -> bool:
    """Whether the model ends in TFLite_Detection_PostProcess (``--outputs detections``)."""
    return is_detection_outputs([o.shape for o in engine.outputs])


def model_meta(engine: Engine, anchors: str | Path | None = None) -> YoloMeta:
    """The metadata embedded in the model, else its ``_yolo.json`` sidecar (a Keras model's), else
    ``--anchors``; checked against the outputs."""
    raw = engine.metadata(METADATA_NAME)
    sidecar = sidecar_paths(engine.path)[0]
    if raw:
        own = YoloMeta.from_json(raw, f"model {engine.path}")
    else:
        own = load_meta_file(sidecar) if sidecar.is_file() else None
    try:
        post = own and PostProcess.of(own)
    except UserError as error:
        raise UserError(f"model {engine.path}: {error}") from None
    if has_detection_outputs(engine):  # its heads are inside: only its own metadata can describe them
        if not post:
            raise UserError(f"model {engine.path}: detection outputs (boxes, classes, scores, count) without the "
                            "metadata keras_to_tflite_quant.py embeds; this toolkit runs the models it wrote")
        options = tflite_model.custom_op_options(engine.data, DETECTION_POST_PROCESS) or {}
        if options.get("num_classes", own.classes) != own.classes:
            raise UserError(f"model {engine.path}: its metadata says {own.classes} classes, but its "
                            f"{DETECTION_POST_PROCESS} has {options['num_classes']}")
        return own
    return resolve_meta(engine.path, input_size(engine), output_heads(engine), own, anchors,
                        f"pass --anchors (or keep {sidecar.name} beside it)")


def postprocess(heads: list[HeadOutput], meta: YoloMeta, box: Letterbox, threshold: float, iou: float,
                nms_kind: str | None = None) -> Detections:
    """Darknet's post-processing of raw heads (in ``meta.heads`` order): decode, the model's NMS (or
    ``nms_kind``, "iou" or "diou"), boxes clipped to the image. For a model with detection outputs
    (decoded and NMS'd inside, by TFLite_Detection_PostProcess), its boxes with the letterbox undone."""
    if is_detection_outputs([head.data.shape for head in heads]):
        return read_detections(*(head.data for head in heads), box, threshold)
    detections = decode(heads, meta, box, threshold)
    return nms(detections, iou, nms_kind or meta.nms, meta.nms_beta, box.image_size).clipped(box.image_size)


class YoloAdapter:
    """An engine seen as a YOLO model: ``prepare`` an image, ``run`` the tensor, heads in ``meta`` order."""

    def __init__(self, engine: Engine, meta: YoloMeta):
        self.engine, self.meta = engine, meta
        info = engine.input
        if len(info.shape) != 4 or info.shape[3] != 3:
            raise UserError(f"model {engine.path}: input of shape {list(info.shape)} is not an RGB image")
        self.input_size = input_size(engine)
        self.prepare = self.new_preprocessor()
        self.detection_outputs = has_detection_outputs(engine)
        if self.detection_outputs:  # boxes, classes, scores, count, as keras_to_tflite_quant.py orders them
            self._order = list(range(4))
        else:
            by_grid = {(o.shape[2], o.shape[1]): position for position, o in enumerate(engine.outputs)}
            self._order = [by_grid[tuple(head.grid)] for head in meta.heads]

    def new_preprocessor(self) -> Preprocessor:
        """A letterbox (or stretch) into this model's input, with buffers of its own."""
        info, engine = self.engine.input, self.engine
        try:
            # One thread for the letterbox: in a video loop the decoder is busy with the next frame, and
            # bench/video_loop.py measured 1.30 ms with one resize thread against 1.60 ms with two.
            return Preprocessor(self.input_size, info.dtype, info.scale, info.zero_point, 1,
                                engine.runtime, engine.kernels, self.meta.resize)
        except ValueError as error:
            raise UserError(f"model {engine.path}: {error} (float32, or uint8/int8 with a scale, is supported)") from None

    def close(self) -> None:
        """Release the engine's interpreter (and its Edge TPU)."""
        self.engine.close()

    def run(self, tensor: np.ndarray) -> list[HeadOutput]:
        """Invoke on a prepared input tensor; the raw heads in ``meta.heads`` order."""
        outputs = self.engine.invoke(tensor)
        return [HeadOutput(outputs[i], self.engine.outputs[i].scale, self.engine.outputs[i].zero_point)
                for i in self._order]

    def timed_run(self, image_bgr: np.ndarray) -> tuple[list[HeadOutput], Letterbox, float, float, float]:
        """Prepare and run; (heads, letterbox, pre ms, invoke ms, set-up ms).

        Set-up is the one-off cost of a new image size (building its resize graph), kept out of pre.
        """
        start = time.perf_counter()
        tensor, box = self.prepare(image_bgr)
        ready = time.perf_counter()
        heads = self.run(tensor)
        setup = self.prepare.setup_ms
        return heads, box, (ready - start) * 1e3 - setup, (time.perf_counter() - ready) * 1e3, setup
