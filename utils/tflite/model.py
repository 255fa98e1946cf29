"""Read and edit ``.tflite`` flatbuffers.

Reading (what inference needs) uses only ``utils.tflite.schema``; editing uses LiteRT's generated
schema, imported when first needed, so tflite_runtime alone is enough to run a model.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import flatbuffers
import numpy as np

from utils.errors import UserError
from utils.files import atomic_output, require_file
from utils.tflite.schema import BUFFER, METADATA, MODEL, OPERATOR, OPERATOR_CODE, SUBGRAPH, TENSOR, root

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"


# What flatbuffers' Python reader raises on offsets that point past the end of a truncated file.
_CORRUPT = (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError, AttributeError)


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
    model = root(data)
    for buffer in model.nodes(MODEL["buffers"]):
        buffer.vector(BUFFER["data"], flatbuffers.number_types.Uint8Flags)
    for code in model.nodes(MODEL["operator_codes"]):
        code.string(OPERATOR_CODE["custom_code"])
    for entry in model.nodes(MODEL["metadata"]):
        entry.string(METADATA["name"])
    graphs = model.nodes(MODEL["subgraphs"])
    if not graphs:
        raise ValueError("no subgraph")
    for tensor in graphs[0].nodes(SUBGRAPH["tensors"]):
        tensor.vector(TENSOR["shape"])
    for operator in graphs[0].nodes(SUBGRAPH["operators"]):
        operator.vector(OPERATOR["inputs"])


def _schema():
    from ai_edge_litert import schema_py_generated
    return schema_py_generated


def unpack(data: bytes):
    """A model's bytes in flatbuffers' object API (LiteRT's ``schema.ModelT``), for editing."""
    return _schema().ModelT.InitFromPackedBuf(data, 0)


def load(path: str | Path):
    """The whole model at ``path``, unpacked for editing."""
    return unpack(read_bytes(path))


def pack(model) -> bytes:
    """An edited ``schema.ModelT`` as a .tflite file's bytes."""
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def save(model, path: str | Path, verify: Callable[[Path], None] | None = None,
         files: dict[str, str] | None = None) -> None:
    """Pack ``model`` and write it atomically; with ``verify``, only once ``verify(temporary file)``
    has not raised (``utils.runtime.interpreters.smoke_test`` runs it). ``files`` (name: text) are
    packed after the model, as the TFLite Task Library reads associated files."""
    from utils.tflite.task_metadata import with_associated_files
    data = pack(model)
    with atomic_output(path, verify) as tmp:
        tmp.write_bytes(with_associated_files(data, files) if files else data)


def op_name(op_code) -> str:
    """The builtin op of an ``OperatorCodeT`` by name (new field, falling back to the deprecated byte)."""
    code = max(op_code.builtinCode, op_code.deprecatedBuiltinCode)
    names = {value: name for name, value in vars(_schema().BuiltinOperator).items() if not name.startswith("_")}
    return names.get(code, "UNKNOWN")


def type_name(tensor_type: int) -> str:
    names = {value: name.lower() for name, value in vars(_schema().TensorType).items() if not name.startswith("_")}
    return names.get(tensor_type, str(tensor_type))


def read_metadata(data: bytes, name: str) -> bytes | None:
    """The metadata buffer called ``name``, read without unpacking the model."""
    model = root(data)
    for entry in model.nodes(MODEL["metadata"]):
        if entry.string(METADATA["name"]) == name:
            buffer = model.nodes(MODEL["buffers"])[entry.scalar(METADATA["buffer"])]
            return buffer.vector(BUFFER["data"], flatbuffers.number_types.Uint8Flags).tobytes()
    return None


def set_metadata(model, name: str, payload: bytes) -> None:
    """Add or replace the metadata buffer called ``name`` in a ``schema.ModelT``."""
    schema = _schema()
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, np.uint8).copy()
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = name, len(model.buffers) - 1
    named = lambda m: m.name.decode() if isinstance(m.name, bytes) else m.name  # noqa: E731  (unpacked: bytes)
    model.metadata = [m for m in (model.metadata or []) if named(m) != name] + [entry]


def custom_ops(data: bytes) -> set[str]:
    """The names of the model's custom ops."""
    return {name for name in (code.string(OPERATOR_CODE["custom_code"]) for code in root(data).nodes(MODEL["operator_codes"]))
            if name}


def custom_op_options(data: bytes, name: str) -> dict | None:
    """The options (a FlexBuffer map) of the first custom op called ``name``, or None without one."""
    from flatbuffers import flexbuffers

    model = root(data)
    codes = [code.string(OPERATOR_CODE["custom_code"]) for code in model.nodes(MODEL["operator_codes"])]
    for operator in model.nodes(MODEL["subgraphs"])[0].nodes(SUBGRAPH["operators"]):
        if codes[operator.scalar(OPERATOR["opcode_index"])] == name:
            raw = operator.vector(OPERATOR["custom_options"], flatbuffers.number_types.Uint8Flags).tobytes()
            return flexbuffers.Loads(raw) if raw else {}
    return None


_ITEM_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 11: 16}  # TensorType -> bytes (else 4)


def tensor_shapes(data: bytes) -> list[tuple[list[int], int]]:
    """(shape, bytes per element) of every tensor of the main subgraph."""
    graph = root(data).nodes(MODEL["subgraphs"])[0]
    return [(tensor.vector(TENSOR["shape"]).tolist(), _ITEM_BYTES.get(tensor.scalar(TENSOR["type"],
                                                                                     flatbuffers.number_types.Int8Flags), 4))
            for tensor in graph.nodes(SUBGRAPH["tensors"])]


def is_compiled_for_edgetpu(data: bytes) -> bool:
    """True when the model holds an ``edgetpu-custom-op`` (output of edgetpu_compiler)."""
    return EDGETPU_CUSTOM_OP in custom_ops(data)
