"""Shared code of tinyyolo-edgetpu, in packages by layer; imports point down only (tests/test_layers.py).

    evaluation, quantize   datasets, mAP, fidelity | calibration, quantizer, Edge TPU check, debugger
    media, darknet         images, frames, sinks, streams | cfg, weights, Keras builder, conversion
    yolo                   types, metadata, letterbox, decode, NMS, adapter, Detector, drawing
    runtime                interpreters, kernels, Edge TPU delegate and devices, engines, pool, pipeline
    tflite                 the flatbuffer schema, reading and editing models
    errors, console, files, machine   at the bottom

``utils.detector``, ``utils.fetch_weights``, ``utils.edgetpu_check``, ``utils.fidelity`` and
``utils.quant_debug`` are the documented short names above them all. The inference path never
imports TensorFlow, even where it is installed: it would add a second or more to every start.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter, if it is imported
