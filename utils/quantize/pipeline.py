"""The quantizer as one call: calibrate, choose ranges, quantize, embed the metadata, write, report.

``quantize_model`` is what ``keras_to_tflite_quant.py`` runs; tests, benches and ``--calibration
auto`` call it directly and read the ``Report`` it returns instead of a script's stdout.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from utils import console, stopping
from utils.errors import UserError
from utils.machine import peak_memory_mib
from utils.quantize import ranges
from utils.yolo.meta import YoloMeta
from utils.yolo.ssd_outputs import PostProcess

if TYPE_CHECKING:
    from utils.evaluation.fidelity import Fidelity
    from utils.quantize.auto import Choice
    from utils.quantize.debugger import LayerError
    from utils.quantize.edgetpu_check import Report as EdgeTpuReport

DEFAULT_HEAD_RANGE = (-6.0, 10.0)


@dataclass
class Settings:
    """What keras_to_tflite_quant.py's flags say, with its defaults."""

    num_samples: int = 100
    augment: bool = True
    method: ranges.Method | str = field(default_factory=lambda: ranges.parse_method(ranges.DEFAULT_METHOD))
    io_type: str = "uint8"
    quantize: bool = True                                   # False: a float32 model
    head_range: tuple[float, float] | None = DEFAULT_HEAD_RANGE  # None: the calibrated head ranges
    post: PostProcess | None = None                         # end in TFLite_Detection_PostProcess
    labels: list[str] | None = None                         # packed into a detections model
    labels_file: Path | None = None                         # where they were read (for messages)
    anchors: Path | None = None
    eval_images: list[Path] | None = None                   # default: up to 8 calibration images
    debug_layers: int | None = None
    report: bool = True                                     # head errors, fidelity, Edge TPU check


@dataclass
class Report:
    output: Path
    meta: YoloMeta
    settings: Settings
    method: ranges.Method | None          # the activation ranges used (None for a float model)
    head_range: tuple[float, float] | None
    calibration: str = ""                 # what was calibrated on
    images_read: int = 0                  # distinct calibration images decoded
    tiny_images: list[Path] = field(default_factory=list)  # those far smaller than the network input
    seconds: float = 0.0
    auto: Choice | None = None            # when --calibration auto chose the method
    head_errors: list[tuple[tuple[int, int], float, float]] = field(default_factory=list)
    fidelity: Fidelity | None = None      # detections against the float model
    layer_errors: list[LayerError] = field(default_factory=list)
    edgetpu: EdgeTpuReport | None = None
    peak_mib: float | None = None

    @property
    def size_mib(self) -> float:
        return self.output.stat().st_size / 2**20

    def summary(self) -> str:
        """The ``wrote …`` line."""
        s = self.settings
        kind = "float32 (unquantized)" if not s.quantize else f"full int8, {s.io_type} input/output"
        line = f"wrote {self.output} ({kind}; {self.size_mib:.2f} MiB) in {self.seconds:.1f} s"
        if s.quantize:
            line += (f", calibrated on {self.calibration}; activation ranges: {self.method} "
                     f"({self.method.describe()})")
        if self.head_range:
            line += f", head range fixed to [{self.head_range[0]:g}, {self.head_range[1]:g}]"
        if s.post:
            post = s.post
            line += (f"; outputs: TFLite_Detection_PostProcess (boxes, classes, scores, count; up to "
                     f"{post.max_detections} detections >= {post.score_threshold:g}, per-class NMS at IoU "
                     f"{post.iou_threshold:g})")
        return line


def _progress(method: ranges.Method | str) -> Callable[[list], Iterator]:
    """Progress lines per pass over the samples: calibration, then the histograms of a range method."""
    from utils.quantize.debugger import DEBUG_PASSES

    passes = iter(["calibrating"] + (["measuring activation ranges"] if str(method) != "minmax" else [])
                  + list(DEBUG_PASSES))
    return lambda items: console.progress(items, next(passes, DEBUG_PASSES[-1]))


