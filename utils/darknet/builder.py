"""Build a Keras model from parsed Darknet sections and weights."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import keras
import numpy as np

from utils.darknet.cfg import Section, nms_rule, route_sources, shortcut_source
from utils.darknet.weights import ConvWeights
from utils.errors import UserError
from utils.runtime.keras_layers import ChannelGroup, ChannelSlice, UpsampleNearest
from utils.yolo.meta import Head, YoloMeta

LEAKY_MODES = ("keep", "relu", "prelu")
LEAKY_SLOPE = 0.1


def fold_batch_norm(weights: ConvWeights) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias with Darknet's batch norm, ``(x - mean) / (sqrt(var) + 1e-6)``, folded in."""
    if weights.bn_scale is None:
        return weights.kernel, weights.bias
    factor = weights.bn_scale.astype(np.float64) / (np.sqrt(weights.bn_variance.astype(np.float64)) + 1e-6)
    kernel = weights.kernel * factor
    bias = weights.bias - weights.bn_mean * factor
    return kernel.astype(np.float32), bias.astype(np.float32)


def _activation(x, name: str, leaky: str, layer_name: str):
    if name == "linear":
        return x
    if name == "leaky":
        if leaky == "relu":
            return keras.layers.ReLU(name=f"{layer_name}_relu")(x)
        if leaky == "prelu":
            return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(LEAKY_SLOPE),
                                      shared_axes=[1, 2], name=f"{layer_name}_prelu")(x)
        return keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"{layer_name}_leaky")(x)
    if name == "relu":
        return keras.layers.ReLU(name=f"{layer_name}_relu")(x)
    keras_name = {"logistic": "sigmoid", "mish": "mish"}[name]
    return keras.layers.Activation(keras_name, name=f"{layer_name}_{name}")(x)


