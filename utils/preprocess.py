"""Darknet's letterbox, reproduced exactly and fast, plus quantization to the model's input.

Darknet (``src/image.c``) loads RGB in [0, 1], scales the image to fit the network with an
integer-arithmetic size, resizes with its own two-pass *align-corners* bilinear
``resize_image`` and pastes the result centred on a canvas of 0.5. OpenCV's ``INTER_LINEAR``
samples at half-pixel centres instead and measurably changes detections, so it is not used.

Everything that depends only on the image size (sample indices, weights, buffers) is made when
the size changes, so a video pays for it once. Per frame the resize is five memory-bound passes
(a row take, a lookup table, two blends, a column remap) in float32, like Darknet, so that the
result stays exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# blendLinear divides by (w0 + w1 + 1e-5); scaling both weights makes that epsilon negligible.
_WEIGHT_SCALE = np.float32(1 << 20)


@dataclass(frozen=True)
class Letterbox:
    """Where the resized image sits on the network canvas."""

    image_size: tuple[int, int]    # (width, height) of the original image
    net_size: tuple[int, int]      # (width, height) of the network input
    new_size: tuple[int, int]      # (width, height) of the resized image
    offset: tuple[int, int]        # (x, y) of its top-left corner on the canvas


def letterbox_geometry(image_size: tuple[int, int], net_size: tuple[int, int]) -> Letterbox:
    """Darknet's ``letterbox_image`` sizes, integer arithmetic included."""
    (w, h), (net_w, net_h) = image_size, net_size
    if np.float32(net_w) / np.float32(w) < np.float32(net_h) / np.float32(h):
        new_w, new_h = net_w, (h * net_w) // w
    else:
        new_w, new_h = (w * net_h) // h, net_h
    return Letterbox(image_size, net_size, (new_w, new_h), ((net_w - new_w) // 2, (net_h - new_h) // 2))


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
    """``resize_image`` for one (input size, output size): sample tables and buffers made once.

    The vertical pass runs first, on whole source rows, so the only gathers are a row ``take``
    on the 8-bit image and one column ``remap``; a lookup table turns the 8-bit rows into
    floats (and into the caller's units) on the way. Every buffer is preallocated: fresh
    multi-megabyte temporaries per frame cost page faults that measured 4x the arithmetic itself.
    """

    def __init__(self, image_size: tuple[int, int], new_size: tuple[int, int], channels: int):
        (w, h), (new_w, new_h) = image_size, new_size
        row0, row1, dy = _axis_samples(h, new_h)
        top_weight, bottom_weight = np.float32(1) - dy, dy.copy()
        bottom_weight[-1] = 0  # Darknet skips the second tap on the last row
        if h == 1:
            bottom_weight[:] = 0
        col0, col1, dx = _axis_samples(w, new_w)
        left_weight, right_weight = np.float32(1) - dx, dx.copy()
        col0[-1], left_weight[-1], right_weight[-1] = w - 1, 1, 0  # last column: the last pixel
        if w == 1:
            col0[:], left_weight[:], right_weight[:] = 0, 1, 0
        self.rows = np.concatenate([row0, row1])
        self.vertical = [np.repeat(weight[:, None] * _WEIGHT_SCALE, w, 1) for weight in (top_weight, bottom_weight)]
        columns = np.concatenate([col0, col1]).astype(np.int16)  # left taps, then right taps
        self.column_map = np.stack([np.broadcast_to(columns, (new_h, 2 * new_w)),
                                    np.broadcast_to(np.arange(new_h, dtype=np.int16)[:, None], (new_h, 2 * new_w))], -1)
        self.horizontal = [np.repeat(weight[None, :] * _WEIGHT_SCALE, new_h, 0) for weight in (left_weight, right_weight)]
        self.gathered = np.empty((2 * new_h, w, channels), np.uint8)
        self.gathered_float = np.empty((2 * new_h, w, channels), np.float32)
        self.blended_rows = np.empty((new_h, w, channels), np.float32)
        self.taps = np.empty((new_h, 2 * new_w, channels), np.float32)
        self.output = np.empty((new_h, new_w, channels), np.float32)

    def __call__(self, image: np.ndarray, table: np.ndarray) -> np.ndarray:
        """The resized image of ``table[pixel]`` values (float32), in a buffer reused by the next call."""
        np.take(image, self.rows, axis=0, out=self.gathered, mode="clip")  # "raise" would buffer
        cv2.LUT(self.gathered, table, dst=self.gathered_float)
        half, new_w = len(self.rows) // 2, self.output.shape[1]
        cv2.blendLinear(self.gathered_float[:half], self.gathered_float[half:], *self.vertical, dst=self.blended_rows)
        cv2.remap(self.blended_rows, self.column_map, None, cv2.INTER_NEAREST, dst=self.taps)
        return cv2.blendLinear(self.taps[:, :new_w], self.taps[:, new_w:], *self.horizontal, dst=self.output)


def _pixel_table(scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """8-bit value → float32 ``value * scale + offset``: the lookup table that feeds ``_Resizer``.

    The resize weights of each output pixel sum to 1, so an offset passes through unchanged.
    """
    return (np.arange(256, dtype=np.float64) * scale + offset).astype(np.float32).reshape(1, 256)


def resize_image(image: np.ndarray, new_size: tuple[int, int]) -> np.ndarray:
    """Darknet's ``resize_image`` of an HxWxC uint8 image; float32 in the input's scale."""
    h, w = image.shape[:2]
    return _Resizer((w, h), tuple(new_size), image.shape[2])(image, _pixel_table()).copy()


class Preprocessor:
    """BGR uint8 image → network input tensor ``(1, H, W, 3)`` in the input's own dtype.

    ``scale`` and ``zero_point`` are the input tensor's quantization (``real = scale * (q - zp)``);
    for a float input leave them at (0, 0) and get RGB in [0, 1], Darknet's values.
    """

    def __init__(self, net_size: tuple[int, int], dtype=np.float32, scale: float = 0.0, zero_point: int = 0):
        self.net_size = tuple(net_size)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.uint8, np.int8) or (self.dtype != np.float32 and scale <= 0):
            raise ValueError(f"unsupported input tensor: {self.dtype} with scale {scale}")
        self.quantized = self.dtype != np.float32
        # Darknet's pixel is float(value / 255.); a quantized input holds pixel / scale + zero point,
        # which the lookup table computes, so the resize works in the input's own units.
        unit, offset = (1 / scale, float(zero_point)) if self.quantized else (1.0, 0.0)
        self._table = _pixel_table(unit / 255, offset)
        net_w, net_h = self.net_size
        self._canvas = np.empty((1, net_h, net_w, 3), self.dtype)
        fill = np.full((1, 1, 3), 0.5 * unit + offset, np.float32)
        self._fill = self._round(fill)[0, 0] if self.quantized else fill[0, 0]
        self._box: Letterbox | None = None

    def _round(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Input units (float32) → the 8-bit input type, rounded to nearest and saturated."""
        if self.dtype == np.uint8:  # values are never negative, so its |x| is a no-op; the fastest
            return cv2.convertScaleAbs(values, out)
        return cv2.addWeighted(values, 1.0, values, 0.0, 0.0, dst=out, dtype=cv2.CV_8S)

    def geometry(self, image: np.ndarray) -> Letterbox:
        return letterbox_geometry((image.shape[1], image.shape[0]), self.net_size)

    def _prepare(self, box: Letterbox) -> None:
        """The border, the resizer and the buffers only change with the geometry."""
        (new_w, new_h), (x, y) = box.new_size, box.offset
        self._canvas[:] = self._fill
        self._resizer = _Resizer(box.image_size, box.new_size, 3)
        self._quantized = np.empty((new_h, new_w, 3), self.dtype)
        self._window = self._canvas[0, y:y + new_h, x:x + new_w]
        self._box = box

    def __call__(self, image_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The input tensor (a buffer reused across calls) and the letterbox geometry."""
        box = self.geometry(image_bgr)
        if box != self._box:
            self._prepare(box)
        resized = self._resizer(image_bgr, self._table)
        if self.quantized:
            resized = self._round(resized, self._quantized)
        # cvtColor knows no int8; swapping channels is the same on the bytes viewed as uint8.
        as_bytes = np.uint8 if self.dtype.itemsize == 1 else self.dtype
        cv2.cvtColor(resized.view(as_bytes), cv2.COLOR_BGR2RGB, dst=self._window.view(as_bytes))
        return self._canvas, box


def letterbox_float(image_bgr: np.ndarray, net_size: tuple[int, int]) -> np.ndarray:
    """The letterboxed RGB image in [0, 1], ``(1, H, W, 3)`` float32: Darknet's network input."""
    tensor, _ = Preprocessor(net_size)(image_bgr)
    return tensor.copy()
