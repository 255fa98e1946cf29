"""YOLO head decoding with Darknet's semantics (``yolo_layer.c``), vectorised over candidates.

Only cells whose objectness can pass the threshold are dequantized and decoded: the test is
done on the raw (possibly 8-bit) logits, so a frame with few objects costs almost nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .preprocess import Letterbox
from .yolo_meta import YoloMeta


@dataclass
class HeadOutput:
    """One raw head tensor ``(1, gh, gw, A*(5+C))`` with its quantization (scale 0: float)."""

    data: np.ndarray
    scale: float = 0.0
    zero_point: int = 0

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        if self.scale:
            return (values.astype(np.float32) - self.zero_point) * np.float32(self.scale)
        return values.astype(np.float32, copy=False)

    def raw_threshold(self, logit: float) -> float:
        """``logit`` expressed in this tensor's stored units."""
        return logit / self.scale + self.zero_point if self.scale else logit


@dataclass
class Detections:
    """Detections of one image: boxes ``[x1, y1, x2, y2]`` in image pixels, one class each."""

    boxes: np.ndarray      # (n, 4) float32
    scores: np.ndarray     # (n,) float32
    class_ids: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, index: np.ndarray) -> "Detections":
        return Detections(self.boxes[index], self.scores[index], self.class_ids[index])

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


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


def to_image_boxes(boxes: np.ndarray, box: Letterbox) -> np.ndarray:
    """Darknet's ``correct_yolo_boxes``: ``[x1, y1, x2, y2]`` in image pixels, not yet clipped
    (Darknet's NMS sees unclipped boxes)."""
    (net_w, net_h), (new_w, new_h), (width, height) = box.net_size, box.new_size, box.image_size
    cx = (boxes[:, 0] - (net_w - new_w) / 2.0 / net_w) / (new_w / net_w)
    cy = (boxes[:, 1] - (net_h - new_h) / 2.0 / net_h) / (new_h / net_h)
    w = boxes[:, 2] * net_w / new_w
    h = boxes[:, 3] * net_h / new_h
    corners = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], 1)
    return corners.astype(np.float32)


def clip_boxes(detections: Detections, image_size: tuple[int, int]) -> Detections:
    """Boxes clipped to the image."""
    width, height = image_size
    boxes = np.clip(detections.boxes, 0, np.array([width, height, width, height], np.float32))
    return Detections(boxes, detections.scores, detections.class_ids)


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
    return Detections(to_image_boxes(boxes[candidate], box),
                      probabilities[candidate, class_ids].astype(np.float32), class_ids.astype(np.int64))
