"""Which TFLite interpreter to use: LiteRT, tflite_runtime or TensorFlow's, whichever is installed."""
from __future__ import annotations

import importlib

from .errors import UserError

RUNTIMES = ("litert", "tflite_runtime", "tensorflow")
_MODULES = {"litert": "ai_edge_litert.interpreter", "tflite_runtime": "tflite_runtime.interpreter"}
_PACKAGES = {"litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "tensorflow-cpu"}


def _tensorflow_lite():
    import tensorflow as tf  # tf.lite is an attribute of the API module, not an importable package
    return tf.lite


def interpreter_api(runtime: str = "auto"):
    """(Interpreter class, load_delegate, runtime name); "auto" prefers LiteRT."""
    for name in (RUNTIMES if runtime == "auto" else (runtime,)):
        try:
            module = _tensorflow_lite() if name == "tensorflow" else importlib.import_module(_MODULES[name])
        except ImportError as error:
            if runtime != "auto":
                raise UserError(f"runtime {name} is not installed ({error}); pip install {_PACKAGES[name]}") from None
            continue
        load = getattr(module, "load_delegate", None) or module.experimental.load_delegate
        return module.Interpreter, load, name
    raise UserError("no TFLite runtime installed: pip install -r requirements-infer.txt")
