"""What a decoder needs to know about a YOLO model: anchors, masks, classes, input size.

``convert.py`` writes it beside the Keras model (``NAME_yolo.json`` plus a classic one-line
``NAME_anchors.txt``); ``keras_to_tflite_quant.py`` embeds the same JSON in the ``.tflite``.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from utils.errors import UserError
from utils.files import read_text
from utils.yolo.types import RESIZE_MODES

METADATA_NAME = "tinyyolo_edgetpu.yolo"


@dataclass
class Head:
    """One ``[yolo]`` section."""

    mask: list[int]
    grid: tuple[int, int]          # (width, height) in cells
    scale_x_y: float = 1.0
    new_coords: bool = False       # the head is already logistic; w, h are (2 v)^2 * anchor (YOLOv7)


@dataclass
class YoloMeta:
    input_size: tuple[int, int]    # (width, height)
    classes: int
    anchors: list[tuple[float, float]]
    heads: list[Head]
    leaky: str = "keep"
    # Fixed (lo, hi) logit range of the quantized heads, or None (see utils/quantize/quantizer.py).
    output_range: tuple[float, float] | None = None
    extras: dict = field(default_factory=dict)
    # Darknet's NMS for this model: "iou" (do_nms_sort) or "diou" (diounms_sort, with this exponent).
    nms: str = "iou"
    nms_beta: float = 0.6
    # How an image becomes the input (RESIZE_MODES); metadata written before the choice existed letterboxed.
    resize: str = "letterbox"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "metadata") -> YoloMeta:
        """Metadata from its JSON, every field's type checked: a ``UserError`` naming the field."""
        try:
            data = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
        except UnicodeDecodeError as error:
            raise UserError(f"{source}: not valid YOLO metadata (not UTF-8 text, byte {error.start})") from None
        except (ValueError, RecursionError) as error:
            reason = "nested too deeply" if isinstance(error, RecursionError) else f"not JSON: {error}"
            raise UserError(f"{source}: not valid YOLO metadata ({reason})") from None
        problem = _schema_problem(data)
        if problem:
            raise UserError(f"{source}: not valid YOLO metadata ({problem})")
        heads = [Head(list(h["mask"]), tuple(h["grid"]), float(h.get("scale_x_y", 1.0)),
                      bool(h.get("new_coords", False))) for h in data["heads"]]
        rng = data.get("output_range")
        meta = cls(tuple(data["input_size"]), data["classes"], [tuple(a) for a in data["anchors"]], heads,
                   data.get("leaky", "keep"), tuple(rng) if rng else None, data.get("extras", {}),
                   data.get("nms", "iou"), float(data.get("nms_beta", 0.6)), data.get("resize", "letterbox"))
        problem = meta.problem()
        if problem:
            raise UserError(f"{source}: not valid YOLO metadata ({problem})")
        return meta

    def problem(self) -> str | None:
        """What makes this metadata unusable for decoding, or None."""
        def positive_pair(value) -> bool:
            return len(value) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in value)
        if not positive_pair(self.input_size):
            return f"input_size {list(self.input_size)} is not two positive numbers"
        if self.classes < 1:
            return f"classes {self.classes} is not positive"
        if not self.anchors or not all(positive_pair(a) for a in self.anchors):
            return "anchors must be a non-empty list of positive (w, h) pairs"
        if not self.heads:
            return "no heads"
        for head in self.heads:
            if not head.mask or not all(isinstance(m, int) and 0 <= m < len(self.anchors) for m in head.mask):
                return f"mask {head.mask} does not fit {len(self.anchors)} anchors"
            if not positive_pair(head.grid) or not all(isinstance(g, int) for g in head.grid):
                return f"grid {list(head.grid)} is not two positive integers"
        if self.nms not in ("iou", "diou") or not 0 < self.nms_beta <= 10:
            return f"nms {self.nms!r} with beta {self.nms_beta} is not 'iou' or 'diou' with 0 < beta <= 10"
        if self.resize not in RESIZE_MODES:
            return f"resize {self.resize!r} is not one of {', '.join(RESIZE_MODES)}"
        if self.output_range is not None and not (len(self.output_range) == 2
                                                  and self.output_range[0] < 0 < self.output_range[1]):
            return f"output_range {list(self.output_range)} is not LOW < 0 < HIGH"
        return None

    def channels_per_head(self) -> list[int]:
        return [len(h.mask) * (5 + self.classes) for h in self.heads]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pair(value, check) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(check(v) for v in value)


# field: (required, check, what it must be)
_FIELDS = {
    "input_size": (True, lambda v: _pair(v, _is_int), "two whole numbers"),
    "classes": (True, _is_int, "a whole number"),
    "anchors": (True, lambda v: isinstance(v, list) and all(_pair(a, _is_number) for a in v), "a list of [w, h] pairs"),
    "heads": (True, lambda v: isinstance(v, list) and all(isinstance(h, dict) for h in v), "a list of objects"),
    "leaky": (False, lambda v: isinstance(v, str), "a string"),
    "output_range": (False, lambda v: v is None or _pair(v, _is_number), "null or two numbers"),
    "extras": (False, lambda v: isinstance(v, dict), "an object"),
    "nms": (False, lambda v: isinstance(v, str), "a string"),
    "nms_beta": (False, _is_number, "a number"),
    "resize": (False, lambda v: isinstance(v, str), "a string"),
}
_HEAD_FIELDS = {
    "mask": (True, lambda v: isinstance(v, list) and all(_is_int(m) for m in v), "a list of whole numbers"),
    "grid": (True, lambda v: _pair(v, _is_int), "two whole numbers"),
    "scale_x_y": (False, _is_number, "a number"),
    "new_coords": (False, lambda v: isinstance(v, (bool, int)), "true or false"),
}


