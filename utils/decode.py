"""YOLO head decoding with Darknet's semantics (``yolo_layer.c``), vectorised over candidates.

Only cells whose objectness can pass the threshold are dequantized and decoded: the test is
done on the raw (possibly 8-bit) logits, so a frame with few objects costs almost nothing.
"""
from __future__ import annotations

import numpy as np

from .yolo_meta import YoloMeta
from .yolo_types import Detections, HeadOutput, Letterbox


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_head(head: HeadOutput, meta: YoloMeta, head_index: int, threshold: float):
    """Candidates of one head: (boxes cx, cy, w, h relative to the network input, objectness, class probs).

    Darknet's ``get_yolo_box``: x, y are ``v * scale_x_y - (scale_x_y - 1) / 2`` after a sigmoid; w, h
    are ``exp(v) * anchor``, or with ``new_coords`` (the head is already logistic, so no sigmoid at
    all) ``(2 v)^2 * anchor``.
    """
    spec = meta.heads[head_index]
    grid_h, grid_w = head.data.shape[1:3]
    anchors_here = len(spec.mask)
    raw = head.data.reshape(grid_h, grid_w, anchors_here, 5 + meta.classes)
    activate = (lambda v: v) if spec.new_coords else _sigmoid
    objectness_raw = threshold if spec.new_coords else np.log(threshold / (1.0 - threshold))
    rows, cols, anchor = np.nonzero(raw[..., 4] > head.raw_threshold(objectness_raw))
    values = head.dequantize(raw[rows, cols, anchor])
    objectness = activate(values[:, 4])
    keep = objectness > threshold  # exact test after dequantization
    rows, cols, anchor, values, objectness = rows[keep], cols[keep], anchor[keep], values[keep], objectness[keep]
    scale = np.float32(spec.scale_x_y)
    offset = activate(values[:, :2]) * scale - (scale - 1) / 2
    anchors = np.asarray(meta.anchors, np.float32)[np.asarray(spec.mask)[anchor]]
    net_w, net_h = meta.input_size
    size = values[:, 2:4] * values[:, 2:4] * 4 if spec.new_coords else np.exp(values[:, 2:4])
    boxes = np.stack([(cols + offset[:, 0]) / grid_w, (rows + offset[:, 1]) / grid_h,
                      size[:, 0] * anchors[:, 0] / net_w, size[:, 1] * anchors[:, 1] / net_h], axis=1)
    probabilities = objectness[:, None] * activate(values[:, 5:])
    return boxes, probabilities


def decode(heads: list[HeadOutput], meta: YoloMeta, box: Letterbox, threshold: float) -> Detections:
    """Every (box, class) pair with objectness × class probability above ``threshold`` (before NMS).

    ``heads`` are in the order of ``meta.heads``.
    """
    decoded = [decode_head(head, meta, i, threshold) for i, head in enumerate(heads)]
    boxes = np.concatenate([d[0] for d in decoded])
    probabilities = np.concatenate([d[1] for d in decoded])
    candidate, class_ids = np.nonzero(probabilities > threshold)
    if candidate.size == 0:
        return Detections.empty()
    return Detections(box.to_image(boxes[candidate]),
                      probabilities[candidate, class_ids].astype(np.float32), class_ids.astype(np.int64))
