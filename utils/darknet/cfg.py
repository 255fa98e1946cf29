"""Parse Darknet ``.cfg`` files into plain sections, validating what the converter relies on."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from utils.errors import UserError
from utils.files import read_text

SECTION_KINDS = ("net", "convolutional", "maxpool", "route", "shortcut", "upsample", "yolo")
ACTIVATIONS = ("leaky", "relu", "linear", "logistic", "mish")
# The options the converter implements, per section kind: they shape the forward pass or the
# detections. An option found in neither this table nor TRAINING_OPTIONS is an error naming it,
# so a cfg is never converted into something other than what Darknet would run.
FORWARD_OPTIONS = {
    "net": {"width", "height", "channels"},
    "convolutional": {"filters", "size", "stride", "pad", "padding", "groups", "batch_normalize", "activation"},
    "maxpool": {"size", "stride", "padding"},
    "route": {"layers", "groups", "group_id"},
    "shortcut": {"from", "activation"},
    "upsample": {"stride", "scale"},
    "yolo": {"mask", "anchors", "classes", "num", "scale_x_y", "new_coords", "nms_kind", "beta_nms"},
}
# Options that only affect training (loss, label assignment, augmentation, optimiser): accepted
# and ignored. Every [net] option but the input size and channels is a training setting.
TRAINING_OPTIONS = {
    "convolutional": {"stopbackward", "dontload", "dontloadscales", "learning_rate", "train_only_bn"},
    "yolo": {"jitter", "ignore_thresh", "truth_thresh", "random", "resize", "iou_loss", "iou_normalizer",
             "cls_normalizer", "obj_normalizer", "objectness_smooth", "max_delta", "counters_per_class",
             "label_smooth_eps", "iou_thresh", "iou_thresh_kind", "focal_loss", "uc_normalizer",
             "delta_normalizer", "track_history_size", "show_details"},
}
NMS_KINDS = {"default": ("iou", None), "greedynms": ("diou", 0.6), "diounms": ("diou", "beta_nms")}
# The smallest legal value of each integer option, per section kind: below it Darknet itself
# would crash or build an empty layer, and the weights would be blamed for the cfg's mistake.
MINIMUM = {
    "net": {"width": 1, "height": 1, "channels": 1},
    "convolutional": {"filters": 1, "size": 1, "stride": 1, "groups": 1, "pad": 0, "padding": 0,
                      "batch_normalize": 0},
    "maxpool": {"size": 1, "stride": 1, "padding": 0},
    "route": {"groups": 1, "group_id": 0},
    "upsample": {"stride": 1},
    "yolo": {"classes": 1, "num": 1, "new_coords": 0},
}


@dataclass
class Section:
    """One ``[kind]`` block of a cfg: its options as written and where it starts."""

    kind: str
    line: int
    options: dict[str, str] = field(default_factory=dict)
    option_lines: dict[str, int] = field(default_factory=dict)
    source: str = "cfg"

    def where(self, key: str | None = None) -> str:
        line = self.option_lines.get(key, self.line) if key else self.line
        return f"{self.source} line {line}: [{self.kind}]"

    def _value(self, key: str, default, convert, kind: str):
        if key not in self.options:
            if default is None:
                raise UserError(f"{self.where()} needs option '{key}'")
            return default
        text = self.options[key]
        try:
            return convert(text)
        except ValueError:
            raise UserError(f"{self.where(key)} option '{key}={text}' is not {kind}") from None

    def int(self, key: str, default: int | None = None) -> int:
        return self._value(key, default, int, "an integer")

    def float(self, key: str, default: float | None = None) -> float:
        return self._value(key, default, float, "a number")

    def ints(self, key: str, default: list[int] | None = None) -> list[int]:
        return self._value(key, default, lambda t: [int(v) for v in t.split(",") if v.strip()],
                           "a list of integers")

    def floats(self, key: str, default: list[float] | None = None) -> list[float]:
        return self._value(key, default, lambda t: [float(v) for v in t.split(",") if v.strip()],
                           "a list of numbers")

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.options.get(key, default)
        if value not in choices:
            raise UserError(f"{self.where(key)} option '{key}={value}' is not one of {', '.join(choices)}")
        return value


def parse_cfg(path: str | Path) -> list[Section]:
    """Read a cfg file into sections; the first must be ``[net]``."""
    return parse_cfg_text(read_text(path, "cfg"), source=f"cfg {path}")


def parse_cfg_text(text: str, source: str = "cfg") -> list[Section]:
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise UserError(f"{source} line {number}: malformed section header '{line}'")
            kind = line[1:-1].strip().lower()
            if kind == "conv":
                kind = "convolutional"
            elif kind == "network":
                kind = "net"
            if kind not in SECTION_KINDS:
                raise UserError(f"{source} line {number}: unknown section [{kind}]")
            sections.append(Section(kind, number, source=source))
            continue
        if "=" not in line:
            raise UserError(f"{source} line {number}: expected 'key=value', got '{line}'")
        if not sections:
            raise UserError(f"{source} line {number}: option before the first section")
        key, value = (part.strip() for part in line.split("=", 1))
        sections[-1].options[key] = value
        sections[-1].option_lines[key] = number
    if not sections or sections[0].kind != "net":
        raise UserError(f"{source}: the first section must be [net]")
    if not any(s.kind == "yolo" for s in sections):
        raise UserError(f"{source}: no [yolo] section")
    for section in sections[1:]:
        if section.kind == "net":
            raise UserError(f"{section.where()} appears twice")
        if section.kind in ("convolutional", "shortcut"):
            section.choice("activation", "linear" if section.kind == "shortcut" else "logistic", ACTIVATIONS)
    for section in sections:
        _check_option_names(section)
        for key, minimum in MINIMUM.get(section.kind, {}).items():
            if key in section.options and section.int(key) < minimum:
                raise UserError(f"{section.where(key)} option '{key}={section.options[key]}' "
                                f"must be at least {minimum}")
        if section.kind == "yolo":
            _check_yolo(section)
    if "letter_box" in sections[0].options and sections[0].int("letter_box") not in (0, 1):
        raise UserError(f"{sections[0].where('letter_box')} option 'letter_box={sections[0].options['letter_box']}' "
                        "is not 0 or 1")
    return sections


def _check_option_names(section: Section) -> None:
    """Every option is implemented or training-only; anything else would silently change the model."""
    training = TRAINING_OPTIONS.get(section.kind, set())
    for key in section.options:
        if key in FORWARD_OPTIONS[section.kind] or key in training or section.kind == "net":
            continue
        raise UserError(f"{section.where(key)} option '{key}' is not supported: it may change the forward "
                        "pass or the detections, and this converter does not implement it")


def _check_yolo(section: Section) -> None:
    anchors = section.floats("anchors", [])
    if any(v <= 0 for v in anchors):
        raise UserError(f"{section.where('anchors')} anchors must all be positive")
    if "num" in section.options and anchors and section.int("num") * 2 != len(anchors):
        raise UserError(f"{section.where('num')} num={section.int('num')} but {len(anchors) // 2} anchors are given")
    section.choice("nms_kind", "default", tuple(NMS_KINDS))
    if section.int("new_coords", 0) > 1:
        raise UserError(f"{section.where('new_coords')} option 'new_coords={section.options['new_coords']}' "
                        "is not 0 or 1")
    if not 0 < section.float("beta_nms", 0.6) <= 10:
        raise UserError(f"{section.where('beta_nms')} option 'beta_nms={section.options['beta_nms']}' must be "
                        "in (0, 10]")
    if section.float("scale_x_y", 1.0) <= 0:
        raise UserError(f"{section.where('scale_x_y')} option 'scale_x_y' must be positive")


def nms_rule(section: Section) -> tuple[str, float]:
    """A [yolo] section's NMS as (measure, exponent): Darknet's default IoU, or DIoU-NMS
    (``IoU - (d^2 / c^2) ** exponent``; greedynms fixes the exponent at 0.6, diounms reads beta_nms)."""
    measure, exponent = NMS_KINDS[section.options.get("nms_kind", "default")]
    if exponent == "beta_nms":
        exponent = section.float("beta_nms", 0.6)
    return measure, float(exponent or 0.0)


def shortcut_source(section: Section, index: int) -> int:
    """The layer a [shortcut] adds: ``from`` is relative when negative, absolute otherwise (parser.c)."""
    source = section.int("from")
    source = index + source if source < 0 else source
    if not 0 <= source < index:
        raise UserError(f"{section.where('from')} refers to layer {source}, not an earlier layer")
    return source


@dataclass(frozen=True)
class ConvLayout:
    """What a ``[convolutional]`` section stores in a weights file."""

    index: int          # layer index (sections after [net])
    line: int
    filters: int
    channels: int       # input channels
    size: int
    groups: int
    batch_normalize: bool

    def float_count(self) -> int:
        per_filter = 4 if self.batch_normalize else 1
        return self.filters * per_filter + self.filters * (self.channels // self.groups) * self.size ** 2


def route_sources(section: Section, index: int) -> list[int]:
    """Absolute layer indices named by a ``[route]``'s ``layers`` (relative or absolute)."""
    sources = [i + index if i < 0 else i for i in section.ints("layers")]
    for source in sources:
        if not 0 <= source < index:
            raise UserError(f"{section.where('layers')} refers to layer {source}, not an earlier layer")
    return sources


