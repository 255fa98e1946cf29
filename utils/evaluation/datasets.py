"""Labelled images as users have them: Darknet datasets (YOLO ``.txt`` labels) and COCO JSON.

Darknet finds an image's labels by replacing ``/images/`` or ``/JPEGImages/`` in its path with
``/labels/`` and the extension with ``.txt``; so here, and beside the image as a fallback. A
label line is ``class cx cy w h``, the box relative to the image's width and height.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.errors import UserError
from utils.files import darknet_lines, read_text, require_file
from utils.media.images import find_image_entries

_LABEL_DIRECTORIES = (("/images/", "/labels/"), ("/JPEGImages/", "/labels/"), ("\\images\\", "\\labels\\"))


@dataclass
class Truth:
    """An image's ground truth: boxes ``(cx, cy, w, h)`` relative to the image (Darknet's label
    numbers), or in pixels ``[x1, y1, x2, y2]`` once ``pixels`` is given; one class each."""

    image: Path
    class_ids: np.ndarray                 # (n,) int64
    boxes: np.ndarray                     # (n, 4) float32
    relative: bool = True
    labelled: bool = True                 # False: no label file was found (an image without objects)
    crowd: np.ndarray = field(default=None)  # (n,) bool, COCO's iscrowd

    def __post_init__(self):
        if self.crowd is None:
            self.crowd = np.zeros(len(self.class_ids), bool)

    @classmethod
    def empty(cls, image: Path, labelled: bool = True) -> Truth:
        return cls(image, np.zeros(0, np.int64), np.zeros((0, 4), np.float32), labelled=labelled)

    def in_pixels(self, width: int, height: int) -> np.ndarray:
        """``[x1, y1, x2, y2]`` in pixels (Darknet's conversion for relative boxes)."""
        if not self.relative:
            return self.boxes
        cx, cy, w, h = self.boxes.T
        return np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height],
                        1).astype(np.float32)


def label_path(image: Path) -> Path:
    """Where Darknet looks for ``image``'s labels; beside the image when that path does not exist."""
    text = str(image)
    for images, labels in _LABEL_DIRECTORIES:
        if images in text:
            darknet = Path(text.replace(images, labels)).with_suffix(".txt")
            if darknet.exists():
                return darknet
    return image.with_suffix(".txt")


def read_labels(path: Path, classes: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(class ids, relative boxes, zero-area boxes left out) of a YOLO label file, every line checked.

    A box of zero width or height can never be matched: it is left out and counted, the same rule
    as for COCO files; a negative or out-of-range number is an error."""
    ids, boxes, zero_area = [], [], 0
    for number, line in enumerate(read_text(path, "labels").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"labels {path}:{number}"
        try:
            class_id, values = int(fields[0]), [float(v) for v in fields[1:]]
        except ValueError:
            raise UserError(f"{where}: expected 'class cx cy w h' (numbers), got {line.strip()[:60]!r}") from None
        if len(values) != 4:
            raise UserError(f"{where}: expected 5 numbers 'class cx cy w h', got {len(fields)}")
        if not 0 <= class_id < classes:
            raise UserError(f"{where}: class {class_id} is beyond the {classes} class names (0 to {classes - 1})")
        if not all(np.isfinite(values)) or min(values) < 0 or max(values) > 1:
            raise UserError(f"{where}: box {' '.join(fields[1:])} is out of range (relative numbers in [0, 1])")
        if min(values[2:]) == 0:
            zero_area += 1
            continue
        ids.append(class_id)
        boxes.append(values)
    return np.array(ids, np.int64), np.array(boxes, np.float32).reshape(-1, 4), zero_area


def darknet_truths(images: list[Path], classes: int) -> tuple[list[Truth], int]:
    """Each image with its labels, and the zero-area boxes left out; an image without a label file
    has no objects (``labelled`` False)."""
    truths, zero_area = [], 0
    for image in images:
        labels = label_path(image)
        if labels.is_file():
            class_ids, boxes, zero = read_labels(labels, classes)
            truths.append(Truth(image, class_ids, boxes))
            zero_area += zero
        else:
            truths.append(Truth.empty(image, labelled=False))
    return truths, zero_area


def image_list(path: Path) -> list[Path]:
    """The images named in a Darknet list file (``valid=``), one per line, relative to the working
    directory as Darknet reads them, else to the list's own directory."""
    paths = []
    for line in darknet_lines(read_text(path, "image list")):
        if line.strip():
            name = Path(line.strip())
            paths.append(name if name.is_absolute() or name.exists() else path.parent / name)
    if not paths:
        raise UserError(f"image list {path}: no image paths in it")
    return paths


def read_data_file(path: Path, images: str = "valid") -> tuple[Path, Path]:
    """(image list, ``names`` file) of a Darknet ``.data`` file; ``images`` is the list's key
    (``valid`` to score, ``train`` to calibrate)."""
    options = {}
    for line in darknet_lines(read_text(path, "data file")):
        key, _, value = line.partition("=")
        if _ and not line.lstrip().startswith("#"):
            options[key.strip()] = value.strip()
    found = []
    for key in (images, "names"):
        if key not in options:
            raise UserError(f"data file {path}: no '{key} =' line")
        value = Path(options[key])
        found.append(value if value.is_absolute() or value.exists() else path.parent / value)
    return found[0], found[1]


def find_dataset_images(sources: list[str], what: str = "image", data_key: str = "valid") -> list[Path]:
    """Directories, image files or globs, a Darknet list file (``.txt``), or a Darknet ``.data``
    file (the list its ``data_key`` names)."""
    if len(sources) == 1 and sources[0].lower().endswith(".data"):
        listed, _ = read_data_file(require_file(sources[0], "data file"), data_key)
        return image_list(require_file(listed, "image list"))
    if len(sources) == 1 and sources[0].lower().endswith(".txt"):
        return image_list(require_file(sources[0], "image list"))
    return [path for path, _ in find_image_entries(sources, what)]


def _coco_field(entry, key: str, kind, where: str, optional: bool = False):
    """``entry[key]`` checked to be of ``kind`` (a type or a tuple of types); bool is not a number."""
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected an object, got {type(entry).__name__}")
    if key not in entry:
        if optional:
            return None
        raise UserError(f"{where}: no '{key}'")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise UserError(f"{where}: '{key}' is {json.dumps(value)[:40]}, not {names}")
    return value


def _coco_box(entry: dict, where: str) -> list[float] | None:
    """The annotation's ``bbox`` as pixel corners; None for a zero-area box (left out, as in label files)."""
    box = _coco_field(entry, "bbox", list, where)
    if len(box) != 4 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in box):
        raise UserError(f"{where}: 'bbox' must be 4 numbers [x, y, width, height], got {json.dumps(box)[:60]}")
    x, y, w, h = (float(v) for v in box)
    if not all(np.isfinite([x, y, w, h])) or w < 0 or h < 0:
        raise UserError(f"{where}: 'bbox' {json.dumps(box)[:60]} has a negative or non-finite value")
    return None if w == 0 or h == 0 else [x, y, x + w, y + h]


