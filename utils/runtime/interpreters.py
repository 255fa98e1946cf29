"""Which TFLite interpreter to use (LiteRT, tflite_runtime or TensorFlow's) and which CPU kernels it runs.

Kernel sets give different int8 results (rounding differs), so the choice is explicit:

- ``xnnpack``: XNNPACK where the runtime applies it (LiteRT and TensorFlow, int8 and float); fastest.
- ``builtin``: TFLite's optimised built-in kernels, no default delegate. tflite_runtime 2.14 runs
  int8 models on these whatever it is asked, so it is that runtime's default.
- ``reference``: TFLite's reference kernels; slow, for checking.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from utils.console import native_stderr_hidden
from utils.errors import UserError

RUNTIMES = ("litert", "tflite_runtime", "tensorflow")
KERNELS = ("xnnpack", "builtin", "reference")
_MODULES = {"litert": "ai_edge_litert.interpreter", "tflite_runtime": "tflite_runtime.interpreter"}
_PACKAGES = {"litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "-r requirements-convert.txt"}
_RESOLVERS = {"xnnpack": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}


class InterpreterApi(NamedTuple):
    interpreter_class: type
    load_delegate: object   # the runtime's load_delegate(library, options)
    resolver_types: object  # its OpResolverType enum
    runtime: str

    def default_kernels(self) -> str:
        return "builtin" if self.runtime == "tflite_runtime" else "xnnpack"

    def interpreter(self, kernels: str | None = None, **options):
        """An Interpreter running ``kernels`` (default: the runtime's own), its tensors allocated;
        ``options`` as Interpreter's. LiteRT's "Created TensorFlow Lite XNNPACK delegate" line is
        not printed unless library messages were asked for (``console.quiet_libraries``)."""
        resolver = getattr(self.resolver_types, _RESOLVERS[kernels or self.default_kernels()])
        with native_stderr_hidden():
            interpreter = self.interpreter_class(experimental_op_resolver_type=resolver, **options)
            interpreter.allocate_tensors()
        return interpreter


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


ROOT = Path(__file__).resolve().parents[2]  # the repository, for the child process's imports


def smoke_test(path: Path) -> None:
    """Load and invoke the model once in a child process, so that a model the interpreter rejects
    or crashes on is caught before it replaces anything."""
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from utils.runtime.interpreters import interpreter_api\n"
            "interpreter = interpreter_api().interpreter(model_path=sys.argv[2], num_threads=1)\n"
            "interpreter.invoke()\n")
    result = subprocess.run([sys.executable, "-c", code, str(ROOT), str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1][:160] if result.returncode > 0 and lines else f"the interpreter crashed, status {result.returncode}"
        raise UserError(f"the written model does not run ({reason}); nothing was written")
