"""Keras to int8 TFLite: calibration set, quantizer, Edge TPU compatibility check, quantization debugger."""