def coco_truths(annotations: Path, image_dir: Path, names: list[str]) -> tuple[list[Truth], list[str], int]:
    """The images of a COCO instances file (found under ``image_dir``), with their boxes as pixel
    corners and each category mapped to the class of the same name; (truths, categories not in the
    names, zero-area boxes left out). Every field used is checked: an error names the annotation."""
    try:
        data = json.loads(read_text(annotations, "annotations"))
    except ValueError as error:
        raise UserError(f"annotations {annotations}: not a COCO instances file ({error})") from None
    where = f"annotations {annotations}"
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("categories"), list):
        raise UserError(f"{where}: not a COCO instances file (no 'images' and 'categories' lists)")
    categories = {}
    for number, entry in enumerate(data["categories"]):
        place = f"{where}: category {number}"
        categories[_coco_field(entry, "id", int, place)] = _coco_field(entry, "name", str, place)
    images = {}
    for number, entry in enumerate(data["images"]):
        place = f"{where}: image {number}"
        images[_coco_field(entry, "id", int, place)] = _coco_field(entry, "file_name", str, place)
    if not images:
        raise UserError(f"{where}: its 'images' list is empty")
    entries = data.get("annotations", [])
    if not isinstance(entries, list):
        raise UserError(f"{where}: 'annotations' is not a list")
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({name for name in categories.values() if name not in index})
    per_image: dict[int, list] = {image_id: [] for image_id in images}
    zero_area = 0
    for number, entry in enumerate(entries):
        place = f"{where}: annotation {number}"
        identity = _coco_field(entry, "id", (int, str), place, optional=True)
        place += f" (id {identity})" if identity is not None else ""
        image_id = _coco_field(entry, "image_id", int, place)
        category_id = _coco_field(entry, "category_id", int, place)
        if image_id not in per_image:
            raise UserError(f"{place}: image_id {image_id} is not in 'images'")
        if category_id not in categories:
            raise UserError(f"{place}: category_id {category_id} is not in 'categories'")
        crowd = _coco_field(entry, "iscrowd", int, place, optional=True) or 0
        if crowd not in (0, 1):
            raise UserError(f"{place}: 'iscrowd' is {crowd}, not 0 or 1")
        box = _coco_box(entry, place)
        if box is None:
            zero_area += 1
        elif categories[category_id] in index:
            per_image[image_id].append((index[categories[category_id]], box, bool(crowd)))
    truths = []
    for image_id, file_name in images.items():
        objects = per_image[image_id]
        truths.append(Truth(image_dir / file_name, np.array([o[0] for o in objects], np.int64),
                            np.array([o[1] for o in objects], np.float32).reshape(-1, 4), relative=False,
                            crowd=np.array([o[2] for o in objects], bool)))
    return truths, unknown, zero_area
