"""Shared code of tinyyolo-edgetpu: Darknet parsing, model building, pre- and post-processing.

Importing the package registers the project's custom Keras layers when TensorFlow is
installed, so that ``keras.models.load_model`` reads models written by ``convert.py``.
The inference path never needs TensorFlow.
"""
import os
from importlib.util import find_spec

if find_spec("tensorflow") is not None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    from . import keras_layers  # noqa: F401  (registration side effect)