def _fields_problem(data: dict, fields: dict, prefix: str = "") -> str | None:
    for name, (required, check, what) in fields.items():
        if name not in data:
            if required:
                return f"{prefix}{name} is missing"
        elif not check(data[name]):
            return f"{prefix}{name} must be {what} (got {json.dumps(data[name])[:60]})"
    return None


def _schema_problem(data) -> str | None:
    """What in parsed metadata JSON has a wrong type or is missing, naming the field; or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    problem = _fields_problem(data, _FIELDS)
    if problem:
        return problem
    for i, head in enumerate(data["heads"]):
        if problem := _fields_problem(head, _HEAD_FIELDS, f"heads[{i}]."):
            return problem
    return None


def sidecar_paths(model_path: str | Path) -> tuple[Path, Path]:
    """(``NAME_yolo.json``, ``NAME_anchors.txt``) beside a model file."""
    model_path = Path(model_path)
    stem = model_path.with_suffix("")
    return Path(f"{stem}_yolo.json"), Path(f"{stem}_anchors.txt")


def format_anchors(anchors: list[tuple[float, float]]) -> str:
    """Classic one-line anchors: ``10,14, 23,27, …``."""
    return ", ".join(f"{w:g},{h:g}" for w, h in anchors) + "\n"


def read_anchors(path: str | Path) -> list[tuple[float, float]]:
    """Anchors from a classic file (``w,h, w,h`` on one or several lines)."""
    text = read_text(path, "anchors")
    tokens = [t for t in re.split(r"[\s,]+", text.strip()) if t]
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        raise UserError(f"anchors {path}: expected numbers 'w,h, w,h, …'") from None
    if not values or len(values) % 2 or min(values) <= 0:
        raise UserError(f"anchors {path}: expected an even count of positive numbers, got {len(values)}")
    return list(zip(values[0::2], values[1::2]))


def default_masks(anchor_count: int, grids: list[tuple[int, int]]) -> list[list[int]]:
    """Darknet's usual masks: the coarsest grid takes the largest anchors."""
    heads = len(grids)
    if anchor_count % heads:
        raise UserError(f"{anchor_count} anchors cannot be split over {heads} heads")
    per_head = anchor_count // heads
    order = sorted(range(heads), key=lambda i: grids[i][0] * grids[i][1])
    masks: list[list[int]] = [[] for _ in grids]
    for rank, head in enumerate(order):
        first = (heads - 1 - rank) * per_head
        masks[head] = list(range(first, first + per_head))
    return masks


def meta_from_anchors(path: str | Path, input_size: tuple[int, int], grids: list[tuple[int, int]],
                      channels: int) -> YoloMeta:
    """Metadata for a model without any: a classic anchors file, Darknet's usual masks, and the
    class count implied by the heads' channel count."""
    anchors = read_anchors(path)
    if len(anchors) % len(grids):
        raise UserError(f"anchors {path}: {len(anchors)} anchors cannot be split over the model's "
                        f"{len(grids)} heads")
    per_head = len(anchors) // len(grids)
    if channels % per_head or channels // per_head <= 5:
        raise UserError(f"anchors {path}: {per_head} anchors per head do not fit the model's "
                        f"{channels} output channels")
    masks = default_masks(len(anchors), grids)
    return YoloMeta(tuple(input_size), channels // per_head - 5, anchors,
                    [Head(mask, grid) for mask, grid in zip(masks, grids)])


def load_meta_file(path: str | Path) -> YoloMeta:
    return YoloMeta.from_json(read_text(path, "metadata"), source=f"metadata {path}")


def resolve_meta(model: str | Path, input_size: tuple[int, int], heads: dict[tuple[int, int], int],
                 own: YoloMeta | None, anchors: str | Path | None, missing: str) -> YoloMeta:
    """The one way a model's metadata is found: its own (embedded, or the Keras model's sidecar),
    else ``--anchors`` (a ``_yolo.json`` or a classic anchors file); checked against its outputs.

    ``heads`` maps each output's grid (w, h) to its channels; ``missing`` ends the error without either.
    """
    if own is not None:
        if anchors is not None:
            print(f"warning: --anchors {anchors} ignored: model {model} carries its own metadata", file=sys.stderr)
        meta = own
    elif anchors is None:
        raise UserError(f"model {model} has no YOLO metadata: {missing}")
    elif str(anchors).lower().endswith(".json"):
        meta = load_meta_file(anchors)
    else:
        grids = list(heads)
        meta = meta_from_anchors(anchors, input_size, grids, heads[grids[0]])
    expected = {tuple(h.grid): c for h, c in zip(meta.heads, meta.channels_per_head())}
    if len(meta.heads) != len(heads) or expected != heads:
        raise UserError(f"model {model}: heads {heads} (grid: channels) do not match the anchors/masks/classes, "
                        f"which expect {expected}")
    return meta
