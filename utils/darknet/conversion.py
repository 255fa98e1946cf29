"""Darknet → Keras: build the model, save it atomically with its decoding sidecars, summarise."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras

from utils.darknet.builder import build_model
from utils.darknet.cfg import Section
from utils.darknet.weights import ConvWeights
from utils.errors import UserError
from utils.files import atomic_outputs
from utils.machine import activation_bytes, memory_problem
from utils.yolo.meta import YoloMeta, format_anchors, sidecar_paths


@dataclass
class ConversionReport:
    output: Path
    sidecars: tuple[Path, Path]
    layers: int
    parameters: int
    output_shapes: list[tuple]
    meta: YoloMeta
    resize_reason: str

    def summary(self, seconds: float) -> str:
        handling = {"keep": "leaky ReLU kept (LEAKY_RELU: fast on CPU, not mapped by the Edge TPU)",
                    "prelu": "leaky ReLU as PReLU(alpha=0.1) (exact, Edge TPU-legal)",
                    "relu": "leaky ReLU replaced by ReLU (retrain the weights)"}[self.meta.leaky]
        heads = ", ".join(f"{shape} mask {head.mask}" for shape, head in zip(self.output_shapes, self.meta.heads))
        width, height = self.meta.input_size
        return "\n".join([
            f"wrote {self.output}  ({self.layers} Darknet layers, {self.parameters:,} parameters)",
            f"  input   (1, {height}, {width}, 3) float RGB in [0, 1]",
            f"  outputs {heads}",
            f"  classes {self.meta.classes}, anchors {format_anchors(self.meta.anchors).strip()}",
            f"  activations: {handling}",
            f"  resize  {self.meta.resize}: {self.resize_reason}",
            f"  sidecars {self.sidecars[0]}, {self.sidecars[1]}",
            f"  converted in {seconds:.2f} s"])


def save_model(model: keras.Model, meta: YoloMeta, output: Path) -> tuple[Path, Path]:
    """Write the model and its two sidecars as one result: all three are renamed into place
    only once all three are written."""
    meta_path, anchors_path = sidecar_paths(output)
    with atomic_outputs([output, meta_path, anchors_path]) as (tmp_model, tmp_meta, tmp_anchors):
        model.save(tmp_model)
        tmp_meta.write_text(meta.to_json())
        tmp_anchors.write_text(format_anchors(meta.anchors))
    return meta_path, anchors_path


def convert(sections: list[Section], weights: list[ConvWeights], input_size: tuple[int, int],
            leaky: str, output: Path, resize: tuple[str, str] = ("letterbox", "default")) -> ConversionReport:
    """Build and save; ``resize`` is the model's (mode, why), recorded in its metadata."""
    model, meta = build_model(sections, weights, input_size, leaky)
    problem = memory_problem(activation_bytes((layer.output.shape[1:], 4) for layer in model.layers),
                             f"input size {input_size[0]}x{input_size[1]}")
    if problem:
        raise UserError(f"{sections[0].where('width')}: {problem}; use a smaller width and height (or --input-size)")
    meta.resize = resize[0]
    sidecars = save_model(model, meta, output)
    return ConversionReport(output, sidecars, len(sections) - 1, model.count_params(),
                            [tuple(o.shape) for o in model.outputs], meta, resize[1])
