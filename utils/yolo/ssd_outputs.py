"""SSD-style detection outputs: a YOLO model that ends in TFLite's ``TFLite_Detection_PostProcess``.

pycoral, Frigate, Coral's examples and the TFLite Task Library read four outputs: boxes
``[1, N, 4]`` (ymin, xmin, ymax, xmax, relative to the network input), classes, scores and count.
The op decodes centre-size box encodings against anchors (``y_scale`` and ``x_scale`` 1):

    ycenter = y_in * anchor_h + anchor_y        h = exp(h_in / SIZE_SCALE) * anchor_h     (x, w likewise)

Its kernel reads 8-bit encodings only together with 8-bit anchors, so each anchor is Darknet's
(the cell's corner, the anchor box's size) rounded to a multiple of 1/255, and the encodings make
up for the rounding exactly:

    y_in = (y - anchor_y) / anchor_h,   y = (row + sigmoid(ty) * s - (s - 1) / 2) / gh
    h_in = SIZE_SCALE * (th + log(ah / net_h / anchor_h))

which is Darknet's box formula (``s``: ``scale_x_y``): exact in a float model. A ``new_coords`` head
(YOLOv7's) is already logistic, ``v``, with ``y = (row + v * s - (s - 1) / 2) / gh`` and
``h = (2 v)^2 * ah / net_h``; its size encoding is
``SIZE_SCALE * (2 log(2 v) + log(ah / net_h / anchor_h))``, with ``2 v`` floored at
``exp(-LOG_FLOOR)`` (a box under 6e-6 of its anchor: nothing Darknet would show).

In an 8-bit model the encodings share one quantization step, relative to each anchor as in SSD: a
centre is off by at most about 1.4 pixels at 416 for the largest anchors and a few hundredths for
the smallest, a size by about 1.7 %.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from utils.errors import UserError
from utils.yolo.meta import YoloMeta
from utils.yolo.types import Detections, Letterbox

OP_NAME = "TFLite_Detection_PostProcess"
OUTPUTS = ("boxes", "classes", "scores", "count")  # the order every consumer reads them in
EXTRAS_KEY = "detection_outputs"
ANCHOR_STEP = 1 / 255  # the 8-bit anchors' quantization step
SIZE_SCALE = 0.25  # the op's h_scale and w_scale: log sizes (about -4 to 4) into the centres' range
LOG_FLOOR = 6.0  # new_coords heads: log(2 v) >= -LOG_FLOOR keeps the encodings' 8-bit range useful


@dataclass(frozen=True)
class PostProcess:
    """The op's settings, recorded in the model's metadata."""

    max_detections: int = 100
    score_threshold: float = 0.25
    iou_threshold: float = 0.45

    def problem(self) -> str | None:
        """Why these settings cannot be used, or None."""
        if not 1 <= self.max_detections <= 10000:
            return f"--max-detections {self.max_detections}: must be between 1 and 10000"
        if not 0 < self.score_threshold < 1:
            return f"--score-threshold {self.score_threshold:g}: must be above 0 and below 1"
        if not 0 < self.iou_threshold <= 1:
            return f"--nms-iou {self.iou_threshold:g}: must be above 0 and at most 1"
        return None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, meta: YoloMeta) -> PostProcess | None:
        """The settings a model's metadata records, or None for a model with raw heads."""
        found = meta.extras.get(EXTRAS_KEY)
        if not found:
            return None
        known = {f.name: f.type for f in fields(cls)}
        if not isinstance(found, dict) or set(found) - set(known):
            unknown = sorted(set(found) - set(known)) if isinstance(found, dict) else found
            raise UserError(f"metadata: extras.{EXTRAS_KEY}: unknown settings {unknown} (known: {', '.join(known)})")
        for name, value in found.items():
            wanted = int if name == "max_detections" else (int, float)
            if isinstance(value, bool) or not isinstance(value, wanted):
                raise UserError(f"metadata: extras.{EXTRAS_KEY}.{name} must be a number (got {value!r})")
        post = cls(**found)
        if problem := post.problem():
            raise UserError(f"metadata: extras.{EXTRAS_KEY}: {problem}")
        return post


def _on_steps(values: np.ndarray, lowest: int) -> np.ndarray:
    """``values`` rounded to multiples of ANCHOR_STEP, from ``lowest`` to 255 steps."""
    return np.clip(np.round(values / ANCHOR_STEP), lowest, 255) * ANCHOR_STEP


def encoding_constants(meta: YoloMeta) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(anchors ``[N, 4]`` as (y, x, h, w), multiples of 1/255; then per candidate, ``[N, 2]`` each in
    (x, y) order, the multiplier and offset of the centre encoding (``sigmoid(t) * multiplier +
    offset``) and the offset of the size encoding (``t * SIZE_SCALE + offset``)). Candidates run over
    ``meta.heads`` in order, each head's in (row, column, anchor) order, as a ``[1, gh, gw, A * (5 + C)]``
    head reshaped to ``[1, gh * gw * A, 5 + C]`` lists them."""
    net_w, net_h = meta.input_size
    anchors, multipliers, offsets, size_offsets = [], [], [], []
    for head in meta.heads:
        grid_w, grid_h = head.grid
        s = head.scale_x_y
        row, column, anchor = np.meshgrid(np.arange(grid_h), np.arange(grid_w), np.arange(len(head.mask)),
                                          indexing="ij")
        sizes = np.array([meta.anchors[m] for m in head.mask], np.float64)[anchor] / (net_w, net_h)
        corner = np.stack([(column - (s - 1) / 2) / grid_w, (row - (s - 1) / 2) / grid_h], -1)
        corner_q, size_q = _on_steps(corner, 0), _on_steps(sizes, 1)
        anchors.append(np.stack([corner_q[..., 1], corner_q[..., 0], size_q[..., 1], size_q[..., 0]], -1))
        multipliers.append(s / np.array([grid_w, grid_h]) / size_q)
        offsets.append((corner - corner_q) / size_q)
        size_offsets.append(SIZE_SCALE * np.log(sizes / size_q))
    return tuple(np.concatenate([a.reshape(-1, a.shape[-1]) for a in v]).astype(np.float32)
                 for v in (anchors, multipliers, offsets, size_offsets))


def is_detection_outputs(shapes: list[tuple[int, ...]]) -> bool:
    """Whether a model's output shapes are the op's: ``[1, N, 4]``, ``[1, N]``, ``[1, N]``, ``[1]``."""
    return (len(shapes) == 4 and len(shapes[0]) == 3 and shapes[0][2] == 4 and shapes[1] == shapes[2] == shapes[0][:2]
            and tuple(shapes[3]) == (1,))


def read_detections(boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray, count: np.ndarray,
                    box: Letterbox, threshold: float) -> Detections:
    """The op's outputs as ``Detections`` in image pixels (the letterbox undone), score >= ``threshold``."""
    n = int(count.reshape(-1)[0])
    yxyx, scores, classes = boxes.reshape(-1, 4)[:n], scores.reshape(-1)[:n], classes.reshape(-1)[:n]
    keep = scores >= threshold
    yxyx = yxyx[keep].astype(np.float64)
    centre_size = np.stack([(yxyx[:, 1] + yxyx[:, 3]) / 2, (yxyx[:, 0] + yxyx[:, 2]) / 2,
                            yxyx[:, 3] - yxyx[:, 1], yxyx[:, 2] - yxyx[:, 0]], 1)
    return Detections(box.to_image(centre_size), scores[keep].astype(np.float32),
                      classes[keep].astype(np.int64)).clipped(box.image_size)
