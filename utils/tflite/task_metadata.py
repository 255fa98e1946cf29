"""TFLite model metadata (the ``TFLITE_METADATA`` buffer) for a detection model, as the TFLite Task
Library's ``ObjectDetector`` reads it, and the label file packed into the model.

Written with the ``flatbuffers`` package against tflite-support's ``metadata_schema.fbs`` (fields
are numbered in declaration order, a union taking two: its type, then its value), so that the
conversion environment needs no tflite-support (which requires numpy < 2). The label file travels
as a zip archive appended to the model, as tflite-support's MetadataPopulator packs it.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import flatbuffers

METADATA_NAME = "TFLITE_METADATA"
MIN_PARSER_VERSION = "1.0.0"
# Enum values of metadata_schema.fbs
RGB, BOUNDARIES, RATIO, TENSOR_VALUE_LABELS = 1, 1, 0, 3
FEATURE_PROPERTIES, IMAGE_PROPERTIES, BOUNDING_BOX_PROPERTIES = 1, 2, 3  # ContentProperties
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions


@dataclass(frozen=True)
class DetectorInfo:
    """What the Task Library needs to know about a detection model."""

    name: str
    description: str
    input_size: tuple[int, int]     # (width, height)
    mean: float                     # input value = (pixel - mean) / std
    std: float
    labels_file: str                # its name inside the model
    labels: list[str]


class _Writer:
    """flatbuffers' Builder with one call per table, fields given by slot number."""

    def __init__(self):
        self.b = flatbuffers.Builder(1024)

    def string(self, text: str) -> int:
        return self.b.CreateString(text)

    def offsets(self, items: list[int]) -> int:
        self.b.StartVector(4, len(items), 4)
        for item in reversed(items):
            self.b.PrependUOffsetTRelative(item)
        return self.b.EndVector()

    def numbers(self, values: list, prepend) -> int:
        self.b.StartVector(4, len(values), 4)
        for value in reversed(values):
            prepend(value)
        return self.b.EndVector()

    def table(self, fields: dict[int, tuple[str, object]]) -> int:
        """``fields``: {slot: ("offset" | "byte" | "uint", value)}."""
        self.b.StartObject(max(fields) + 1 if fields else 0)
        for slot, (kind, value) in sorted(fields.items()):
            if kind == "offset":
                self.b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "byte":
                self.b.PrependUint8Slot(slot, value, 0)
            else:
                self.b.PrependUint32Slot(slot, value, 0)
        return self.b.EndObject()


def _tensor(w: _Writer, name: str, description: str, content: int, process_units: list[int] | None = None,
            stats: int | None = None, files: list[int] | None = None) -> int:
    fields = {0: ("offset", w.string(name)), 1: ("offset", w.string(description)), 3: ("offset", content)}
    if process_units:
        fields[4] = ("offset", w.offsets(process_units))
    if stats is not None:
        fields[5] = ("offset", stats)
    if files:
        fields[6] = ("offset", w.offsets(files))
    return w.table(fields)


def _content(w: _Writer, kind: int, properties: int, value_dimension: int | None = None) -> int:
    fields = {0: ("byte", kind), 1: ("offset", properties)}
    if value_dimension is not None:  # ValueRange: the dimension the values lie along
        fields[2] = ("offset", w.table({0: ("uint", value_dimension), 1: ("uint", value_dimension)}))
    return w.table(fields)


def metadata_buffer(info: DetectorInfo) -> bytes:
    """The ModelMetadata flatbuffer (file identifier M001) for a model whose outputs are
    TFLite_Detection_PostProcess's: location, category, score, number of detections."""
    w = _Writer()
    b = w.b
    size = w.table({0: ("uint", info.input_size[0]), 1: ("uint", info.input_size[1])})
    image = w.table({0: ("byte", RGB), 1: ("offset", size)})
    normalization = w.table({0: ("offset", w.numbers([info.mean], b.PrependFloat32)),
                             1: ("offset", w.numbers([info.std], b.PrependFloat32))})
    unit = w.table({0: ("byte", NORMALIZATION_OPTIONS), 1: ("offset", normalization)})
    stats = w.table({0: ("offset", w.numbers([255.0], b.PrependFloat32)),
                     1: ("offset", w.numbers([0.0], b.PrependFloat32))})
    image_input = _tensor(w, "image", "Input image to be detected, RGB.", _content(w, IMAGE_PROPERTIES, image),
                          [unit], stats)
    box = w.table({0: ("offset", w.numbers([1, 0, 3, 2], b.PrependUint32)), 1: ("byte", BOUNDARIES),
                   2: ("byte", RATIO)})
    location = _tensor(w, "location", "The locations of the detected boxes.",
                       _content(w, BOUNDING_BOX_PROPERTIES, box, 2))
    labels = w.table({0: ("offset", w.string(info.labels_file)), 1: ("offset", w.string("Labels for categories.")),
                      2: ("byte", TENSOR_VALUE_LABELS)})
    category = _tensor(w, "category", "The categories of the detected boxes.",
                       _content(w, FEATURE_PROPERTIES, w.table({}), 2), files=[labels])
    score = _tensor(w, "score", "The scores of the detected boxes.", _content(w, FEATURE_PROPERTIES, w.table({}), 2))
    number = _tensor(w, "number of detections", "The number of the detected boxes.",
                     _content(w, FEATURE_PROPERTIES, w.table({})))
    subgraph = w.table({2: ("offset", w.offsets([image_input])),
                        3: ("offset", w.offsets([location, category, score, number]))})
    model = w.table({0: ("offset", w.string(info.name)), 1: ("offset", w.string(info.description)),
                     3: ("offset", w.offsets([subgraph])), 7: ("offset", w.string(MIN_PARSER_VERSION))})
    b.Finish(model, file_identifier=b"M001")
    return bytes(b.Output())


def with_associated_files(model_bytes: bytes, files: dict[str, str]) -> bytes:
    """The model with ``files`` (name: text) appended as a zip archive whose offsets count from the
    start of the model file, as tflite-support's MetadataPopulator writes them."""
    buffer = io.BytesIO(model_bytes)
    buffer.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buffer, "a") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def associated_labels(model_bytes: bytes) -> list[str] | None:
    """The class names packed in the model (``with_associated_files``' ``.txt``, one per line), or None."""
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as archive:
            texts = [name for name in archive.namelist() if name.endswith(".txt")]
            if len(texts) != 1:
                return None
            lines = archive.read(texts[0]).decode("utf-8").splitlines()
    except (zipfile.BadZipFile, UnicodeDecodeError, OSError):
        return None
    return [line.strip() for line in lines if line.strip()] or None
