"""Darknet's letterbox, reproduced exactly and fast, plus quantization to the model's input.

Darknet (``src/image.c``) loads RGB in [0, 1], scales the image to fit the network with an
integer-arithmetic size, resizes with its own two-pass *align-corners* bilinear
``resize_image`` and pastes the result centred on a canvas of 0.5. OpenCV's ``INTER_LINEAR``
samples at half-pixel centres instead and measurably changes detections, so it is not used.

Everything that depends only on the image size (sample indices and weights) is computed once
per size and cached, so a video pays for it once.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

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

    Every buffer is preallocated: fresh multi-megabyte temporaries per frame cost page faults
    that measured 4x the arithmetic itself.
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
        self.vertical = (np.repeat(top_weight[:, None], w, 1) * _WEIGHT_SCALE,
                         np.repeat(bottom_weight[:, None], w, 1) * _WEIGHT_SCALE)
        grid_rows = np.broadcast_to(np.arange(new_h, dtype=np.int16)[:, None], (new_h, new_w))
        self.maps = [np.ascontiguousarray(np.stack([np.broadcast_to(c.astype(np.int16), (new_h, new_w)), grid_rows], -1))
                     for c in (col0, col1)]
        self.horizontal = (np.repeat(left_weight[None, :], new_h, 0) * _WEIGHT_SCALE,
                           np.repeat(right_weight[None, :], new_h, 0) * _WEIGHT_SCALE)
        self.gathered = np.empty((2 * new_h, w, channels), np.uint8)
        self.gathered_float = np.empty((2 * new_h, w, channels), np.float32)
        self.blended_rows = np.empty((new_h, w, channels), np.float32)
        self.left = np.empty((new_h, new_w, channels), np.float32)
        self.right = np.empty_like(self.left)
        self.output = np.empty_like(self.left)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """The resized image (float32, the input's scale), in a buffer reused by the next call."""
        np.take(image, self.rows, axis=0, out=self.gathered, mode="clip")  # "raise" would buffer
        np.copyto(self.gathered_float, self.gathered)
        half = len(self.rows) // 2
        cv2.blendLinear(self.gathered_float[:half], self.gathered_float[half:], *self.vertical, dst=self.blended_rows)
        cv2.remap(self.blended_rows, self.maps[0], None, cv2.INTER_NEAREST, dst=self.left)
        cv2.remap(self.blended_rows, self.maps[1], None, cv2.INTER_NEAREST, dst=self.right)
        return cv2.blendLinear(self.left, self.right, *self.horizontal, dst=self.output)


@lru_cache(maxsize=8)
def _resizer(image_size: tuple[int, int], new_size: tuple[int, int], channels: int) -> _Resizer:
    return _Resizer(image_size, new_size, channels)


def resize_image(image: np.ndarray, new_size: tuple[int, int]) -> np.ndarray:
    """Darknet's ``resize_image`` of an HxWxC uint8 image; float32 in the input's scale."""
    h, w = image.shape[:2]
    return _resizer((w, h), tuple(new_size), image.shape[2])(image).copy()


class Preprocessor:
    """BGR uint8 image → network input tensor ``(1, H, W, 3)`` in the input's own dtype.

    ``scale`` and ``zero_point`` are the input tensor's quantization (``real = scale * (q - zp)``);
    for a float input leave them at (0, 0) and get RGB in [0, 1].
    """

    def __init__(self, net_size: tuple[int, int], dtype=np.float32, scale: float = 0.0, zero_point: int = 0):
        self.net_size = tuple(net_size)
        self.dtype = np.dtype(dtype)
        quantized = self.dtype != np.float32 and scale > 0
        # q = pixel / 255 / scale + zp, with pixel in 0..255
        self.alpha = 1.0 / (255.0 * scale) if quantized else 1.0 / 255.0
        self.beta = float(zero_point) if quantized else 0.0
        self._cv_type = {np.dtype(np.uint8): cv2.CV_8U, np.dtype(np.int8): cv2.CV_8S,
                         np.dtype(np.float32): cv2.CV_32F}[self.dtype]
        net_w, net_h = self.net_size
        fill = np.full((1, 1, 3), 127.5, np.float32)
        self._fill = self._quantize(fill)[0, 0]
        self._canvas = np.empty((1, net_h, net_w, 3), self.dtype)
        self._box: Letterbox | None = None

    def _quantize(self, pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return cv2.addWeighted(pixels, self.alpha, pixels, 0.0, self.beta, dst=out, dtype=self._cv_type)

    def geometry(self, image: np.ndarray) -> Letterbox:
        return letterbox_geometry((image.shape[1], image.shape[0]), self.net_size)

    def __call__(self, image_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The input tensor (a buffer reused across calls) and the letterbox geometry."""
        box = self.geometry(image_bgr)
        (new_w, new_h), (x, y) = box.new_size, box.offset
        if box != self._box:  # the border and the buffers only change with the geometry
            self._canvas[:] = self._fill
            self._box = box
            self._rgb = np.empty((new_h, new_w, 3), np.float32)
            self._quantized = np.empty((new_h, new_w, 3), self.dtype)
        resized = _resizer(box.image_size, box.new_size, 3)(image_bgr)
        cv2.cvtColor(resized, cv2.COLOR_BGR2RGB, dst=self._rgb)
        self._canvas[0, y:y + new_h, x:x + new_w] = self._quantize(self._rgb, self._quantized)
        return self._canvas, box


def letterbox_float(image_bgr: np.ndarray, net_size: tuple[int, int]) -> np.ndarray:
    """The letterboxed RGB image in [0, 1], ``(1, H, W, 3)`` float32: Darknet's network input."""
    tensor, _ = Preprocessor(net_size)(image_bgr)
    return tensor.copy()
