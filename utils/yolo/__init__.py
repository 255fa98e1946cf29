"""YOLO on top of the runtime: value types, metadata, letterbox, decode, NMS, the adapter, the Detector and drawing."""
