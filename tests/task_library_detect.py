"""Run in the TFLite Task Library's venv (requirements-task-library.txt): its ObjectDetector loads a
model by its metadata alone and detects on images given as .npy RGB arrays; one JSON line per image:
[[class index, label, score, [x, y, width, height]], ...] in the array's pixels.

    python tests/task_library_detect.py MODEL.tflite IMAGE.npy [IMAGE.npy ...]
"""
import json
import sys

import numpy as np
from tflite_support.task import core, processor, vision


def main() -> None:
    options = vision.ObjectDetectorOptions(base_options=core.BaseOptions(file_name=sys.argv[1], num_threads=1),
                                           detection_options=processor.DetectionOptions(max_results=1000))
    detector = vision.ObjectDetector.create_from_options(options)
    for path in sys.argv[2:]:
        pixels = np.load(path)  # kept alive: the TensorImage reads this array's memory without a copy
        result = detector.detect(vision.TensorImage.create_from_array(pixels))
        print(json.dumps([[d.categories[0].index, d.categories[0].category_name, d.categories[0].score,
                           [d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.width,
                            d.bounding_box.height]] for d in result.detections]), flush=True)


if __name__ == "__main__":
    main()
