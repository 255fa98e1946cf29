"""Detection as a library: a YOLO ``.tflite`` model and its class names → detections per image.

    from utils.yolo.detector import Detector

    detector = Detector("out/yolov3-tiny-cpu.tflite", "model_data/coco.names", threshold=0.3)
    for detection in detector.detect(cv2.imread("dog.jpg")):
        print(detection.label, detection.score, detection.box)

The same pre- and post-processing as ``inference.py``, which is built on it.
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from utils.errors import UserError
from utils.files import darknet_lines, read_text
from utils.runtime.device import Cancelled, Device, run_on
from utils.runtime.device_pool import spread
from utils.runtime.edgetpu import device_path, parse_devices
from utils.runtime.engine import open_engine
from utils.runtime.faults import DeviceFault, FaultPolicy
from utils.runtime.interpreters import KERNELS
from utils.runtime.pipeline import pipeline
from utils.stopping import StopRequest
from utils.tflite.task_metadata import associated_labels
from utils.yolo.adapter import YoloAdapter, input_size, model_meta, postprocess
from utils.yolo.image_check import as_bgr
from utils.yolo.letterbox import Preprocessor
from utils.yolo.meta import YoloMeta
from utils.yolo.options import choice_problem, iou_problem, reconnect_problem, threads_problem, threshold_problem
from utils.yolo.ssd_outputs import PostProcess
from utils.yolo.types import RESIZE_MODES, Detections

Item = TypeVar("Item")
NMS_RULES = {"greedy": "iou", "diou": "diou", None: None}
DEFAULT_IOU = 0.45  # Darknet's detector test
RUNTIME_CHOICES = ("auto", "litert", "tflite_runtime", "tensorflow")


def read_class_names(path: str | Path) -> list[str]:
    names = [line.strip() for line in darknet_lines(read_text(path, "classes")) if line.strip()]
    if not names:
        raise UserError(f"classes {path}: no class names in it")
    return names


def check_classes(meta: YoloMeta, names: list[str], source: str | Path) -> None:
    if len(names) != meta.classes:
        per_head = len(meta.heads[0].mask)
        raise UserError(f"classes {source}: {len(names)} names, but the model has {meta.classes} classes "
                        f"({per_head} x (5 + {meta.classes}) channels per head)")


@dataclass
class Timing:
    """Milliseconds of one frame; ``setup`` is the one-off cost of a new image size, not in ``total``.
    ``device`` is the Edge TPU that ran it (None: the CPU or the first device). ``failed_on`` names
    the device of each failed attempt before it, and ``lost`` the milliseconds they cost."""

    pre: float
    invoke: float
    post: float
    setup: float = 0.0
    device: str | None = None
    failed_on: list[str] = field(default_factory=list)
    lost: float = 0.0

    @property
    def total(self) -> float:
        return self.pre + self.invoke + self.post

    def to_record(self) -> dict:
        """``{"ms": {...}}`` (to 0.001 ms), with ``device`` and ``failed_on`` when known."""
        ms = {"pre": round(self.pre, 3), "invoke": round(self.invoke, 3), "post": round(self.post, 3)}
        if self.setup:
            ms["setup"] = round(self.setup, 3)
        if self.failed_on:
            ms["lost"] = round(self.lost, 3)
        record: dict = {"ms": ms}
        if self.device:
            record["device"] = self.device
        if self.failed_on:
            record["failed_on"] = self.failed_on
        return record


class Detector:
    """A YOLO ``.tflite`` model ready to detect, on the CPU or one or several Edge TPUs.

    ``model``: a ``.tflite`` from keras_to_tflite_quant.py (or its ``_edgetpu.tflite`` with
    ``edge_tpu=True``), or a float ``.h5``/``.keras`` from convert.py (needs TensorFlow).
    ``classes``: a names file, one per line (without it, the names packed in a ``--outputs detections``
    model, else class numbers).
    ``threshold``: objectness x class probability, as Darknet's ``-thresh``. ``iou``: NMS threshold.
    ``runtime``: "auto", "litert", "tflite_runtime" or "tensorflow". ``kernels``: "xnnpack",
    "builtin" or "reference" (default: the runtime's fastest). ``device``: "usb:0", "pci:0", a list
    "usb:0,usb:1" or "all" (with ``edge_tpu``). ``anchors``: only for a model without metadata.
    ``nms``: "greedy" or "diou" (default: the model's own). ``resize``: "letterbox" or "stretch"
    (default: the model's own, as convert.py recorded it; another gives a one-line warning).

    Edge TPU faults: an invoke that fails (the first one included) is tried once more on the same
    device; if it fails again the device is closed, its frames go to the other devices (or wait) and
    it is reopened after 0.5 s, 1 s, 2 s ... up to 8 s between attempts. ``reconnect`` caps the
    attempts per outage (None: keep trying); past it, ``detect`` and ``detect_stream`` raise
    ``DeviceError`` (a ``UserError``) once no device is left. ``on_event`` gets one line per event
    (default: stderr).

    Threads: a Detector may be shared. Calls are serialised per device: each device runs one frame at
    a time, and with several devices concurrent calls run side by side. ``close()`` (or ``with
    Detector(...) as detector:``) releases every device. A bad argument is a ``UserError``.
    """

    def __init__(self, model: str | Path, classes: str | Path | None = None, threshold: float = 0.25,
                 iou: float | None = None, *, runtime: str = "auto", kernels: str | None = None,
                 threads: int | None = None, edge_tpu: bool = False, device: str | None = None,
                 anchors: str | Path | None = None, nms: str | None = None, reconnect: int | None = None,
                 on_event: Callable[[str], None] | None = None, resize: str | None = None):
        self.devices: list[Device] = []
        if device is not None and not edge_tpu:
            raise UserError(f"--device {device} names an Edge TPU: add --edge_tpu")
        problem = (choice_problem(runtime, RUNTIME_CHOICES, "runtime") or choice_problem(kernels, (*KERNELS, None), "kernels")
                   or choice_problem(nms, tuple(NMS_RULES), "nms") or choice_problem(resize, (*RESIZE_MODES, None), "resize")
                   or threads_problem(threads) or threshold_problem(threshold) or (iou is not None and iou_problem(iou))
                   or reconnect_problem(reconnect))
        if problem:
            raise UserError(problem)
        names = read_class_names(classes) if classes is not None else None
        device_names = parse_devices(device) if edge_tpu else [None]
        paths = [device_path(name) if edge_tpu else None for name in device_names]  # before a device can drop
        for i, path in enumerate(paths):
            if path is not None and path in paths[:i]:
                raise UserError(f"--device {device}: {device_names[paths.index(path)]} and {device_names[i]} are the "
                                f"same Edge TPU ({path}); name each device once")
        # Each Edge TPU's first invoke is run by its Device, inside the fault policy.
        self.engine = open_engine(model, runtime, threads, kernels, edge_tpu, device_names[0], warm=not edge_tpu)
        self.meta = model_meta(self.engine, anchors)
        if resize is not None and resize != self.meta.resize:
            print(f"warning: resize {resize} overrides model {model}'s own {self.meta.resize}: detections will "
                  "differ from Darknet's for this model", file=sys.stderr)
            self.meta = replace(self.meta, resize=resize)
        if names is None and hasattr(self.engine, "data"):  # a --outputs detections model packs its labels
            names = associated_labels(self.engine.data)
            classes = f"packed in model {model}"
        if names is not None:
            check_classes(self.meta, names, classes)
        self.names, self.threshold, self.nms_kind = names, threshold, NMS_RULES[nms]
        self.iou = DEFAULT_IOU if iou is None else iou
        opened = [self.engine]  # the first device's first open takes it

        def open_adapter(name: str | None) -> YoloAdapter:
            engine = opened.pop() if opened else open_engine(model, runtime, threads, kernels, edge_tpu, name, warm=False)
            try:
                engine.warm_up()
            except DeviceFault:
                engine.close()
                raise
            return YoloAdapter(engine, self.meta)
        self.policy = FaultPolicy(reconnect=reconnect)
        report = on_event or (lambda line: print(line, file=sys.stderr, flush=True))
        self.devices = [Device(name, open_adapter, self.policy, report, edge_tpu, path)
                        for name, path in zip(device_names, paths)]
        post = PostProcess.of(self.meta)
        if post is not None and threshold < post.score_threshold:
            print(f"warning: model {model} returns detections scoring {post.score_threshold:g} or more only (its "
                  "TFLite_Detection_PostProcess was written so: keras_to_tflite_quant.py --score-threshold)",
                  file=sys.stderr)
        if post is not None and (iou is not None or nms is not None):
            print(f"warning: model {model} does its own NMS (IoU {post.iou_threshold:g}, as keras_to_tflite_quant.py "
                  "--nms-iou wrote it): --iou and --nms do not apply to it", file=sys.stderr)
        size = input_size(self.engine)
        if tuple(self.meta.input_size) != size:
            print(f"warning: metadata input size {self.meta.input_size} differs from the model's "
                  f"{size}; using the model's", file=sys.stderr)
            self.meta.input_size = size

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Release every device (its interpreter and Edge TPU); later calls raise ``UserError``."""
        for device in self.devices:
            device.close()
        self.devices = []

    def _check_open(self) -> None:
        if not self.devices:
            raise UserError("detector: closed; create a new Detector")

    @property
    def adapters(self) -> list[YoloAdapter | None]:
        """Each device's adapter (None while the device is down)."""
        return [device.worker for device in self.devices]

    def detect(self, image_bgr: np.ndarray) -> Detections:
        """Detections in ``image_bgr`` (an HxWx3 uint8 BGR image, as OpenCV reads it; grayscale and
        BGRA are converted, anything else is a ``UserError``), in image pixels. Raises
        ``DeviceError`` if no Edge TPU can run it within the ``reconnect`` policy."""
        return self.detect_timed(image_bgr)[0]

    def detect_timed(self, image_bgr: np.ndarray) -> tuple[Detections, Timing]:
        """``detect``, with the time of each stage."""
        self._check_open()
        if len(self.devices) > 1:
            with closing(self._spread([image_bgr], lambda image: image)) as results:
                return next(results).result
        return self._detect_one(image_bgr)

    def _detect_one(self, image_bgr: np.ndarray, cancel: StopRequest | None = None) -> tuple[Detections, Timing]:
        failed_on: list[str] = []
        start = time.perf_counter()
        device = self.devices[0]
        detections, timing = run_on(device, lambda adapter: self._detect_on(adapter, image_bgr), failed_on, cancel)
        timing.device, timing.failed_on = device.name, failed_on
        timing.lost = device.lost_ms(start) if failed_on else 0.0
        return detections, timing

    def _detect_on(self, adapter: YoloAdapter, image_bgr: np.ndarray) -> tuple[Detections, Timing]:
        heads, box, pre, invoke, setup = adapter.timed_run(as_bgr(image_bgr))
        start = time.perf_counter()
        detections = postprocess(heads, self.meta, box, self.threshold, self.iou, self.nms_kind)
        detections.names = self.names
        return detections, Timing(pre, invoke, (time.perf_counter() - start) * 1e3, setup)

    def _preprocessor(self) -> Preprocessor:
        adapter = next((a for a in self.adapters if a is not None), None) or YoloAdapter(self.engine, self.meta)
        return adapter.new_preprocessor()

    def _spread(self, items: Iterable[Item], image_of: Callable[[Item], np.ndarray], cancel: StopRequest | None = None):
        """Every item on whichever device is free; a generator of ``Done`` with (detections, timing)."""
        for done in spread(self.devices, items, lambda adapter, item: self._detect_on(adapter, image_of(item)), cancel):
            timing = done.result[1]
            timing.device, timing.failed_on, timing.lost = done.device.name, done.failed_on, done.lost_ms
            yield done

    def detect_stream(self, items: Iterable[Item], image_of: Callable[[Item], np.ndarray] = lambda image: image,
                      pipelined: bool | None = None, stop: StopRequest | threading.Event | None = None
                      ) -> Iterator[tuple[Item, Detections, Timing]]:
        """(item, detections, timing) for each item, in order. With several devices each takes the
        next item when it is free, working on its own frame. With one, letterbox, invoke and
        post-processing run as a pipeline, each on its own frame, when ``pipelined`` (by default when
        ``invoke()`` leaves a core free: on a CPU whose cores it already fills, overlapping only
        makes the stages compete; ``bench/video_loop.py`` measures both).

        ``stop`` (a ``graceful_stop()`` request) ends the stream early, a wait for a device that is
        being reopened included: the frames in flight are dropped, the ones yielded stand."""
        self._check_open()
        if pipelined is None:
            pipelined = self.engine.leaves_cpu_free
        cancel = StopRequest(stop)
        try:
            if len(self.devices) > 1:
                for done in self._spread(items, image_of, cancel):
                    yield done.item, *done.result
            elif pipelined:
                yield from self._pipelined(items, image_of, cancel)
            else:
                for item in items:
                    if cancel.is_set():
                        return
                    yield item, *self._detect_one(image_of(item), cancel)
        except Cancelled:
            return

    def _pipelined(self, items: Iterable[Item], image_of: Callable[[Item], np.ndarray], cancel: StopRequest):
        device = self.devices[0]
        letterbox = self._preprocessor()  # its own buffers: a concurrent detect() uses the adapter's

        def prepare(item):
            start = time.perf_counter()
            tensor, box = letterbox(as_bgr(image_of(item)))
            tensor = tensor.copy()  # the letterbox reuses its buffer for the next frame
            setup = letterbox.setup_ms
            return item, tensor, box, (time.perf_counter() - start) * 1e3 - setup, setup

        def invoke(prepared):
            item, tensor, box, pre, setup = prepared
            failed_on: list[str] = []
            start = time.perf_counter()
            heads = run_on(device, lambda adapter: adapter.run(tensor), failed_on, cancel)
            lost = device.lost_ms(start) if failed_on else 0.0
            return item, heads, box, pre, (time.perf_counter() - start) * 1e3 - lost, setup, failed_on, lost

        def post(invoked):
            item, heads, box, pre, invoke_ms, setup, failed_on, lost = invoked
            start = time.perf_counter()
            detections = postprocess(heads, self.meta, box, self.threshold, self.iou, self.nms_kind)
            detections.names = self.names
            return item, detections, Timing(pre, invoke_ms, (time.perf_counter() - start) * 1e3, setup,
                                            device.name, failed_on, lost)

        yield from pipeline(items, [prepare, invoke, post], stop=cancel)  # closing it sets cancel first
