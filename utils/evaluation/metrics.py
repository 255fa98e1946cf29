"""Detection accuracy: mAP@0.5 as Darknet's ``detector map`` computes it, and COCO's mAP@[.5:.95]
through pycocotools.

Darknet (``validate_detector_map``): every detection above 0.005 after NMS, all images, sorted by
score; each is matched to the ground-truth box of its class with the highest IoU, if that IoU is
above 0.5; a truth box already taken makes it a false positive. AP is the area under the
precision envelope at each recall step ("Area-Under-Curve for each unique Recall"). Precision,
recall and F1 are also given at one score threshold. Darknet divides the AP sum by every class
of the names file; ``map50`` here averages the classes that occur in the ground truth (as COCO
does), so a validation set without some classes is not penalised for them, and
``map50_all_classes`` is Darknet's figure.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np

from utils.errors import UserError
from utils.yolo.nms import iou_matrix
from utils.yolo.types import Detections

IOU_THRESHOLD = 0.5


@dataclass
class ClassResult:
    class_id: int
    truths: int
    ap50: float
    precision: float   # at the score threshold
    recall: float
    true_positives: int
    false_positives: int
    curve: dict = field(default_factory=dict)   # pr_curve's points


@dataclass
class Result:
    images: int
    classes: list[ClassResult]   # the classes with ground truth
    class_count: int             # of the names file
    map50_95: float | None = None
    # Detections above the score threshold of classes with no ground truth: false positives all,
    # which Darknet's detector map counts in P and F1 too.
    other_class_false_positives: int = 0
    curve: dict = field(default_factory=dict)    # all classes together (micro-averaged)

    @property
    def map50(self) -> float:
        return float(np.mean([c.ap50 for c in self.classes])) if self.classes else 0.0

    @property
    def map50_all_classes(self) -> float:
        return float(sum(c.ap50 for c in self.classes) / self.class_count)

    def totals(self) -> tuple[float, float, float]:
        """(precision, recall, F1) at the score threshold, over all classes."""
        tp = sum(c.true_positives for c in self.classes)
        fp = sum(c.false_positives for c in self.classes) + self.other_class_false_positives
        truths = sum(c.truths for c in self.classes)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / truths if truths else 0.0
        return precision, recall, 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def match(detections: Detections, truth_boxes: np.ndarray, truth_classes: np.ndarray, ignored: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """Per detection of one image: (index of its best same-class truth with IoU > 0.5, else -1;
    whether that truth is ignored, a COCO crowd region)."""
    best = np.full(len(detections), -1)
    if not len(detections) or not len(truth_boxes):
        return best, np.zeros(len(detections), bool)
    overlap = iou_matrix(detections.boxes, truth_boxes)
    overlap[detections.class_ids[:, None] != truth_classes[None, :]] = 0
    candidate = overlap.argmax(1)
    found = overlap[np.arange(len(detections)), candidate] > IOU_THRESHOLD
    best[found] = candidate[found]
    return best, found & ignored[candidate]


def average_precision(true_positive: np.ndarray, truths: int) -> float:
    """Area under the precision envelope, for detections sorted by score (Darknet's AUC)."""
    if truths == 0 or true_positive.size == 0:
        return 0.0
    tp = np.cumsum(true_positive)
    fp = np.cumsum(~true_positive)
    recall = tp / truths
    precision = tp / (tp + fp)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope))


def pr_curve(hits: np.ndarray, scores: np.ndarray, truths: int) -> dict:
    """The precision–recall curve of detections sorted by score, as ``average_precision`` integrates it:
    at each true positive (where recall steps up) and at the last detection, the recall, the precision
    envelope and the score there (4 decimals). Empty without truths or detections."""
    if truths == 0 or hits.size == 0:
        return {"recall": [], "precision": [], "score": []}
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, hits.size + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.union1d(np.flatnonzero(hits), [hits.size - 1])
    return {"recall": np.round(tp[points] / truths, 4).tolist(), "precision": np.round(envelope[points], 4).tolist(),
            "score": np.round(scores[points].astype(np.float64), 4).tolist()}


