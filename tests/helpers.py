"""Detection helpers shared by the quantization and inference tests."""
from pathlib import Path

import cv2
import numpy as np

from utils.decode import HeadOutput
from utils.detector import Detector
from utils.nms import nms
from utils.decode import clip_boxes, decode
from utils.preprocess import Preprocessor
from utils.runtime import Model
from utils.yolo_meta import load_meta_file, sidecar_paths


def as_list(detections) -> list[tuple]:
    return [(int(c), float(s), [float(v) for v in b])
            for b, s, c in zip(detections.boxes, detections.scores, detections.class_ids)]


def tflite_detections(model_path: Path, image_paths, threshold=0.25) -> dict[str, list[tuple]]:
    model = Model(model_path)
    detector = Detector(model, model.meta, threshold)
    return {p.name: as_list(detector(cv2.imread(str(p)))[0]) for p in image_paths}


def keras_detections(h5: Path, image_paths, threshold=0.25) -> dict[str, list[tuple]]:
    import keras

    import utils  # noqa: F401
    model = keras.models.load_model(h5, compile=False)
    meta = load_meta_file(sidecar_paths(h5)[0])
    pre = Preprocessor(meta.input_size)
    found = {}
    for path in image_paths:
        x, box = pre(cv2.imread(str(path)))
        outputs = [np.asarray(o) for o in model(x, training=False)]
        by_grid = {(o.shape[2], o.shape[1]): HeadOutput(o) for o in outputs}
        heads = [by_grid[tuple(h.grid)] for h in meta.heads]
        found[path.name] = as_list(clip_boxes(nms(decode(heads, meta, box, threshold)), box.image_size))
    return found
