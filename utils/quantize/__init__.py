"""Keras to int8 TFLite: the pipeline (one call), calibration set, range methods and auto, quantizer,
Edge TPU compatibility check, quantization debugger."""
