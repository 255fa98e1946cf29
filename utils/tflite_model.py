"""Read and edit ``.tflite`` flatbuffers (no TensorFlow needed: LiteRT ships the schema)."""
from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from .errors import UserError
from .files import atomic_output, require_file

OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
TYPE_NAMES = {code: name.lower() for name, code in vars(schema.TensorType).items() if not name.startswith("_")}
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"


# What flatbuffers' Python reader raises on offsets that point past the end of a truncated file.
_CORRUPT = (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError, AttributeError)
ROOT = Path(__file__).resolve().parents[1]


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a ``.tflite`` file, checked for the TFLite identifier and a complete structure."""
    path = require_file(path, "model")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"model {path}: cannot read ({error.strerror})") from None
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UserError(f"model {path}: not a TFLite flatbuffer")
    try:
        _walk(data)
    except _CORRUPT:
        raise UserError(f"model {path}: truncated or corrupt TFLite file ({len(data):,} bytes)") from None
    return data


def _walk(data: bytes) -> None:
    """Touch every table and buffer the tools read, so that a truncated file fails here."""
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        if buffer.DataLength() and buffer.DataAsNumpy().size != buffer.DataLength():
            raise ValueError("short buffer")
    for i in range(model.OperatorCodesLength()):
        model.OperatorCodes(i).CustomCode()
    for i in range(model.MetadataLength()):
        model.Metadata(i).Name()
    if model.SubgraphsLength() < 1:
        raise ValueError("no subgraph")
    graph = model.Subgraphs(0)
    for i in range(graph.TensorsLength()):
        graph.Tensors(i).ShapeAsNumpy()
    for i in range(graph.OperatorsLength()):
        graph.Operators(i).InputsAsNumpy()


def load(path: str | Path) -> schema.ModelT:
    """The whole model in flatbuffers' object API, for editing."""
    return schema.ModelT.InitFromPackedBuf(read_bytes(path), 0)


def smoke_test(path: Path) -> None:
    """Load and invoke the model once in a child process, so that a model the interpreter rejects
    or crashes on is caught before it replaces anything."""
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from utils.interpreters import interpreter_api\n"
            "interpreter = interpreter_api()[0](model_path=sys.argv[2], num_threads=1)\n"
            "interpreter.allocate_tensors()\n"
            "interpreter.invoke()\n")
    result = subprocess.run([sys.executable, "-c", code, str(ROOT), str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1][:160] if result.returncode > 0 and lines else f"the interpreter crashed, status {result.returncode}"
        raise UserError(f"the written model does not run ({reason}); nothing was written")


def save(model: schema.ModelT, path: str | Path, check: bool = False) -> None:
    """Pack ``model`` and write it atomically; with ``check``, only once it loads and runs."""
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with atomic_output(path, smoke_test if check else None) as tmp:
        tmp.write_bytes(builder.Output())


def builtin_code(op_code) -> int:
    """An operator code's builtin op (new field, falling back to the deprecated byte)."""
    code = op_code.BuiltinCode() if hasattr(op_code, "BuiltinCode") else op_code.builtinCode
    deprecated = (op_code.DeprecatedBuiltinCode() if hasattr(op_code, "DeprecatedBuiltinCode")
                  else op_code.deprecatedBuiltinCode)
    return max(code, deprecated)


def read_metadata(data: bytes, name: str) -> bytes | None:
    """The metadata buffer called ``name``, read without unpacking the model."""
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == name:
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None


def set_metadata(model: schema.ModelT, name: str, payload: bytes) -> None:
    """Add or replace the metadata buffer called ``name``."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, np.uint8).copy()
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = name, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if (m.name or b"").decode() != name] + [entry]


def is_compiled_for_edgetpu(data: bytes) -> bool:
    """True when the model holds an ``edgetpu-custom-op`` (output of edgetpu_compiler)."""
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.OperatorCodesLength()):
        custom = model.OperatorCodes(i).CustomCode()
        if custom and custom.decode() == EDGETPU_CUSTOM_OP:
            return True
    return False
