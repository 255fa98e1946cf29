"""``from utils.detector import Detector``: the documented entry point; the code is ``utils.yolo.detector``."""
from utils.yolo.detector import Detector, Timing
from utils.yolo.types import Detection, Detections

__all__ = ["Detection", "Detections", "Detector", "Timing"]
