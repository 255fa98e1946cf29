"""OpenCV 4.x's own Darknet importer as a reference for the converted model's raw heads."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def keras_heads(model_path: Path, x: np.ndarray) -> list[np.ndarray]:
    """The converted Keras model's raw head tensors for the input ``x`` (NHWC float)."""
    import keras

    import utils.runtime.keras_layers  # noqa: F401  (registers the custom layers)
    model = keras.models.load_model(model_path, compile=False)
    outputs = model(x, training=False)
    return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def opencv_heads(cfg: Path, weights: Path, x: np.ndarray) -> list[np.ndarray]:
    """Raw head tensors (what feeds each [yolo]: the conv, or its logistic for new_coords heads)
    from OpenCV 4.x's own Darknet importer, NHWC. OpenCV reads the input size from the cfg."""
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setInput(x.transpose(0, 3, 1, 2).copy())
    layers = set(net.getLayerNames())
    names = []
    for name in net.getUnconnectedOutLayersNames():
        number = int(name.split("_")[1])
        names.append(f"logistic_{number}" if f"logistic_{number}" in layers else f"conv_{number - 1}")
    return [o.transpose(0, 2, 3, 1) for o in net.forward(names)]


def largest_head_difference(ours: list[np.ndarray], reference: list[np.ndarray]) -> tuple[float, float]:
    """(largest |difference|, mean spread of the reference heads) over heads of equal shapes."""
    if [o.shape for o in ours] != [r.shape for r in reference]:
        raise ValueError(f"head shapes differ: {[o.shape for o in ours]} and {[r.shape for r in reference]}")
    largest = max(float(np.abs(o - r).max()) for o, r in zip(ours, reference))
    return largest, float(np.mean([r.std(axis=(1, 2)).mean() for r in reference]))
