"""Per-class non-maximum suppression with Darknet's greedy semantics, vectorised in blocks.

Darknet (``box.c``) sorts each class by score and lets every box that is still kept suppress the
later boxes that overlap it too much; a suppressed box suppresses nothing. The overlap is IoU
(``do_nms_sort``) or, for models whose ``[yolo]`` sets ``nms_kind``, DIoU-NMS (``diounms_sort``):
``IoU - (d^2 / c^2) ** beta``, with ``d`` the distance between the centres and ``c`` the diagonal of
the box enclosing both, measured as Darknet measures them: relative to the image's width and height.

Only boxes of similar size and nearby centres can suppress each other, so the pairs to measure
come from sweeps over boxes sorted by centre x within horizontal bands, in chunks of bounded size, and the greedy pass walks the few pairs that
overlap too much: memory stays bounded and the work small even when an untrained model gives
tens of thousands of candidates.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

from utils.yolo.types import Detections

PAIR_CHUNK = 1 << 20  # pairs measured at once: bounds memory whatever the candidate count
STRIPS_FROM = 1024  # boxes in a class from which the sweep runs in horizontal bands (measured)
SMALL = 64  # up to this many detections, all same-class pairs are measured directly


def iou_matrix(boxes: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
    """IoU of every ``[x1, y1, x2, y2]`` box in ``boxes`` with every box in ``others`` (default: itself)."""
    others = boxes if others is None else others
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    other_area = np.maximum(others[:, 2] - others[:, 0], 0) * np.maximum(others[:, 3] - others[:, 1], 0)
    inter_w = np.maximum(np.minimum(boxes[:, None, 2], others[:, 2]) - np.maximum(boxes[:, None, 0], others[:, 0]), 0)
    inter_h = np.maximum(np.minimum(boxes[:, None, 3], others[:, 3]) - np.maximum(boxes[:, None, 1], others[:, 1]), 0)
    inter = inter_w * inter_h
    union = area[:, None] + other_area - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _sweep(keys: np.ndarray, windows: np.ndarray, limit: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs (i, j) with keys[i] <= keys[j] <= keys[i] + windows[i], each once, in chunks of about
    ``limit`` pairs (i, j index ``keys``)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    ends = np.searchsorted(ordered, ordered + windows[order], side="right")
    counts = np.maximum(ends - np.arange(1, len(keys) + 1), 0)
    totals = np.cumsum(counts)
    first = 0
    while first < len(keys):
        last = max(int(np.searchsorted(totals, (totals[first - 1] if first else 0) + limit, side="right")), first + 1)
        chunk = counts[first:last]
        position = np.repeat(np.arange(first, last), chunk)
        step = np.arange(chunk.sum()) - np.repeat(np.cumsum(chunk) - chunk, chunk)
        yield order[position], order[position + 1 + step]
        first = last


def _candidate_pairs(boxes: np.ndarray, threshold: float, limit: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A superset of the pairs whose IoU can exceed ``threshold``, each once, in chunks.

    With widths M >= m, IoU > t needs an x overlap of at least t * M, so |dcx| <= (M + m) / 2 - t * M
    <= reach * m, with reach = max(1/2, (1 - t) / (2 t)); the same holds for heights and centre y.
    Boxes go into horizontal strips of height S: a pair with a "short" box (reach * h <= S) lies in
    one strip or two adjacent ones, so a sweep over centre x runs in each band of two strips (a
    pair counted in the band of its lower strip); pairs of two tall boxes get a sweep of their own.
    """
    reach = np.float32(max(0.5, (1 - threshold) / (2 * threshold)))
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    if len(boxes) <= STRIPS_FROM:  # strips pay only for many boxes
        yield from _sweep(centre_x, reach * width, limit)
        return
    strip_height = max(float(reach * np.quantile(height, 0.75)), 1e-9)
    strip = np.floor((centre_y - centre_y.min()) / strip_height).astype(np.int64)
    tall = np.flatnonzero(reach * height > strip_height)
    for i, j in _sweep(centre_x[tall], reach * width[tall], limit):
        yield tall[i], tall[j]
    # Each box joins the band of its own strip and the band below; keys keep bands apart.
    span = float(centre_x.max() - centre_x.min() + reach * width.max()) + 1.0
    members = np.concatenate([np.arange(len(boxes)), np.arange(len(boxes))])
    bands = np.concatenate([strip, strip - 1])
    keys = bands * span + (centre_x[members] - centre_x.min())
    is_tall = reach * height > strip_height
    for i, j in _sweep(keys, reach * width[members], limit):
        band = bands[i]
        a, b = members[i], members[j]
        own = (np.minimum(strip[a], strip[b]) == band) & ~(is_tall[a] & is_tall[b]) & (a != b)
        yield a[own], b[own]


