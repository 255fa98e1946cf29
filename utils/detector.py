"""The detection pipeline: model + metadata + classes → detections per image."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .decode import Detections, clip_boxes, decode
from .errors import UserError
from .files import read_text
from .nms import nms
from .runtime import Model
from .yolo_meta import YoloMeta, load_meta_file, meta_from_anchors


def read_class_names(path: str | Path) -> list[str]:
    names = [line.strip() for line in read_text(path, "classes").splitlines() if line.strip()]
    if not names:
        raise UserError(f"classes {path}: no class names in it")
    return names


def resolve_meta(model: Model, anchors: str | Path | None) -> YoloMeta:
    """The model's embedded metadata; else ``--anchors`` (a ``_yolo.json`` or a classic anchors file)."""
    grids = list(model.outputs)
    if model.meta is not None:
        meta = model.meta
        if anchors is not None:
            print(f"warning: --anchors {anchors} ignored: model {model.path} carries its own metadata", file=sys.stderr)
    elif anchors is None:
        raise UserError(f"model {model.path} has no YOLO metadata: pass --anchors")
    elif str(anchors).endswith(".json"):
        meta = load_meta_file(anchors)
    else:
        meta = meta_from_anchors(anchors, model.input_size, grids, model.output_channels(grids[0]))
    expected = {h.grid: c for h, c in zip(meta.heads, meta.channels_per_head())}
    actual = {grid: model.output_channels(grid) for grid in grids}
    if expected != actual:
        raise UserError(f"model {model.path}: heads {actual} (grid: channels) do not match the anchors/masks/"
                        f"classes, which expect {expected}")
    return meta


def check_classes(meta: YoloMeta, names: list[str], source: str | Path) -> None:
    if len(names) != meta.classes:
        per_head = len(meta.heads[0].mask)
        raise UserError(f"classes {source}: {len(names)} names, but the model has {meta.classes} classes "
                        f"({per_head} x (5 + {meta.classes}) channels per head)")


@dataclass
class Timing:
    """Milliseconds of one frame; ``setup`` is the one-off cost of a new image size, not in ``total``."""

    pre: float
    invoke: float
    post: float
    setup: float = 0.0

    @property
    def total(self) -> float:
        return self.pre + self.invoke + self.post


def postprocess(heads: list, meta: YoloMeta, box, threshold: float, iou: float, nms_kind: str | None = None
                ) -> Detections:
    """Darknet's post-processing of raw heads (in ``meta.heads`` order): decode, the model's NMS (or
    ``nms_kind``, "iou" or "diou"), boxes clipped to the image."""
    kind = nms_kind or meta.nms
    detections = nms(decode(heads, meta, box, threshold), iou, kind, meta.nms_beta, box.image_size)
    return clip_boxes(detections, box.image_size)


class Detector:
    """``detector(image_bgr)`` → (Detections in image pixels, Timing in ms)."""

    def __init__(self, model: Model, meta: YoloMeta, threshold: float = 0.25, iou: float = 0.45,
                 nms_kind: str | None = None):
        self.model, self.meta, self.threshold, self.iou, self.nms_kind = model, meta, threshold, iou, nms_kind
        if tuple(meta.input_size) != model.input_size:
            print(f"warning: metadata input size {meta.input_size} differs from the model's {model.input_size}; "
                  "using the model's", file=sys.stderr)
            meta.input_size = model.input_size

    def postprocess(self, outputs, box) -> Detections:
        heads = [outputs[tuple(head.grid)] for head in self.meta.heads]
        return postprocess(heads, self.meta, box, self.threshold, self.iou, self.nms_kind)

    def __call__(self, image_bgr: np.ndarray) -> tuple[Detections, Timing]:
        outputs, box, pre, invoke, setup = self.model.timed_run(image_bgr)
        start = time.perf_counter()
        detections = self.postprocess(outputs, box)
        return detections, Timing(pre, invoke, (time.perf_counter() - start) * 1e3, setup)
