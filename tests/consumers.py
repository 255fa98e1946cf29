"""How the TFLite detection ecosystem reads a model's outputs, written after each tool's source so
that the tests run `--outputs detections` models the way those tools do (neither tool installs here:
Frigate is a Docker image, pycoral has no wheel for current Pythons).

- Frigate's Edge TPU detector, ``frigate/detectors/plugins/edgetpu_tfl.py`` at blakeblackshear/frigate
  commit 021ed5c (``model_type: ssd``): outputs by position (boxes, classes, scores, count), at most
  20 detections, stopping at the first score under 0.4.
- pycoral 2.0's ``pycoral/adapters/detect.py`` (google-coral/pycoral commit 46f06c8): with a signature,
  outputs by name (output_0 count, output_1 scores, output_2 classes, output_3 boxes); without one, by
  position; every entry whose score passes the threshold, boxes scaled to the input size.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

FRIGATE_MIN_SCORE, FRIGATE_MAX_DETECTIONS = 0.4, 20
Object = namedtuple("Object", ["id", "score", "bbox"])       # pycoral's
BBox = namedtuple("BBox", ["xmin", "ymin", "xmax", "ymax"])  # pycoral's, in input pixels


def frigate_detect_raw(interpreter, tensor_input: np.ndarray) -> np.ndarray:
    """Frigate's ``EdgeTpuTfl.detect_raw``: rows of (class id, score, ymin, xmin, ymax, xmax), zeros after."""
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.set_tensor(inputs[0]["index"], tensor_input)
    interpreter.invoke()
    boxes = interpreter.tensor(outputs[0]["index"])()[0]
    class_ids = interpreter.tensor(outputs[1]["index"])()[0]
    scores = interpreter.tensor(outputs[2]["index"])()[0]
    count = int(interpreter.tensor(outputs[3]["index"])()[0])
    detections = np.zeros((FRIGATE_MAX_DETECTIONS, 6), np.float32)
    for i in range(count):
        if scores[i] < FRIGATE_MIN_SCORE or i == FRIGATE_MAX_DETECTIONS:
            break
        detections[i] = [class_ids[i], float(scores[i]), *boxes[i][:4]]
    return detections


def pycoral_get_objects(interpreter, score_threshold: float = -float("inf"),
                        image_scale: tuple[float, float] = (1.0, 1.0)) -> list[Object]:
    """pycoral 2.0's ``detect.get_objects`` (the interpreter already invoked)."""
    signatures = interpreter._get_full_signature_list()
    if signatures:
        if len(signatures) > 1:
            raise ValueError("Only support model with one signature.")
        outputs = signatures[next(iter(signatures))]["outputs"]
        count = int(interpreter.tensor(outputs["output_0"])()[0])  # noqa: F841  (read, as pycoral reads it)
        scores = interpreter.tensor(outputs["output_1"])()[0]
        class_ids = interpreter.tensor(outputs["output_2"])()[0]
        boxes = interpreter.tensor(outputs["output_3"])()[0]
    else:
        details = interpreter.get_output_details()
        boxes, class_ids, scores = (interpreter.tensor(details[i]["index"])()[0] for i in range(3))
    height, width = interpreter.get_input_details()[0]["shape"][1:3]
    sx, sy = width / image_scale[0], height / image_scale[1]

    def make(i: int) -> Object:
        ymin, xmin, ymax, xmax = boxes[i]
        return Object(int(class_ids[i]), float(scores[i]),
                      BBox(int(xmin * sx), int(ymin * sy), int(xmax * sx), int(ymax * sy)))
    return [make(i) for i in range(len(scores)) if scores[i] >= score_threshold]


def pycoral_input_size(interpreter) -> tuple[int, int]:
    """pycoral 2.0's ``common.input_size``: (width, height)."""
    _, height, width, _ = interpreter.get_input_details()[0]["shape"]
    return width, height


def pycoral_set_resized_input(interpreter, size: tuple[int, int], resize):
    """pycoral 2.0's ``common.set_resized_input``: the image scaled to fit, at the top left, zeros around."""
    width, height = pycoral_input_size(interpreter)
    w, h = size
    scale = min(width / w, height / h)
    w, h = int(w * scale), int(h * scale)
    tensor = interpreter.tensor(interpreter.get_input_details()[0]["index"])()[0]
    tensor.fill(0)
    _, _, channel = tensor.shape
    result = resize((w, h))
    tensor[:h, :w] = np.reshape(result, (h, w, channel))
    return result, (scale, scale)


PYCORAL_MODULES = {  # the pycoral API the README's snippet calls, backed by the functions above and LiteRT
    "pycoral/__init__.py": "",
    "pycoral/adapters/__init__.py": "",
    "pycoral/adapters/common.py": "from consumers import pycoral_input_size as input_size, "
                                  "pycoral_set_resized_input as set_resized_input  # noqa: F401\n",
    "pycoral/adapters/detect.py": "from consumers import pycoral_get_objects as get_objects  # noqa: F401\n",
    "pycoral/utils/__init__.py": "",
    "pycoral/utils/edgetpu.py": "from ai_edge_litert.interpreter import Interpreter\n\n\n"
                                "def make_interpreter(path):\n    return Interpreter(model_path=path)\n",
}
