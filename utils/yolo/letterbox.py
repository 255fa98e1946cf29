"""Darknet's letterbox and stretch, reproduced to float rounding and fast, plus quantization to the
model's input.

Darknet (``src/image.c``) loads RGB in [0, 1] and resizes with its own two-pass *align-corners*
bilinear ``resize_image``. The letterbox (Darknet 2018, ``letter_box=1``) scales the image to fit
the network with an integer-arithmetic size and pastes it centred on a canvas of 0.5; the stretch
(AlexeyAB's and Hank.ai's default) resizes it to the network size. OpenCV's ``INTER_LINEAR``
samples at half-pixel centres instead and measurably changes detections, so it is not used.

The resize runs as a small TFLite graph (``resize_graph``) on XNNPACK, made once per image
size, so a video pays for it once. It is within 1.8e-7 of Darknet's float values (XNNPACK's
arithmetic rounds differently) everywhere but on the last row and column, where Darknet has
quirks of its own; those two lines are recomputed here with Darknet's operations.
"""
from __future__ import annotations

import time

import cv2
import numpy as np

from utils.runtime.interpreters import interpreter_api
from utils.yolo.resize_graph import resize_graph
from utils.yolo.types import RESIZE_MODES, Letterbox


def _axis_samples(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Darknet's align-corners samples on one axis: (index, next index, weight of next).

    Computed in float32 as Darknet does, quirks included: the last output sample uses only
    ``(1 - d) * in[i]`` (rows) or the last input pixel (columns).
    """
    scale = np.float32(size_in - 1) / np.float32(size_out - 1) if size_out > 1 else np.float32(0)
    position = np.arange(size_out, dtype=np.float32) * scale
    index = position.astype(np.int64)
    fraction = (position - index.astype(np.float32)).astype(np.float32)
    following = np.minimum(index + 1, size_in - 1)
    return index, following, fraction


class _Resizer:
    """Darknet's ``resize_image`` for one (image size, output size, output type), written as RGB.

    ``pixel_scale`` turns 8-bit pixels into the float values Darknet resizes (1/255 for a
    network input); an 8-bit ``dtype`` is then quantized with ``quantization`` (scale, zero point)
    by ``convert``, the same arithmetic on every runtime (their QUANTIZE kernels round ties differently).
    """

    def __init__(self, image_size: tuple[int, int], new_size: tuple[int, int], pixel_scale: float,
                 dtype=np.float32, quantization: tuple[float, int] = (0.0, 0), threads: int | None = None,
                 runtime: str = "auto", kernels: str | None = None):
        self.dtype, self.quantization = np.dtype(dtype), quantization
        graph = resize_graph(image_size, new_size, pixel_scale)
        self.interpreter = interpreter_api(runtime).interpreter(kernels, model_content=graph, num_threads=threads)
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        # Darknet's value of each 8-bit pixel: float(p / 255.) for a network input.
        self.values = (np.arange(256) * pixel_scale).astype(np.float32)
        (w, h), (new_w, new_h) = image_size, new_size
        row0, row1, dy = _axis_samples(h, new_h)
        col0, col1, dx = _axis_samples(w, new_w)
        # RESIZE_BILINEAR gives Darknet's last row only when the last row sample lands exactly on
        # the last source row, and its last column only when that sample is not short of the last
        # source column. Otherwise _edges recomputes both, the way Darknet does: its last row
        # takes (1 - dy) of one source row and skips the second tap, and its last column is the
        # last pixel's column.
        self.fix_edges = row0[-1] != h - 1 or dy[-1] != 0 or col0[-1] != w - 1
        top, bottom = np.float32(1) - dy, dy.copy()
        bottom[-1] = 0
        col0[-1] = col1[-1] = w - 1
        left, right = np.float32(1) - dx, dx.copy()
        left[-1], right[-1] = 1, 0
        self.rows, self.columns = np.concatenate([row0, row1]), np.concatenate([col0, col1])
        self.vertical, self.horizontal = (top[:, None], bottom[:, None]), (left[:, None], right[:, None])

    def _edges(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Darknet's last row and last column of the resized ``image`` (BGR, float32), with
        Darknet's operations in Darknet's order."""
        (top, bottom), (left, right) = self.vertical, self.horizontal
        column = self.values[image[self.rows, -1]]  # the last column of Darknet's first pass
        rows = len(column) // 2
        last_column = top * column[:rows] + bottom * column[rows:]
        row = self.values[image[self.rows[rows - 1]][self.columns]]  # the source row of the last row
        columns = len(row) // 2
        last_row = top[-1] * (left * row[:columns] + right * row[columns:])
        return last_row, last_column

    def convert(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Non-negative float values in the output's type: ``round(v / scale) + zero_point``, ties to
        even, saturated; into ``out`` (same shape) when given."""
        if self.dtype == np.float32:
            if out is None:
                return values
            np.copyto(out, values)
            return out
        scale, zero_point = self.quantization
        shift = 128 if self.dtype == np.int8 else 0  # int8 is computed as uint8 + 128, then its bits flipped
        values = np.ascontiguousarray(values, np.float32)
        if out is None:
            out = np.empty(values.shape, self.dtype)
        levels = out.view(np.uint8)
        if values.ndim == 3:  # an image: written straight into ``out`` (a window of the canvas, rows apart)
            written = cv2.convertScaleAbs(values, levels, alpha=1 / scale, beta=zero_point + shift)
            if not np.shares_memory(written, levels):  # OpenCV made its own array after all
                levels[...] = written
        else:
            flat = values.reshape(len(values) if values.ndim else 1, -1)
            levels[...] = cv2.convertScaleAbs(flat, alpha=1 / scale, beta=zero_point + shift).reshape(values.shape)
        if shift:
            np.bitwise_xor(levels, 0x80, out=levels)
        return out

    def __call__(self, image: np.ndarray, out: np.ndarray) -> None:
        """Resize an HxWx3 uint8 BGR ``image`` into ``out`` (new_h x new_w x 3, RGB, a view is fine)."""
        pixels = self.interpreter.tensor(self.input_index)()[0]  # views into the interpreter, which
        cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=pixels)        # must not outlive the call
        del pixels
        self.interpreter.invoke()
        resized = self.interpreter.tensor(self.output_index)()[0]
        self.convert(resized, out)
        del resized
        if self.fix_edges:
            last_row, last_column = self._edges(image)
            out[-1], out[:, -1] = self.convert(last_row)[:, ::-1], self.convert(last_column)[:, ::-1]


def resize_image(image: np.ndarray, new_size: tuple[int, int]) -> np.ndarray:
    """Darknet's ``resize_image`` of an HxWx3 uint8 BGR image: RGB float32, in the input's scale."""
    h, w = image.shape[:2]
    resized = np.empty((new_size[1], new_size[0], 3), np.float32)
    _Resizer((w, h), tuple(new_size), 1.0)(image, resized)
    return resized


class Preprocessor:
    """BGR uint8 image → network input tensor ``(1, H, W, 3)`` in the input's own dtype, letterboxed
    or stretched as ``resize`` says (one of ``RESIZE_MODES``).

    ``scale`` and ``zero_point`` are the input tensor's quantization (``real = scale * (q - zp)``);
    for a float input leave them at (0, 0) and get RGB in [0, 1], Darknet's values. The resize runs
    on ``runtime`` with ``kernels``, as the model does (kernel sets differ by a float rounding on ties).
    """

    def __init__(self, net_size: tuple[int, int], dtype=np.float32, scale: float = 0.0, zero_point: int = 0,
                 threads: int | None = None, runtime: str = "auto", kernels: str | None = None,
                 resize: str = "letterbox"):
        if resize not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {resize!r}: use one of {', '.join(RESIZE_MODES)}")
        self.net_size, self.resize = tuple(net_size), resize
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.uint8, np.int8) or (self.dtype != np.float32 and scale <= 0):
            raise ValueError(f"unsupported input tensor: {self.dtype} with scale {scale}")
        self.quantization = (float(scale), int(zero_point))
        self.threads, self.runtime, self.kernels = threads, runtime, kernels
        net_w, net_h = self.net_size
        self._canvas = np.empty((1, net_h, net_w, 3), self.dtype)
        self._box: Letterbox | None = None
        self.setup_ms = 0.0  # of the last call: building (and warming) the resizer for a new image size

    def geometry(self, image: np.ndarray) -> Letterbox:
        return Letterbox.fit((image.shape[1], image.shape[0]), self.net_size, self.resize)

    def _prepare(self, box: Letterbox) -> None:
        """The border, the resizer and the window only change with the geometry."""
        (new_w, new_h), (x, y) = box.new_size, box.offset
        self._resizer = _Resizer(box.image_size, box.new_size, 1 / 255, self.dtype, self.quantization,
                                self.threads, self.runtime, self.kernels)
        self._resizer(np.zeros((*box.image_size[::-1], 3), np.uint8), self._canvas[0, :new_h, :new_w])  # first run
        self._canvas[:] = self._resizer.convert(np.float32(0.5))  # Darknet's grey border
        self._window = self._canvas[0, y:y + new_h, x:x + new_w]
        self._box = box

    def __call__(self, image_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The input tensor (a buffer reused across calls) and the letterbox geometry."""
        box = self.geometry(image_bgr)
        self.setup_ms = 0.0
        if box != self._box:
            start = time.perf_counter()
            self._prepare(box)
            self.setup_ms = (time.perf_counter() - start) * 1e3
        self._resizer(image_bgr, self._window)
        return self._canvas, box


def letterbox_float(image_bgr: np.ndarray, net_size: tuple[int, int], resize: str = "letterbox") -> np.ndarray:
    """The letterboxed (or stretched) RGB image in [0, 1], ``(1, H, W, 3)`` float32: Darknet's network input."""
    tensor, _ = Preprocessor(net_size, resize=resize)(image_bgr)
    return tensor.copy()