def evaluate(truths: list[tuple[np.ndarray, np.ndarray, np.ndarray]], detections: list[Detections],
             class_count: int, threshold: float = 0.25) -> Result:
    """``truths``: per image (pixel boxes, class ids, ignored flags); ``detections`` of the same
    images (everything above Darknet's 0.005). AP per class with ground truth, and P/R at ``threshold``."""
    scores, classes, keys = [], [], []
    for image, (found, (boxes, class_ids, ignored)) in enumerate(zip(detections, truths)):
        best, crowd = match(found, boxes, class_ids, ignored)
        keep = ~crowd
        scores.append(found.scores[keep])
        classes.append(found.class_ids[keep])
        keys.append(np.where(best[keep] >= 0, image * 1_000_000 + best[keep], -1))
    scores, classes, keys = np.concatenate(scores), np.concatenate(classes), np.concatenate(keys)
    order = np.argsort(-scores, kind="stable")
    scores, classes, keys = scores[order], classes[order], keys[order]
    # A truth box is a true positive for its first (highest-scoring) detection only.
    first = np.zeros(len(keys), bool)
    matched = np.flatnonzero(keys >= 0)
    _, first_of_each = np.unique(keys[matched], return_index=True)
    first[matched[first_of_each]] = True
    counts = np.zeros(class_count, np.int64)
    for _, class_ids, ignored in truths:
        np.add.at(counts, class_ids[~ignored], 1)
    results = []
    for class_id in np.flatnonzero(counts):
        mine = classes == class_id
        hits = first[mine]
        above = scores[mine] > threshold  # Darknet: prob > thresh
        tp, fp = int((hits & above).sum()), int((~hits & above).sum())
        results.append(ClassResult(int(class_id), int(counts[class_id]), average_precision(hits, int(counts[class_id])),
                                   tp / (tp + fp) if tp + fp else 0.0, tp / counts[class_id], tp, fp,
                                   pr_curve(hits, scores[mine], int(counts[class_id]))))
    other_class = int(((scores > threshold) & (counts[classes] == 0)).sum()) if len(classes) else 0
    labelled = counts[classes] > 0 if len(classes) else np.zeros(0, bool)
    overall = pr_curve(first[labelled], scores[labelled], int(counts.sum()))
    return Result(len(detections), results, class_count, other_class_false_positives=other_class, curve=overall)


def coco_map(truths: list[tuple[np.ndarray, np.ndarray, np.ndarray]], detections: list[Detections],
             sizes: list[tuple[int, int]]) -> float:
    """COCO's mAP@[.5:.95] (pycocotools, 100 detections per image) of the same data."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise UserError("COCO mAP needs pycocotools: pip install pycocotools (or -r requirements-infer.txt)") from None
    images, annotations, results = [], [], []
    for image_id, ((boxes, class_ids, ignored), found, (width, height)) in enumerate(zip(truths, detections, sizes)):
        images.append({"id": image_id, "width": width, "height": height})
        for (x1, y1, x2, y2), class_id, crowd in zip(boxes.tolist(), class_ids.tolist(), ignored.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": class_id,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "iscrowd": int(crowd)})
        for (x1, y1, x2, y2), score, class_id in zip(found.boxes.tolist(), found.scores.tolist(),
                                                     found.class_ids.tolist()):
            results.append({"image_id": image_id, "category_id": class_id, "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": score})
    if not annotations or not results:
        return 0.0
    categories = sorted({a["category_id"] for a in annotations} | {r["category_id"] for r in results})
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ground = COCO()
        ground.dataset = {"images": images, "annotations": annotations,
                          "categories": [{"id": c, "name": str(c)} for c in categories]}
        ground.createIndex()
        found = ground.loadRes(results)
        evaluation = COCOeval(ground, found, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return max(float(evaluation.stats[0]), 0.0)


def agreement(reference: list[Detections], found: list[Detections], sizes: list[tuple[int, int]],
              classes: int = 80) -> tuple[float, float]:
    """(mAP@0.5, mAP@[.5:.95]) of ``found`` with ``reference``'s detections as the ground truth."""
    truths = [(d.boxes, d.class_ids, np.zeros(len(d), bool)) for d in reference]
    return evaluate(truths, found, classes).map50, coco_map(truths, found, sizes)