def _pair_iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of boxes[k] with others[k], as ``iou_matrix`` computes it."""
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    other_area = np.maximum(others[:, 2] - others[:, 0], 0) * np.maximum(others[:, 3] - others[:, 1], 0)
    inter = (np.maximum(np.minimum(boxes[:, 2], others[:, 2]) - np.maximum(boxes[:, 0], others[:, 0]), 0)
             * np.maximum(np.minimum(boxes[:, 3], others[:, 3]) - np.maximum(boxes[:, 1], others[:, 1]), 0))
    union = area + other_area - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def overlapping_pairs(boxes: np.ndarray, others: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with IoU(boxes[i], others[j]) >= ``threshold`` (above 0), in no particular order.

    Only pairs that can qualify are measured (``_candidate_pairs`` over both sets at once), so two
    sets of tens of thousands of boxes (an untrained model's) need neither a full matrix nor minutes.
    """
    both = np.concatenate([boxes, others]).astype(np.float32)
    count = len(boxes)
    firsts, seconds = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for i, j in _candidate_pairs(both, threshold * (1 - 1e-6), PAIR_CHUNK):  # its bound is for IoU > t
        a, b = np.minimum(i, j), np.maximum(i, j)
        cross = (a < count) & (b >= count)
        a, b = a[cross], b[cross] - count
        close = _pair_iou(boxes[a], others[b]) >= threshold
        firsts.append(a[close])
        seconds.append(b[close])
    return np.concatenate(firsts), np.concatenate(seconds)


