"""Read and edit ``.tflite`` flatbuffers (no TensorFlow needed: LiteRT ships the schema)."""
from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from .errors import UserError
from .files import atomic_output, require_file

OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
TYPE_NAMES = {code: name.lower() for name, code in vars(schema.TensorType).items() if not name.startswith("_")}
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a ``.tflite`` file, checked for the TFLite file identifier."""
    path = require_file(path, "model")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UserError(f"model {path}: not a TFLite flatbuffer")
    return data


def load(path: str | Path) -> schema.ModelT:
    """The whole model in flatbuffers' object API, for editing."""
    return schema.ModelT.InitFromPackedBuf(read_bytes(path), 0)


def save(model: schema.ModelT, path: str | Path) -> None:
    """Pack ``model`` and write it atomically."""
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with atomic_output(path) as tmp:
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
