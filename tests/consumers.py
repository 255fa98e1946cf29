"""How the TFLite detection ecosystem feeds a model and reads its outputs, written after each tool's
source so that the tests run `--outputs detections` models the way those tools do (neither tool
installs here: Frigate is a Docker image, pycoral has no wheel for current Pythons).

- Frigate's Edge TPU detector, ``frigate/detectors/plugins/edgetpu_tfl.py`` at blakeblackshear/frigate
  commit 021ed5c (``model_type: ssd``): outputs by position (boxes, classes, scores, count), at most
  20 detections, stopping at the first score under 0.4.
- Frigate's input, ``frigate/video.py`` ``create_tensor_input`` and ``frigate/util/image.py``
  ``calculate_region`` (blakeblackshear/frigate, dev branch, 2025): a square region of the I420 frame,
  converted to RGB, resized to the model's size with ``cv2.INTER_LINEAR``.
- pycoral 2.0's ``pycoral/adapters/detect.py`` (google-coral/pycoral commit 46f06c8): with a signature,
  outputs by name (output_0 count, output_1 scores, output_2 classes, output_3 boxes); without one, by
  position; every entry whose score passes the threshold, boxes scaled to the input size.
"""
from __future__ import annotations

from collections import namedtuple

import cv2
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


def frigate_region(frame_shape: tuple[int, ...], box: tuple[int, int, int, int], model_size: int,
                   multiplier: float = 2) -> tuple[int, int, int, int]:
    """Frigate's ``calculate_region``: a square around ``box`` (x1, y1, x2, y2), at least the model's
    size, moved inside the frame."""
    xmin, ymin, xmax, ymax = box
    size = max(int((max(xmax - xmin, ymax - ymin) * multiplier) // 4 * 4), model_size)
    x_offset = min(max(int((xmax - xmin) / 2.0 + xmin - size / 2.0), 0), max(0, frame_shape[1] - size))
    y_offset = min(max(int((ymax - ymin) / 2.0 + ymin - size / 2.0), 0), max(0, frame_shape[0] - size))
    return x_offset, y_offset, x_offset + size, y_offset + size


def frigate_region_pixels(frame_bgr: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    """The region as Frigate crops it (``yuv_crop_and_resize``): what lies outside the frame is black,
    and a region moved inside the frame starts at its top left (calculate_region keeps offsets >= 0)."""
    x1, y1, x2, y2 = region
    canvas = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
    part = frame_bgr[y1:y2, x1:x2]
    canvas[:part.shape[0], :part.shape[1]] = part
    return canvas


def frigate_tensor_input(region_bgr: np.ndarray, model_size: tuple[int, int]) -> np.ndarray:
    """Frigate's ``create_tensor_input`` (rgb) of a region's pixels: through I420 (as ffmpeg hands
    frames to Frigate) to RGB, resized to the model's size with INTER_LINEAR."""
    rgb = cv2.cvtColor(cv2.cvtColor(region_bgr, cv2.COLOR_BGR2YUV_I420), cv2.COLOR_YUV2RGB_I420)
    if rgb.shape != (model_size[1], model_size[0], 3):
        rgb = cv2.resize(rgb, dsize=model_size, interpolation=cv2.INTER_LINEAR)
    return np.expand_dims(rgb, axis=0)


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


def pycoral_set_input(interpreter, data: np.ndarray) -> None:
    """pycoral 2.0's ``common.set_input``: the data, already of the input's size, into the input tensor."""
    interpreter.tensor(interpreter.get_input_details()[0]["index"])()[0][:, :] = data


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
                                  "pycoral_set_input as set_input, "
                                  "pycoral_set_resized_input as set_resized_input  # noqa: F401\n",
    "pycoral/adapters/detect.py": "from consumers import pycoral_get_objects as get_objects  # noqa: F401\n",
    "pycoral/utils/__init__.py": "",
    "pycoral/utils/edgetpu.py": "from ai_edge_litert.interpreter import Interpreter\n\n\n"
                                "def make_interpreter(path):\n    return Interpreter(model_path=path)\n",
}
