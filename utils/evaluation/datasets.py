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
from utils.files import atomic_output, check_output, read_text, require_file
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


def read_labels(path: Path, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(class ids, relative boxes) of a YOLO label file, every line checked."""
    ids, boxes = [], []
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
        if not all(np.isfinite(values)) or min(values) < 0 or max(values) > 1 or min(values[2:]) <= 0:
            raise UserError(f"{where}: box {' '.join(fields[1:])} is out of range (relative numbers in [0, 1], "
                            "width and height above 0)")
        ids.append(class_id)
        boxes.append(values)
    return np.array(ids, np.int64), np.array(boxes, np.float32).reshape(-1, 4)


def darknet_truths(images: list[Path], classes: int) -> list[Truth]:
    """Each image with its labels; an image without a label file has no objects (``labelled`` False)."""
    truths = []
    for image in images:
        labels = label_path(image)
        if labels.is_file():
            truths.append(Truth(image, *read_labels(labels, classes)))
        else:
            truths.append(Truth.empty(image, labelled=False))
    return truths


def image_list(path: Path) -> list[Path]:
    """The images named in a Darknet list file (``valid=``), one per line, relative to the working
    directory as Darknet reads them, else to the list's own directory."""
    paths = []
    for line in read_text(path, "image list").splitlines():
        if line.strip():
            name = Path(line.strip())
            paths.append(name if name.is_absolute() or name.exists() else path.parent / name)
    if not paths:
        raise UserError(f"image list {path}: no image paths in it")
    return paths


def read_data_file(path: Path) -> tuple[Path, Path]:
    """(``valid`` image list, ``names`` file) of a Darknet ``.data`` file."""
    options = {}
    for line in read_text(path, "data file").splitlines():
        key, _, value = line.partition("=")
        if _ and not line.lstrip().startswith("#"):
            options[key.strip()] = value.strip()
    found = []
    for key in ("valid", "names"):
        if key not in options:
            raise UserError(f"data file {path}: no '{key} =' line")
        value = Path(options[key])
        found.append(value if value.is_absolute() or value.exists() else path.parent / value)
    return found[0], found[1]


def find_dataset_images(sources: list[str]) -> list[Path]:
    """``--images``: directories, image files or globs, or a Darknet list file (``.txt``)."""
    if len(sources) == 1 and sources[0].lower().endswith(".txt"):
        return image_list(require_file(sources[0], "image list"))
    return [path for path, _ in find_image_entries(sources)]


def coco_truths(annotations: Path, image_dir: Path, names: list[str]) -> tuple[list[Truth], list[str]]:
    """The images of a COCO instances file (found under ``image_dir``), with their boxes as pixel
    corners and each category mapped to the class of the same name; (truths, categories not in the names)."""
    try:
        data = json.loads(read_text(annotations, "annotations"))
        categories = {c["id"]: c["name"] for c in data["categories"]}
        images = {i["id"]: i["file_name"] for i in data["images"]}
        entries = data.get("annotations", [])
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"annotations {annotations}: not a COCO instances file ({error})") from None
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({name for name in categories.values() if name not in index})
    per_image: dict[int, list] = {image_id: [] for image_id in images}
    for entry in entries:
        name = categories.get(entry.get("category_id"))
        if name in index and entry.get("image_id") in per_image:
            x, y, w, h = entry["bbox"]
            per_image[entry["image_id"]].append((index[name], [x, y, x + w, y + h], bool(entry.get("iscrowd", 0))))
    truths = []
    for image_id, file_name in images.items():
        objects = per_image[image_id]
        truths.append(Truth(image_dir / file_name, np.array([o[0] for o in objects], np.int64),
                            np.array([o[1] for o in objects], np.float32).reshape(-1, 4), relative=False,
                            crowd=np.array([o[2] for o in objects], bool)))
    return truths, unknown


def label_outputs(entries: list[tuple[Path, Path]], directory: Path) -> list[Path]:
    """``inference.py --save-txt``: where each image's label file goes (the source tree mirrored
    under ``directory``, ``.txt`` for the image's suffix), checked before any work."""
    planned = [directory / relative.with_suffix(".txt") for _, relative in entries]
    sources = [path for path, _ in entries]
    seen: dict[Path, Path] = {}
    for (source, _), dest in zip(entries, planned):
        check_output(dest, sources, "labels")
        if dest in seen:
            raise UserError(f"labels {dest}: both {seen[dest]} and {source} would be written there; give images "
                            "with distinct names")
        seen[dest] = source
    return planned


def format_labels(detections, width: int, height: int) -> str:
    """Darknet label lines ``class cx cy w h`` (relative to the image, 6 decimals) of detections in pixels."""
    lines = []
    for (x1, y1, x2, y2), class_id in zip(detections.boxes.tolist(), detections.class_ids.tolist()):
        lines.append(f"{class_id} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                     f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
    return "".join(line + "\n" for line in lines)


def write_labels(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)
