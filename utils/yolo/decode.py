"""YOLO head decoding with Darknet's semantics (``yolo_layer.c``), vectorised over candidates.

Only cells whose objectness can pass the threshold are dequantized and decoded: the test is
done on the raw (possibly 8-bit) logits, so a frame with few objects costs almost nothing. A
frame's post-processing is a few dozen small numpy calls, so each head is decoded in as few as
possible (after an invoke the CPU's caches are cold, and every call costs several microseconds).
"""
from __future__ import annotations

import math

import numpy as np

from utils.yolo.meta import YoloMeta
from utils.yolo.types import Detections, HeadOutput, Letterbox


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_head(head: HeadOutput, meta: YoloMeta, head_index: int, threshold: float):
    """Candidates of one head: (boxes cx, cy, w, h relative to the network input, objectness × class
    probabilities), in the order of the head's (row, column, anchor).

    Darknet's ``get_yolo_box``: x, y are ``v * scale_x_y - (scale_x_y - 1) / 2`` after a sigmoid; w, h
    are ``exp(v) * anchor``, or with ``new_coords`` (the head is already logistic, so no sigmoid at
    all) ``(2 v)^2 * anchor``.
    """
    spec = meta.heads[head_index]
    grid_h, grid_w = head.data.shape[1:3]
    anchors_here = len(spec.mask)
    raw = head.data.reshape(-1, 5 + meta.classes)  # one row per (row, column, anchor)
    objectness_raw = threshold if spec.new_coords else math.log(threshold / (1.0 - threshold))
    found = np.flatnonzero(raw[:, 4] > head.raw_threshold(objectness_raw))
    if found.size == 0:
        return np.zeros((0, 4)), np.zeros((0, meta.classes), np.float32)
    values = head.dequantize(raw[found])
    activated = values if spec.new_coords else _sigmoid(values)  # only x, y and the probabilities are used
    keep = activated[:, 4] > threshold  # exact test after dequantization
    if not keep.all():
        found, values, activated = found[keep], values[keep], activated[keep]
    cell, anchor = np.divmod(found, anchors_here)
    row, column = np.divmod(cell, grid_w)
    scale = np.float32(spec.scale_x_y)
    centre = (np.stack([column, row], 1) + (activated[:, :2] * scale - (scale - 1) / 2)) / np.array([grid_w, grid_h])
    size = values[:, 2:4] * values[:, 2:4] * 4 if spec.new_coords else np.exp(values[:, 2:4])
    anchor_sizes = np.array([meta.anchors[m] for m in spec.mask], np.float32)[anchor]
    relative_size = size * anchor_sizes / np.array(meta.input_size, np.float32)
    return np.concatenate([centre, relative_size], 1), activated[:, 4:5] * activated[:, 5:]


def decode(heads: list[HeadOutput], meta: YoloMeta, box: Letterbox, threshold: float) -> Detections:
    """Every (box, class) pair with objectness × class probability above ``threshold`` (before NMS).

    ``heads`` are in the order of ``meta.heads``.
    """
    decoded = [decode_head(head, meta, i, threshold) for i, head in enumerate(heads)]
    boxes = np.concatenate([d[0] for d in decoded])
    if len(boxes) == 0:
        return Detections.empty()
    probabilities = np.concatenate([d[1] for d in decoded])
    candidate, class_ids = np.nonzero(probabilities > threshold)
    if candidate.size == 0:
        return Detections.empty()
    return Detections(box.to_image(boxes[candidate]),
                      probabilities[candidate, class_ids].astype(np.float32), class_ids.astype(np.int64))