def layer_channels(sections: list[Section]) -> list[int]:
    """Output channel count of every layer (sections after ``[net]``)."""
    channels: list[int] = []
    previous = sections[0].int("channels", 3)
    layers = sections[1:]
    for index, section in enumerate(layers):
        if section.kind == "convolutional":
            previous = section.int("filters")
        elif section.kind == "route":
            groups = section.int("groups", 1)
            previous = sum(channels[s] for s in route_sources(section, index)) // groups
        elif section.kind == "shortcut":
            shortcut_source(section, index)
        channels.append(previous)
    return channels


def conv_layouts(sections: list[Section]) -> list[ConvLayout]:
    """The weights layout of every ``[convolutional]`` section, in file order."""
    channels = layer_channels(sections)
    inputs = [sections[0].int("channels", 3)] + channels[:-1]
    layouts = []
    for index, section in enumerate(sections[1:]):
        if section.kind != "convolutional":
            continue
        filters, groups = section.int("filters"), section.int("groups", 1)
        if inputs[index] % groups or filters % groups:
            raise UserError(f"{section.where('groups')} option 'groups={groups}' does not divide its "
                            f"{inputs[index]} input channels and {filters} filters")
        layouts.append(ConvLayout(index, section.line, filters, inputs[index], section.int("size", 1),
                                  groups, bool(section.int("batch_normalize", 0))))
    return layouts
