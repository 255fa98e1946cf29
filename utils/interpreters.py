"""Which TFLite interpreter to use (LiteRT, tflite_runtime or TensorFlow's) and which CPU kernels it runs.

Kernel sets give different int8 results (rounding differs), so the choice is explicit:

- ``xnnpack``: XNNPACK where the runtime applies it (LiteRT and TensorFlow, int8 and float); fastest.
- ``builtin``: TFLite's optimised built-in kernels, no default delegate. tflite_runtime 2.14 runs
  int8 models on these whatever it is asked, so it is that runtime's default.
- ``reference``: TFLite's reference kernels; slow, for checking.
"""
from __future__ import annotations

import importlib
from typing import NamedTuple

from .errors import UserError

RUNTIMES = ("litert", "tflite_runtime", "tensorflow")
KERNELS = ("xnnpack", "builtin", "reference")
_MODULES = {"litert": "ai_edge_litert.interpreter", "tflite_runtime": "tflite_runtime.interpreter"}
_PACKAGES = {"litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "tensorflow-cpu"}
_RESOLVERS = {"xnnpack": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}


class InterpreterApi(NamedTuple):
    interpreter_class: type
    load_delegate: object   # the runtime's load_delegate(library, options)
    resolver_types: object  # its OpResolverType enum
    runtime: str

    def default_kernels(self) -> str:
        return "builtin" if self.runtime == "tflite_runtime" else "xnnpack"

    def interpreter(self, kernels: str | None = None, **options):
        """An Interpreter running ``kernels`` (default: the runtime's own); ``options`` as Interpreter's."""
        resolver = getattr(self.resolver_types, _RESOLVERS[kernels or self.default_kernels()])
        return self.interpreter_class(experimental_op_resolver_type=resolver, **options)


def _tensorflow_lite():
    import tensorflow as tf  # tf.lite is an attribute of the API module, not an importable package
    return tf.lite


def _api(name: str) -> InterpreterApi:
    if name == "tensorflow":
        lite = _tensorflow_lite()
        return InterpreterApi(lite.Interpreter, lite.experimental.load_delegate, lite.experimental.OpResolverType, name)
    module = importlib.import_module(_MODULES[name])
    return InterpreterApi(module.Interpreter, module.load_delegate, module.OpResolverType, name)


def interpreter_api(runtime: str = "auto") -> InterpreterApi:
    """The runtime's interpreter API; "auto" prefers LiteRT, then tflite_runtime, then TensorFlow."""
    for name in (RUNTIMES if runtime == "auto" else (runtime,)):
        try:
            return _api(name)
        except ImportError as error:
            if runtime != "auto":
                raise UserError(f"runtime {name} is not installed ({error}); pip install {_PACKAGES[name]}") from None
    raise UserError("no TFLite runtime installed: pip install -r requirements-infer.txt "
                    "(or requirements-tflite-runtime.txt)")
