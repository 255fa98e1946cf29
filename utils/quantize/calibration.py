"""The calibration set: real images, topped up with crops and flips of them when there are few.

Min/max calibration on a handful of photos gives ranges that fit those photos only; measured on
Tiny YOLOv3, 9 photos left a spurious "sheep" at 0.39 in the int8 model that 84 random crops and
flips of the same 9 photos removed. Every sample is letterboxed or stretched exactly as inference does.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.console import plural
from utils.media.images import evenly_spread, read_image
from utils.yolo.letterbox import Preprocessor


@dataclass(frozen=True)
class Sample:
    path: Path
    variant: int = 0  # 0: the image itself; k > 0: the k-th random crop/flip of it


def plan(images: list[Path], count: int, augment: bool = True) -> list[Sample]:
    """``count`` samples: evenly spread images, then (if allowed) variants of them to fill up."""
    chosen = [Sample(p) for p in evenly_spread(images, count)]
    if augment:
        chosen += [Sample(images[i % len(images)], 1 + i // len(images)) for i in range(count - len(chosen))]
    return chosen


def augmented(image: np.ndarray, variant: int) -> np.ndarray:
    """A deterministic random crop (50–100 % of each side), mirrored on odd variants."""
    if variant == 0:
        return image
    rng = np.random.default_rng(variant)
    height, width = image.shape[:2]
    scale = rng.uniform(0.5, 1.0)
    crop_h, crop_w = max(int(height * scale), 1), max(int(width * scale), 1)
    top, left = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
    crop = image[top:top + crop_h, left:left + crop_w]
    return np.ascontiguousarray(crop[:, ::-1] if variant % 2 else crop)


@dataclass
class Calibration:
    samples: list[Sample]
    skipped: list[Path] = field(default_factory=list)
    sizes: dict[Path, tuple[int, int]] = field(default_factory=dict)  # (width, height) of each image read

    @property
    def used(self) -> int:
        return sum(s.path not in self.skipped for s in self.samples)

    def describe(self) -> str:
        originals = len({s.path for s in self.samples if s.path not in self.skipped})
        variants = sum(s.variant > 0 and s.path not in self.skipped for s in self.samples)
        kind = "crop/flip" if variants == 1 else "crops/flips"
        extra = f" + {variants} {kind} of {'it' if originals == 1 else 'them'}" if variants else ""
        areas = sorted(self.sizes.values(), key=lambda size: size[0] * size[1])
        sizes = (f", {areas[0][0]}x{areas[0][1]} to {areas[-1][0]}x{areas[-1][1]} pixels" if areas else "")
        unreadable = len(set(self.skipped))
        skipped = f" ({unreadable} unreadable, skipped)" if unreadable else ""
        return f"{plural(originals, 'image')}{extra}{sizes}{skipped}"

    def tiny_images(self, net_size: tuple[int, int]) -> list[Path]:
        """Images less than a quarter of the network input on both sides: upscaled over 4x, they
        calibrate ranges for blurs, not for the camera the model will see."""
        return [path for path, (w, h) in self.sizes.items() if w * 4 < net_size[0] and h * 4 < net_size[1]]

    def dataset(self, net_size: tuple[int, int], resize: str,
                progress: Callable[[list], Iterator]) -> Callable[[], Iterator]:
        """A representative dataset for the TFLite converter, each image resized as the model's ``resize`` says."""
        preprocess = Preprocessor(net_size, resize=resize)

        def generate() -> Iterator[list[np.ndarray]]:
            for sample in progress(self.samples):
                if sample.path in self.skipped:
                    continue
                image = read_image(sample.path)
                if image is None:
                    self.skipped.append(sample.path)
                    print(f"warning: calibration image {sample.path}: cannot be decoded, skipped", file=sys.stderr)
                    continue
                self.sizes[sample.path] = (image.shape[1], image.shape[0])
                tensor, _ = preprocess(augmented(image, sample.variant))
                yield [tensor.copy()]
        return generate
