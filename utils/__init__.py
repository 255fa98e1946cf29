"""Shared code of tinyyolo-edgetpu: Darknet parsing, model building, pre- and post-processing.

The inference path never imports TensorFlow, even where it is installed: it would add a second
or more to every start. Code that loads Keras models imports ``utils.keras_layers`` first.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter, if it is imported
