"""Draw detections: one colour per class, readable labels, line width scaled to the image."""
from __future__ import annotations

import colorsys

import cv2
import numpy as np

from .yolo_types import Detections


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per class (golden-ratio hue steps)."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_detections(image: np.ndarray, detections: Detections, names: list[str]) -> np.ndarray:
    """Draw boxes and ``label score`` tags on ``image`` in place; returns it.

    A box found for several classes (Darknet keeps "car" and "truck" on one box) is drawn once,
    in its best class's colour, with one tag listing the classes by score.
    """
    height, width = image.shape[:2]
    thickness = max(1, round((width + height) / 600))
    font_scale = max(0.4, (width + height) / 2400)
    if not len(detections):
        return image
    order = np.argsort(-detections.scores, kind="stable")
    boxes = np.round(detections.boxes[order]).astype(int)
    _, first, group = np.unique(boxes, axis=0, return_index=True, return_inverse=True)
    for index in np.sort(first):  # one tag per distinct box, best score first
        members = order[group.ravel() == group.ravel()[index]]
        x1, y1, x2, y2 = boxes[index]
        colour = class_colour(int(detections.class_ids[members[0]]))
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
        label = " | ".join(f"{names[detections.class_ids[m]]} {detections.scores[m]:.2f}" for m in members)
        (text_w, text_h), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = y1 - text_h - baseline - 2 if y1 - text_h - baseline - 2 >= 0 else y1
        cv2.rectangle(image, (x1, top), (x1 + text_w + 2, top + text_h + baseline + 2), colour, cv2.FILLED)
        luminance = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
        text_colour = (0, 0, 0) if luminance > 140 else (255, 255, 255)
        cv2.putText(image, label, (x1 + 1, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    text_colour, thickness, cv2.LINE_AA)
    return image


def draw_fps(image: np.ndarray, fps: float) -> None:
    height, width = image.shape[:2]
    scale = max(0.5, (width + height) / 2000)
    cv2.putText(image, f"{fps:.1f} FPS", (8, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 0), max(2, int(4 * scale)), cv2.LINE_AA)
    cv2.putText(image, f"{fps:.1f} FPS", (8, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
