"""The few fields of TensorFlow Lite's schema (``schema.fbs``) that inference reads and writes.

Inference must run on tflite_runtime alone, which ships no schema module; the ``flatbuffers``
package and these field numbers are enough. Editing tools (the quantizer, the Edge TPU check) use
LiteRT's full generated schema instead.
"""
from __future__ import annotations

import flatbuffers
import numpy as np
from flatbuffers import number_types as types
from flatbuffers.table import Table

# Field numbers, in schema.fbs order (a field's vtable slot is 4 + 2 * number).
MODEL = {"version": 0, "operator_codes": 1, "subgraphs": 2, "buffers": 4, "metadata": 6}
SUBGRAPH = {"tensors": 0, "inputs": 1, "outputs": 2, "operators": 3}
TENSOR = {"shape": 0, "type": 1, "buffer": 2, "name": 3, "quantization": 4}
QUANTIZATION = {"scale": 2, "zero_point": 3}
OPERATOR = {"opcode_index": 0, "inputs": 1, "outputs": 2, "builtin_options_type": 3, "builtin_options": 4,
            "custom_options": 5}
OPERATOR_CODE = {"deprecated_builtin_code": 0, "custom_code": 1, "version": 2, "builtin_code": 3}
BUFFER = {"data": 0}
METADATA = {"name": 0, "buffer": 1}
RESIZE_BILINEAR_OPTIONS = {"align_corners": 2}

# Enum values used here.
TENSOR_TYPES = {np.dtype(np.float32): 0, np.dtype(np.int32): 2, np.dtype(np.uint8): 3, np.dtype(np.int8): 9}
DEQUANTIZE, RESIZE_BILINEAR = 6, 23
RESIZE_BILINEAR_OPTIONS_TYPE = 15


class Node:
    """A table of a ``.tflite`` flatbuffer, read field by field number."""

    def __init__(self, data: bytes, position: int):
        self._table = Table(data, position)

    def _offset(self, number: int) -> int:
        return self._table.Offset(4 + 2 * number)

    def scalar(self, number: int, flags=types.Uint32Flags, default: int = 0) -> int:
        offset = self._offset(number)
        return self._table.Get(flags, offset + self._table.Pos) if offset else default

    def string(self, number: int) -> str | None:
        offset = self._offset(number)
        return self._table.String(offset + self._table.Pos).decode() if offset else None

    def vector(self, number: int, flags=types.Int32Flags) -> np.ndarray:
        offset = self._offset(number)
        return self._table.GetVectorAsNumpy(flags, offset) if offset else np.zeros(0, flags.py_type)

    def nodes(self, number: int) -> list[Node]:
        """A vector of tables."""
        offset = self._offset(number)
        if not offset:
            return []
        start = self._table.Vector(offset)
        return [Node(self._table.Bytes, self._table.Indirect(start + 4 * i))
                for i in range(self._table.VectorLen(offset))]


def root(data: bytes) -> Node:
    """The ``Model`` table of ``data``."""
    return Node(data, flatbuffers.encode.Get(types.UOffsetTFlags.packer_type, data, 0))


class Writer:
    """Builds a ``Model`` bottom-up: children first, each call returning the offset of what it made."""

    def __init__(self, size: int = 1024):
        self.builder = flatbuffers.Builder(size)

    def _table(self, fields: list[tuple[int, str, object]]) -> int:
        """``fields``: (number, kind, value); kind "offset", "int32", "uint32", "int8", "uint8" or "bool"."""
        b = self.builder
        b.StartObject(max((number for number, _, _ in fields), default=-1) + 1)
        prepend = {"offset": b.PrependUOffsetTRelativeSlot, "int32": b.PrependInt32Slot,
                   "uint32": b.PrependUint32Slot, "int8": b.PrependInt8Slot, "uint8": b.PrependUint8Slot,
                   "bool": b.PrependBoolSlot}
        for number, kind, value in fields:
            prepend[kind](number, value, None)  # no default: every field given is written
        return b.EndObject()

    def _vector(self, offsets: list[int]) -> int:
        b = self.builder
        b.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            b.PrependUOffsetTRelative(offset)
        return b.EndVector()

    def numbers(self, values, dtype) -> int:
        return self.builder.CreateNumpyVector(np.asarray(values, dtype))

    def tensor(self, shape: list[int], dtype, name: str, buffer: int = 0,
               quantization: tuple[float, int] | None = None) -> int:
        fields = [(TENSOR["shape"], "offset", self.numbers(shape, np.int32)),
                  (TENSOR["type"], "int8", TENSOR_TYPES[np.dtype(dtype)]),
                  (TENSOR["buffer"], "uint32", buffer),
                  (TENSOR["name"], "offset", self.builder.CreateString(name))]
        if quantization is not None:
            scale, zero_point = self.numbers([quantization[0]], np.float32), self.numbers([quantization[1]], np.int64)
            fields.append((TENSOR["quantization"], "offset", self._table(
                [(QUANTIZATION["scale"], "offset", scale), (QUANTIZATION["zero_point"], "offset", zero_point)])))
        return self._table(fields)

    def operator_code(self, op: int, version: int) -> int:
        return self._table([(OPERATOR_CODE["deprecated_builtin_code"], "int8", min(op, 127)),
                            (OPERATOR_CODE["version"], "int32", version), (OPERATOR_CODE["builtin_code"], "int32", op)])

    def operator(self, code_index: int, inputs: list[int], outputs: list[int],
                 options: tuple[int, int] | None = None) -> int:
        """``options``: (builtin options type, offset of the options table)."""
        fields = [(OPERATOR["opcode_index"], "uint32", code_index),
                  (OPERATOR["inputs"], "offset", self.numbers(inputs, np.int32)),
                  (OPERATOR["outputs"], "offset", self.numbers(outputs, np.int32))]
        if options:
            fields += [(OPERATOR["builtin_options_type"], "uint8", options[0]),
                       (OPERATOR["builtin_options"], "offset", options[1])]
        return self._table(fields)

    def resize_bilinear_options(self, align_corners: bool) -> int:
        return self._table([(RESIZE_BILINEAR_OPTIONS["align_corners"], "bool", align_corners)])

    def buffer(self, data: bytes = b"") -> int:
        return self._table([(BUFFER["data"], "offset", self.numbers(np.frombuffer(data, np.uint8), np.uint8))]
                           if data else [])

    def model(self, codes: list[int], tensors: list[int], operators: list[int], inputs: list[int],
              outputs: list[int], buffers: list[int]) -> bytes:
        """Finish: one subgraph; all arguments but ``inputs``/``outputs`` are offsets made above."""
        graph = self._table([(SUBGRAPH["tensors"], "offset", self._vector(tensors)),
                             (SUBGRAPH["inputs"], "offset", self.numbers(inputs, np.int32)),
                             (SUBGRAPH["outputs"], "offset", self.numbers(outputs, np.int32)),
                             (SUBGRAPH["operators"], "offset", self._vector(operators))])
        model = self._table([(MODEL["version"], "uint32", 3),
                             (MODEL["operator_codes"], "offset", self._vector(codes)),
                             (MODEL["subgraphs"], "offset", self._vector([graph])),
                             (MODEL["buffers"], "offset", self._vector(buffers))])
        self.builder.Finish(model, file_identifier=b"TFL3")
        return bytes(self.builder.Output())
