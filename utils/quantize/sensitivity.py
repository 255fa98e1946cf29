"""How fragile an int8 model's detections are to one-step rounding differences.

Kernel sets that round differently (``utils.quantize.kernel_rounding``) give values that differ by
a step after each rescaling op, and the differences grow through the network. ``step_sensitivity``
runs the model in numpy (``utils.quantize.numpy_kernels``) with a share of every rescaling op's
rounded values moved by one step at random, and counts the detections that change. A model whose
detections sit on decision edges changes many: it will disagree between machines, and with the
Edge TPU, about as much.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from utils.quantize.numpy_kernels import Graph, run
from utils.yolo.adapter import postprocess
from utils.yolo.meta import YoloMeta
from utils.yolo.nms import iou_matrix
from utils.yolo.types import Detections, HeadOutput, Letterbox

MOVED_SHARE = 0.1  # of each rescaling op's values, half a step up, half down
SEEDS = 2


def unmatched(a: Detections, b: Detections, iou: float = 0.5) -> int:
    """Detections of ``a`` and ``b`` left over after pairing same-class boxes with IoU >= ``iou``,
    best pairs first."""
    if not len(a) or not len(b):
        return len(a) + len(b)
    overlap = np.where(a.class_ids[:, None] == b.class_ids[None, :], iou_matrix(a.boxes, b.boxes), 0)
    pairs = 0
    while overlap.size and overlap.max() >= iou:
        i, j = np.unravel_index(overlap.argmax(), overlap.shape)
        pairs += 1
        overlap[i, :], overlap[:, j] = 0, 0
    return len(a) + len(b) - 2 * pairs


def step_mover(rng: np.random.Generator, share: float):
    """A perturbation for ``numpy_kernels.run``: ``share`` of the values one step up or down."""
    return lambda values: values + rng.choice([-1, 0, 1], values.shape, p=[share / 2, 1 - share, share / 2])


def step_sensitivity(model: Path, inputs: list[np.ndarray], boxes: list[Letterbox], meta: YoloMeta,
                     schemes: dict[str, str], threshold: float = 0.25, iou: float = 0.45,
                     share: float = MOVED_SHARE, seeds: int = SEEDS) -> tuple[float, int]:
    """(changed per detection, detections): the mean number of detections at ``threshold`` that
    appear, vanish or change class when ``share`` of every rescaling op's values move by one step
    (over ``seeds`` draws), per detection of the unmoved run. ``inputs`` are the model's input
    tensors, ``schemes`` the kernel set's (``kernel_rounding.by_op``)."""
    graph = Graph(model)
    by_grid = {tuple(graph.graph.tensors[i].shape[2:0:-1]): i for i in graph.graph.outputs}
    heads = [by_grid[tuple(head.grid)] for head in meta.heads]  # in meta's order, as YoloAdapter orders them

    def detect(tensor, box, perturb=None) -> Detections:
        values = run(graph, tensor, schemes, perturb)
        found = [HeadOutput(values[graph.name(i)], float(graph.quantization(i)[0][0]), int(graph.quantization(i)[1][0]))
                 for i in heads]
        return postprocess(found, meta, box, threshold, iou)

    reference = [detect(tensor, box) for tensor, box in zip(inputs, boxes)]
    changed = 0
    for seed in range(seeds):
        mover = step_mover(np.random.default_rng(seed), share)
        changed += sum(unmatched(found, detect(tensor, box, mover)) for tensor, box, found in zip(inputs, boxes, reference))
    total = sum(len(d) for d in reference)
    return changed / seeds / max(total, 1), total
