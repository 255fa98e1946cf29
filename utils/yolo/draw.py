"""Draw detections: one colour per class, readable labels, line width scaled to the image."""
from __future__ import annotations

import colorsys

import cv2
import numpy as np

from utils.yolo.types import Detections


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per class (golden-ratio hue steps)."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def _overlap(tag: tuple[int, int, int, int], others: list[tuple[int, int, int, int]]) -> int:
    """Pixels of ``tag`` (x, y, w, h) that ``others`` cover, counted once per other tag."""
    x, y, w, h = tag
    return sum(max(0, min(x + w, a + c) - max(x, a)) * max(0, min(y + h, b + d) - max(y, b)) for a, b, c, d in others)


def place_tags(boxes: np.ndarray, sizes: list[tuple[int, int]], width: int, height: int) -> list[tuple[int, int]]:
    """Top-left corners for tags of ``sizes`` (w, h), one per box (x1, y1, x2, y2), in order of priority.

    Each tag goes to the first of: above the box, inside its top, below it, inside its bottom,
    that stays in the image and overlaps no tag placed before it; failing that, where it overlaps
    least. Tags never leave the image.
    """
    placed: list[tuple[int, int, int, int]] = []
    corners = []
    for (x1, y1, _, y2), (w, h) in zip(boxes.tolist(), sizes):
        x = int(min(max(x1, 0), max(width - w, 0)))
        rows = [y for y in (y1 - h, y1, y2, y2 - h) if 0 <= y <= height - h] or [int(min(max(y1, 0), max(height - h, 0)))]
        covered = [_overlap((x, y, w, h), placed) for y in rows]
        y = int(rows[covered.index(0)] if 0 in covered else rows[int(np.argmin(covered))])
        placed.append((x, y, w, h))
        corners.append((x, y))
    return corners


def draw_detections(image: np.ndarray, detections: Detections, names: list[str]) -> np.ndarray:
    """Draw boxes and ``label score`` tags on ``image`` in place; returns it.

    A box found for several classes (Darknet keeps "car" and "truck" on one box) is drawn once,
    in its best class's colour, with one tag listing the classes by score. Every box is drawn
    before any tag, and tags are placed so as not to cover each other (``place_tags``).
    """
    height, width = image.shape[:2]
    thickness = max(1, round((width + height) / 600))
    font_scale = max(0.4, (width + height) / 2400)
    if not len(detections):
        return image
    order = np.argsort(-detections.scores, kind="stable")
    boxes = np.round(detections.boxes[order]).astype(int)
    _, first, group = np.unique(boxes, axis=0, return_index=True, return_inverse=True)
    tags = []  # (box, colour, label), best score first: one tag per distinct box
    for index in np.sort(first):
        members = order[group.ravel() == group.ravel()[index]]
        colour = class_colour(int(detections.class_ids[members[0]]))
        label = " | ".join(f"{names[detections.class_ids[m]]} {detections.scores[m]:.2f}" for m in members)
        tags.append((boxes[index], colour, label))
    for (x1, y1, x2, y2), colour, _ in tags:
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
    sizes = [cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness) for _, _, label in tags]
    extents = [(text_w + 2, text_h + baseline + 2) for (text_w, text_h), baseline in sizes]
    corners = place_tags(np.array([box for box, _, _ in tags]), extents, width, height)
    for (_, colour, label), (x, y), (w, h), ((_, text_h), _) in zip(tags, corners, extents, sizes):
        cv2.rectangle(image, (x, y), (x + w, y + h), colour, cv2.FILLED)
        luminance = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
        text_colour = (0, 0, 0) if luminance > 140 else (255, 255, 255)
        cv2.putText(image, label, (x + 1, y + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    text_colour, thickness, cv2.LINE_AA)
    return image


def draw_fps(image: np.ndarray, fps: float) -> None:
    height, width = image.shape[:2]
    scale = max(0.5, (width + height) / 2000)
    cv2.putText(image, f"{fps:.1f} FPS", (8, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 0), max(2, int(4 * scale)), cv2.LINE_AA)
    cv2.putText(image, f"{fps:.1f} FPS", (8, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
