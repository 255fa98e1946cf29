"""Darknet itself as a reference, for the tests and benchmarks: Debian's ``libdarknet.so`` through
ctypes, and the photos the comparisons run on (the repository's samples, plus Darknet's own).

Debian's build is Darknet 2018, which letterboxes. AlexeyAB's and Hank.ai's Darknet stretch instead,
with the same ``resize_image``; ``detect(..., resize="stretch")`` runs that path in the same library:
the image resized to the network size, ``network_predict``, boxes scaled back per axis.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from pathlib import Path

import numpy as np

LIBRARY = Path("/usr/lib/darknet/libdarknet.so")
DARKNET_DATA = Path("/usr/share/darknet/data")
SAMPLES = Path(__file__).resolve().parents[2] / "model_data" / "samples"


def reference_photos() -> list[Path]:
    """The repository's sample photos, plus Darknet's own when Debian's darknet is installed."""
    paths = sorted(SAMPLES.glob("*.jpg"))
    names = {p.name for p in paths}
    return paths + [p for p in sorted(DARKNET_DATA.glob("*.jpg")) if p.name not in names]


class Image(ctypes.Structure):
    _fields_ = [("w", ctypes.c_int), ("h", ctypes.c_int), ("c", ctypes.c_int), ("data", ctypes.POINTER(ctypes.c_float))]


class Box(ctypes.Structure):
    _fields_ = [("x", ctypes.c_float), ("y", ctypes.c_float), ("w", ctypes.c_float), ("h", ctypes.c_float)]


class Detection(ctypes.Structure):
    _fields_ = [("bbox", Box), ("classes", ctypes.c_int), ("prob", ctypes.POINTER(ctypes.c_float)),
                ("mask", ctypes.POINTER(ctypes.c_float)), ("objectness", ctypes.c_float), ("sort_class", ctypes.c_int)]


@contextlib.contextmanager
def _quiet_stdio():
    """Silence C-level stdout/stderr (file descriptors 1 and 2)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def available() -> bool:
    return LIBRARY.is_file()


class Darknet:
    """One network loaded in libdarknet; images are passed as decoded pixels so decoders cannot differ."""

    def __init__(self, cfg: Path, weights: Path):
        lib = self.lib = ctypes.CDLL(str(LIBRARY))
        lib.load_network.restype = ctypes.c_void_p
        lib.load_network.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
        lib.make_image.restype = Image
        lib.make_image.argtypes = [ctypes.c_int] * 3
        lib.letterbox_image.restype = Image
        lib.letterbox_image.argtypes = [Image, ctypes.c_int, ctypes.c_int]
        lib.resize_image.restype = Image
        lib.resize_image.argtypes = [Image, ctypes.c_int, ctypes.c_int]
        lib.network_predict.restype = ctypes.POINTER(ctypes.c_float)
        lib.network_predict.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float)]
        lib.set_batch_network.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.network_width.argtypes = lib.network_height.argtypes = [ctypes.c_void_p]
        lib.free_image.argtypes = [Image]
        lib.network_predict_image.restype = ctypes.POINTER(ctypes.c_float)
        lib.network_predict_image.argtypes = [ctypes.c_void_p, Image]
        lib.get_network_boxes.restype = ctypes.POINTER(Detection)
        lib.get_network_boxes.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_float, ctypes.c_float,
                                          ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.do_nms_sort.argtypes = [ctypes.POINTER(Detection), ctypes.c_int, ctypes.c_int, ctypes.c_float]
        lib.free_detections.argtypes = [ctypes.POINTER(Detection), ctypes.c_int]
        with _quiet_stdio():  # Darknet prints its layer table
            self.net = lib.load_network(str(cfg).encode(), str(weights).encode(), 0)

    def _image(self, rgb: np.ndarray) -> Image:
        """A darknet image (CHW float) holding ``rgb`` (HxWx3 float in [0, 1])."""
        h, w, c = rgb.shape
        image = self.lib.make_image(w, h, c)
        chw = np.ascontiguousarray(rgb.transpose(2, 0, 1), np.float32)
        ctypes.memmove(image.data, chw.ctypes.data, chw.nbytes)
        return image

    def _resized(self, resize, rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        image = self._image(rgb)
        resized = resize(image, *size)
        out = np.ctypeslib.as_array(resized.data, (3, size[1], size[0])).transpose(1, 2, 0).copy()
        self.lib.free_image(image)
        self.lib.free_image(resized)
        return out

    def letterbox(self, rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """libdarknet's ``letterbox_image`` of ``rgb`` (HxWx3 float in [0, 1]): Darknet 2018's input."""
        return self._resized(self.lib.letterbox_image, rgb, size)

    def stretch(self, rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """libdarknet's ``resize_image`` of ``rgb`` to ``size``: the forks' input."""
        return self._resized(self.lib.resize_image, rgb, size)

    def detect(self, image_bgr: np.ndarray, classes: int, threshold: float = 0.25, nms: float = 0.45,
               resize: str = "letterbox"):
        """[(class_id, score, [x1, y1, x2, y2] pixels)] as ``darknet detector test`` finds them: Darknet
        2018's with ``resize="letterbox"``, AlexeyAB's and Hank.ai's with ``"stretch"``."""
        h, w = image_bgr.shape[:2]
        image = self._image(image_bgr[..., ::-1].astype(np.float32) / 255.0)
        count = ctypes.c_int(0)
        if resize == "stretch":
            net_w, net_h = self.lib.network_width(self.net), self.lib.network_height(self.net)
            sized = self.lib.resize_image(image, net_w, net_h)
            self.lib.set_batch_network(self.net, 1)
            self.lib.network_predict(self.net, sized.data)
            self.lib.free_image(sized)
            # Boxes for an image of the network's own size come back uncorrected: relative to each axis.
            dets = self.lib.get_network_boxes(self.net, net_w, net_h, threshold, 0.5, None, 1, ctypes.byref(count))
        else:
            self.lib.network_predict_image(self.net, image)
            dets = self.lib.get_network_boxes(self.net, w, h, threshold, 0.5, None, 1, ctypes.byref(count))
        self.lib.do_nms_sort(dets, count.value, classes, nms)
        found = []
        for i in range(count.value):
            box = dets[i].bbox
            corners = np.clip([(box.x - box.w / 2) * w, (box.y - box.h / 2) * h,
                               (box.x + box.w / 2) * w, (box.y + box.h / 2) * h], 0, [w, h, w, h])
            for j in range(classes):
                if dets[i].prob[j] > threshold:
                    found.append((j, float(dets[i].prob[j]), [float(v) for v in corners]))
        self.lib.free_detections(dets, count.value)
        self.lib.free_image(image)
        return found