def quantize_model(model_path: Path, output: Path, dataset: list[Path], settings: Settings | None = None,
                   log: Callable[[str], None] = lambda line: None) -> Report:
    """Quantize the Keras model at ``model_path`` to ``output`` (written atomically), calibrated on
    the images ``dataset``; ``log`` gets the lines a user should see before the work is done."""
    from utils.quantize import auto, calibration, edgetpu_check
    from utils.quantize import quantizer as quantize
    from utils.runtime.keras_engine import load_keras_model

    settings = settings or Settings()
    started = time.perf_counter()
    model = load_keras_model(model_path)
    meta = quantize.model_meta(model, model_path, settings.anchors)
    log(f"resize: {meta.resize}, the model's own (calibration images are resized as inference.py will)")
    if settings.post and settings.labels is not None and len(settings.labels) != meta.classes:
        raise UserError(f"classes {settings.labels_file}: {len(settings.labels)} names for a model of "
                        f"{meta.classes} classes")
    fixed = settings.quantize and settings.head_range is not None and quantize.logit_heads(meta)
    head_range = settings.head_range if fixed else None
    report = Report(output, meta, settings, None, head_range)
    method = settings.method
    if isinstance(method, str) and method != auto.AUTO:
        try:
            method = ranges.parse_method(method)  # "mse", "percentile:99.9" as the flag takes them
        except ValueError as error:
            raise UserError(f"calibration: {error}") from None
    if settings.quantize and method == auto.AUTO:
        report.auto = auto.choose(model, meta, dataset, settings, head_range, log)
        method = report.auto.method
    report.method = method if settings.quantize else None
    samples = calibration.Calibration(calibration.plan(dataset, settings.num_samples, settings.augment))
    progress = _progress(method)
    undecodable = UserError(f"dataset: none of the {len(dataset)} images could be decoded")
    try:
        tflite = quantize.to_tflite(model, samples.dataset(meta.input_size, meta.resize, progress),
                                    settings.io_type, quantize=settings.quantize, method=method,
                                    post=settings.post, meta=meta, head_range=head_range)
    except Exception:  # TensorFlow's own error for a calibration without samples says less
        if settings.quantize and samples.used == 0:
            raise undecodable from None
        raise
    if settings.quantize and samples.used == 0:
        raise undecodable
    stopping.check()  # a stop signal that TensorFlow swallowed while it built a graph: nothing is written
    report.calibration = samples.describe()
    report.images_read = len(samples.sizes)
    report.tiny_images = samples.tiny_images(meta.input_size) if settings.quantize else []
    meta.output_range = head_range
    quantize.finish(tflite, meta, output, head_range, settings.post, settings.labels)
    report.seconds = time.perf_counter() - started
    if settings.quantize and settings.report:
        _measure(report, model, dataset, samples, progress)
        report.edgetpu = edgetpu_check.check(output)
    report.peak_mib = peak_memory_mib()
    return report


def _measure(report: Report, model, dataset: list[Path], samples, progress) -> None:
    """The report's figures: head errors and detections against the float model, layer errors."""
    from utils.evaluation import fidelity
    from utils.media.images import evenly_spread, read_image
    from utils.quantize import quantizer as quantize
    from utils.yolo.detector import Detector

    settings, meta = report.settings, report.meta
    paths = settings.eval_images or evenly_spread(dataset, 8)
    images = [image for image in (read_image(p) for p in paths) if image is not None]
    if not settings.post:  # a detections model has no head outputs to compare
        report.head_errors = quantize.head_errors(model, report.output, images, meta.input_size, report.head_range)
    int8 = Detector(report.output)
    report.fidelity = fidelity.compare(lambda image: fidelity.keras_detect(model, meta, image),
                                       int8.detect, images, int8.engine.kernels)
    if settings.debug_layers:
        from utils.quantize import debugger
        report.layer_errors = debugger.layer_errors(model, samples.dataset(meta.input_size, meta.resize, progress),
                                                    settings.io_type, report.method)