@functools.lru_cache(maxsize=SMALL + 1)
def _pairs(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i, j) of ``count`` ranks with i < j, ordered by i (read-only, shared)."""
    i, j = np.triu_indices(count, 1)
    i.flags.writeable = j.flags.writeable = False
    return i, j


def _overlapping(boxes: np.ndarray, i: np.ndarray, j: np.ndarray, threshold: float, kind: str,
                 beta: float) -> np.ndarray:
    """Which pairs (i, j) overlap more than ``threshold``: IoU > t tested as
    ``inter * (1 + t) > t * (area_a + area_b)``; DIoU > t needs IoU > t first (its penalty is never
    negative), so the penalty is computed for those pairs alone."""
    t = np.float32(threshold)
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    area_i = np.maximum(x2[i] - x1[i], 0) * np.maximum(y2[i] - y1[i], 0)
    area_j = np.maximum(x2[j] - x1[j], 0) * np.maximum(y2[j] - y1[j], 0)
    inter = (np.maximum(np.minimum(x2[i], x2[j]) - np.maximum(x1[i], x1[j]), 0)
             * np.maximum(np.minimum(y2[i], y2[j]) - np.maximum(y1[i], y1[j]), 0))
    over = inter * (1 + t) > t * (area_i + area_j)
    if kind == "diou":  # box_diounms: IoU - (d^2 / c^2) ** beta; c > 0 where they overlap
        i, j, inter = i[over], j[over], inter[over]
        iou = inter / (area_i[over] + area_j[over] - inter)
        distance = ((x1[i] + x2[i]) / 2 - (x1[j] + x2[j]) / 2) ** 2 + ((y1[i] + y2[i]) / 2 - (y1[j] + y2[j]) / 2) ** 2
        diagonal = ((np.maximum(x2[i], x2[j]) - np.minimum(x1[i], x1[j])) ** 2
                    + (np.maximum(y2[i], y2[j]) - np.minimum(y1[i], y1[j])) ** 2)
        over[over] = iou - (distance / diagonal) ** np.float32(beta) > t
    return over


def _suppressions(boxes: np.ndarray, threshold: float, kind: str, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """(earlier, later) score ranks of the pairs whose overlap exceeds ``threshold``. Only pairs that
    can qualify are measured: near in x (``_candidate_pairs``), then near in y by the same bound."""
    reach = np.float32(max(0.5, (1 - threshold) / (2 * threshold)))
    centre_y, height = (boxes[:, 1] + boxes[:, 3]) / 2, boxes[:, 3] - boxes[:, 1]
    earlier, later = [], []
    for i, j in _candidate_pairs(boxes, threshold, PAIR_CHUNK):
        near = np.abs(centre_y[i] - centre_y[j]) <= reach * np.minimum(height[i], height[j])
        i, j = i[near], j[near]
        over = _overlapping(boxes, i, j, threshold, kind, beta)
        earlier.append(np.minimum(i[over], j[over]))
        later.append(np.maximum(i[over], j[over]))
    return np.concatenate(earlier), np.concatenate(later)


def _greedy(count: int, earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """Darknet's greedy pass over score-ordered boxes, given the (earlier, later) pairs that overlap
    too much: each box still kept suppresses the later boxes it overlaps."""
    keep = np.ones(count, bool)
    order = np.argsort(earlier, kind="stable")
    earlier, later = earlier[order], later[order]
    sources, starts = np.unique(earlier, return_index=True)
    ends = np.r_[starts[1:], len(earlier)]
    for source, start, end in zip(sources.tolist(), starts.tolist(), ends.tolist()):
        if keep[source]:
            keep[later[start:end]] = False
    return keep


def nms(detections: Detections, iou_threshold: float = 0.45, kind: str = "iou", beta: float = 0.6,
        image_size: tuple[int, int] = (1, 1)) -> Detections:
    """Keep, per class, each box that no higher-scoring kept box of its class overlaps by more than the
    threshold. ``kind`` is "iou" or "diou" (then ``beta`` and ``image_size``, for Darknet's relative
    coordinates). Returns the kept detections by descending score."""
    if len(detections) < 2:
        return detections
    boxes = detections.boxes
    if kind == "diou":  # Darknet measures the DIoU penalty relative to the image's width and height
        boxes = boxes / np.array([*image_size, *image_size], np.float32)
    order = np.lexsort((-detections.scores, detections.class_ids))  # by class, then descending score
    classes = detections.class_ids[order]
    keep = np.zeros(len(detections), bool)
    if len(detections) <= SMALL:  # a usual frame: every same-class pair at once, no sweep
        i, j = _pairs(len(order))
        same = classes[i] == classes[j]
        i, j = i[same], j[same]
        over = _overlapping(boxes[order], i, j, iou_threshold, kind, beta)
        kept = np.ones(len(order), bool)
        for earlier, later in zip(i[over].tolist(), j[over].tolist()):  # by earlier rank: its fate is known
            if kept[earlier]:
                kept[later] = False
        keep[order] = kept
    else:
        starts = np.flatnonzero(np.r_[True, classes[1:] != classes[:-1], True])
        for first, last in zip(starts[:-1], starts[1:]):
            members = order[first:last]
            earlier, later = _suppressions(boxes[members], iou_threshold, kind, beta)
            keep[members] = _greedy(len(members), earlier, later)
    by_score = np.argsort(-detections.scores, kind="stable")
    return detections.take(by_score[keep[by_score]])