def _pool_padding(section: Section, size: int, stride: int, extent: int) -> str:
    """Keras padding that reproduces Darknet's maxpool geometry on one axis."""
    padding = section.int("padding", size - 1)
    darknet = ((extent + padding - size) // stride + 1, padding // 2)
    same_out = -(-extent // stride)
    same = (same_out, max((same_out - 1) * stride + size - extent, 0) // 2)
    valid = ((extent - size) // stride + 1, 0)
    if darknet == same:
        return "same"
    if darknet == valid:
        return "valid"
    raise UserError(f"{section.where()} size={size} stride={stride} padding={padding} on a "
                    f"{extent}-pixel input has no Keras equivalent")


@dataclass
class Build:
    """What the builders share while the model grows: every layer's output, the weights, the heads."""

    leaky: str
    weights: Iterator[ConvWeights]
    layers: list[Section]
    outputs: list = field(default_factory=list)
    yolo: list[tuple[Section, Head]] = field(default_factory=list)


def _name(section: Section, index: int) -> str:
    return f"{section.kind[:4]}_{index}"


def _convolutional(section: Section, x, index: int, build: Build):
    name = _name(section, index)
    size, stride = section.int("size", 1), section.int("stride", 1)
    pad = size // 2 if section.int("pad", 0) else section.int("padding", 0)
    if stride == 1 and 2 * pad == size - 1:
        padding = "same"
    else:
        padding = "valid"
        if pad:
            x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    kernel, bias = fold_batch_norm(next(build.weights))
    conv = keras.layers.Conv2D(section.int("filters"), size, stride, padding=padding,
                               groups=section.int("groups", 1), name=name)
    x = conv(x)
    conv.set_weights([kernel, bias])
    return _activation(x, section.options.get("activation", "logistic"), build.leaky, name)


def _maxpool(section: Section, x, index: int, build: Build):
    stride = section.int("stride", 1)
    size = section.int("size", stride)
    padding = {_pool_padding(section, size, stride, x.shape[axis]) for axis in (1, 2)}
    if len(padding) > 1:
        raise UserError(f"{section.where()} pads the two axes differently")
    return keras.layers.MaxPooling2D(size, stride, padding=padding.pop(), name=_name(section, index))(x)


def _route(section: Section, x, index: int, build: Build):
    name = _name(section, index)
    groups, group_id = section.int("groups", 1), section.int("group_id", 0)
    if not 0 <= group_id < groups:
        raise UserError(f"{section.where('group_id')} group_id={group_id} is not below groups={groups}")
    parts = []
    for source in route_sources(section, index):
        part = build.outputs[source]
        if groups > 1:
            part = ChannelGroup(groups, group_id, name=f"{name}_from{source}")(part)
        parts.append(part)
    sizes = {tuple(p.shape[1:3]) for p in parts}
    if len(sizes) > 1:
        raise UserError(f"{section.where('layers')} joins layers of different sizes {sorted(sizes)}")
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name=name)(parts)


def _shortcut(section: Section, x, index: int, build: Build):
    """Darknet's ``shortcut_cpu``: the previous layer plus the ``from`` layer on the channels they
    share; the previous layer's other channels pass unchanged (YOLOv3-tiny-PRN adds 256 to 128)."""
    name = _name(section, index)
    other = build.outputs[shortcut_source(section, index)]
    if other.shape[1:3] != x.shape[1:3]:
        raise UserError(f"{section.where('from')} adds layers of different sizes {tuple(other.shape[1:3])} "
                        f"and {tuple(x.shape[1:3])}")
    channels, other_channels = x.shape[-1], other.shape[-1]
    if other_channels > channels:
        other = ChannelSlice(0, channels, name=f"{name}_first{channels}")(other)
    if other_channels < channels:
        head = keras.layers.Add(name=f"{name}_add")([ChannelSlice(0, other_channels, name=f"{name}_head")(x), other])
        x = keras.layers.Concatenate(name=name)([head, ChannelSlice(other_channels, channels, name=f"{name}_rest")(x)])
    else:
        x = keras.layers.Add(name=name)([x, other])
    return _activation(x, section.options.get("activation", "linear"), build.leaky, name)


def _upsample(section: Section, x, index: int, build: Build):
    stride = section.int("stride", 2)
    if section.float("scale", 1.0) != 1.0:
        raise UserError(f"{section.where('scale')} only scale=1 is supported")
    return UpsampleNearest(stride, name=_name(section, index))(x)


def _yolo(section: Section, x, index: int, build: Build):
    anchors = section.floats("anchors")
    if len(anchors) % 2:
        raise UserError(f"{section.where('anchors')} has an odd count of numbers")
    classes = section.int("classes", 20)
    mask = section.ints("mask", list(range(len(anchors) // 2)))
    if build.yolo:
        first = build.yolo[0][0]
        if (first.floats("anchors"), first.int("classes", 20), nms_rule(first)) != (anchors, classes, nms_rule(section)):
            raise UserError(f"{section.where()} anchors, classes or NMS differ from the first [yolo]")
    if not mask or max(mask) >= len(anchors) // 2 or min(mask) < 0:
        raise UserError(f"{section.where('mask')} mask {mask} does not fit {len(anchors) // 2} anchors")
    if x.shape[-1] != len(mask) * (5 + classes):
        raise UserError(f"{section.where()} expects {len(mask)} x (5 + {classes}) channels, "
                        f"its input has {x.shape[-1]}")
    new_coords = bool(section.int("new_coords", 0))
    if new_coords and build.layers[index - 1].options.get("activation") != "logistic":
        raise UserError(f"{section.where('new_coords')} new_coords=1 needs activation=logistic on the "
                        "convolution before it (Darknet applies no sigmoid of its own then)")
    build.yolo.append((section, Head(mask, (int(x.shape[2]), int(x.shape[1])),
                                     section.float("scale_x_y", 1.0), new_coords)))
    return keras.layers.Identity(name=f"yolo_{len(build.yolo) - 1}")(x)


# One builder per section kind, as Darknet's parser.c has one parse function per section.
BUILDERS: dict[str, Callable] = {"convolutional": _convolutional, "maxpool": _maxpool, "route": _route,
                                 "shortcut": _shortcut, "upsample": _upsample, "yolo": _yolo}


def build_model(sections: list[Section], weights: list[ConvWeights], input_size: tuple[int, int],
                leaky: str = "keep") -> tuple[keras.Model, YoloMeta]:
    """Keras model with a static ``(1, H, W, 3)`` input and one raw output per ``[yolo]`` head."""
    width, height = input_size
    inputs = keras.Input(batch_shape=(1, height, width, sections[0].int("channels", 3)), name="image")
    build = Build(leaky, iter(weights), sections[1:])
    x = inputs
    for index, section in enumerate(sections[1:]):
        x = BUILDERS[section.kind](section, x, index, build)
        build.outputs.append(x)
    head_outputs = [build.outputs[i] for i, s in enumerate(sections[1:]) if s.kind == "yolo"]
    model = keras.Model(inputs, head_outputs, name="darknet")
    first = build.yolo[0][0]
    anchors = first.floats("anchors")
    nms, nms_beta = nms_rule(first)
    meta = YoloMeta((width, height), first.int("classes", 20), list(zip(anchors[0::2], anchors[1::2])),
                    [head for _, head in build.yolo], leaky, nms=nms, nms_beta=nms_beta or 0.6)
    return model, meta
