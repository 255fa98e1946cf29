"""Plain value types shared by the YOLO side: head outputs, detections, the resize geometry and its inverse.

Decoding, NMS, drawing, the adapter and the library API all speak these; none of them knows
which runtime or device produced the numbers.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

# How an image becomes the network input. "letterbox": scaled to fit, aspect ratio kept, centred on a
# grey canvas (Darknet 2018, and the forks with letter_box=1). "stretch": resized to the network size,
# each axis on its own (AlexeyAB's and Hank.ai's Darknet by default).
RESIZE_MODES = ("letterbox", "stretch")


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


class Detection(NamedTuple):
    """One detection: ``box`` is ``(x1, y1, x2, y2)`` in image pixels."""

    label: str
    score: float
    box: tuple[float, float, float, float]
    class_id: int


@dataclass
class Detections:
    """Detections of one image: boxes ``[x1, y1, x2, y2]`` in image pixels, one class each.

    Iterating gives ``Detection`` objects, labelled with ``names`` when they are known.
    """

    boxes: np.ndarray      # (n, 4) float32
    scores: np.ndarray     # (n,) float32
    class_ids: np.ndarray  # (n,) int64
    names: Sequence[str] | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self) -> Iterator[Detection]:
        for box, score, class_id in zip(self.boxes.tolist(), self.scores.tolist(), self.class_ids.tolist()):
            label = self.names[class_id] if self.names is not None else str(class_id)
            yield Detection(label, score, tuple(box), class_id)

    def take(self, index: np.ndarray) -> Detections:
        return Detections(self.boxes[index], self.scores[index], self.class_ids[index], self.names)

    def clipped(self, image_size: tuple[int, int]) -> Detections:
        """Boxes clipped to an image of ``(width, height)``."""
        width, height = image_size
        boxes = np.clip(self.boxes, 0, np.array([width, height, width, height], np.float32))
        return Detections(boxes, self.scores, self.class_ids, self.names)

    def to_record(self, names: Sequence[str] | None = None) -> list[dict]:
        """The detections as JSON-ready dicts (``inference.py --json``, the live view): class id, label,
        score to 4 decimals, box ``[x1, y1, x2, y2]`` in pixels to 0.1."""
        names = names if names is not None else self.names
        return [{"class_id": class_id, "label": names[class_id] if names is not None else str(class_id),
                 "score": round(score, 4), "box": [round(v, 1) for v in box]}
                for box, score, class_id in zip(self.boxes.tolist(), self.scores.tolist(), self.class_ids.tolist())]

    def to_labels(self, width: int, height: int) -> str:
        """Darknet label lines ``class cx cy w h``, relative to an image of ``width`` x ``height``
        (6 decimals): ``inference.py --save-txt``, for evaluate.py or as pseudo-labels."""
        return "".join(f"{class_id} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                       f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n"
                       for (x1, y1, x2, y2), class_id in zip(self.boxes.tolist(), self.class_ids.tolist()))

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


@dataclass(frozen=True)
class Letterbox:
    """Where the resized image sits on the network canvas: Darknet's ``letterbox_image``, or, for a
    stretch, the whole canvas (``new_size`` is the network size, ``offset`` (0, 0))."""

    image_size: tuple[int, int]    # (width, height) of the original image
    net_size: tuple[int, int]      # (width, height) of the network input
    new_size: tuple[int, int]      # (width, height) of the resized image
    offset: tuple[int, int]        # (x, y) of its top-left corner on the canvas

    @classmethod
    def fit(cls, image_size: tuple[int, int], net_size: tuple[int, int], resize: str = "letterbox") -> Letterbox:
        """Darknet's ``letterbox_image`` sizes, integer arithmetic and float32 comparison included;
        with ``resize="stretch"``, the whole network input (``resize_image(im, net_w, net_h)``).

        For an image so thin that Darknet's arithmetic gives a side of 0 (20000x20 on 416x416: 20 *
        416 // 20000), that side is 1 pixel: the image is still detected on, as a 1-pixel band.
        """
        (w, h), (net_w, net_h) = image_size, net_size
        if resize == "stretch":
            return cls(tuple(image_size), tuple(net_size), tuple(net_size), (0, 0))
        if np.float32(net_w) / np.float32(w) < np.float32(net_h) / np.float32(h):
            new_w, new_h = net_w, max((h * net_w) // w, 1)
        else:
            new_w, new_h = max((w * net_h) // h, 1), net_h
        return cls(tuple(image_size), tuple(net_size), (new_w, new_h), ((net_w - new_w) // 2, (net_h - new_h) // 2))

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """The inverse, Darknet's ``correct_yolo_boxes`` (a stretch scales each axis on its own): ``(cx, cy, w, h)`` relative to the network
        input → ``[x1, y1, x2, y2]`` in image pixels, not yet clipped (Darknet's NMS sees them unclipped)."""
        (net_w, net_h), (new_w, new_h), (width, height) = self.net_size, self.new_size, self.image_size
        cx = (boxes[:, 0] - (net_w - new_w) / 2.0 / net_w) / (new_w / net_w)
        cy = (boxes[:, 1] - (net_h - new_h) / 2.0 / net_h) / (new_h / net_h)
        w = boxes[:, 2] * net_w / new_w
        h = boxes[:, 3] * net_h / new_h
        corners = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width,
                            (cy + h / 2) * height], 1)
        return corners.astype(np.float32)
