"""Detection helpers shared by the quantization and inference tests."""
from pathlib import Path

import cv2

from utils.evaluation.fidelity import keras_detect
from utils.yolo.detector import Detector
from utils.yolo.meta import load_meta_file, sidecar_paths


def as_list(detections) -> list[tuple]:
    return [(int(c), float(s), [float(v) for v in b])
            for b, s, c in zip(detections.boxes, detections.scores, detections.class_ids)]


def tflite_detections(model_path: Path, image_paths, threshold=0.25, resize=None) -> dict[str, list[tuple]]:
    detector = Detector(model_path, threshold=threshold, resize=resize)
    return {p.name: as_list(detector.detect(cv2.imread(str(p)))) for p in image_paths}


def keras_detections(h5: Path, image_paths, threshold=0.25) -> dict[str, list[tuple]]:
    import keras

    import utils.runtime.keras_layers  # noqa: F401  (registers the custom layers)
    model = keras.models.load_model(h5, compile=False)
    meta = load_meta_file(sidecar_paths(h5)[0])
    return {p.name: as_list(keras_detect(model, meta, cv2.imread(str(p)), threshold)) for p in image_paths}
