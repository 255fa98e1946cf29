"""Build a Keras model from parsed Darknet sections and weights."""
from __future__ import annotations

import keras
import numpy as np

from .darknet_cfg import Section, route_sources
from .darknet_weights import ConvWeights
from .errors import UserError
from .keras_layers import ChannelGroup, UpsampleNearest
from .yolo_meta import Head, YoloMeta

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


def build_model(sections: list[Section], weights: list[ConvWeights], input_size: tuple[int, int],
                leaky: str = "keep") -> tuple[keras.Model, YoloMeta]:
    """Keras model with a static ``(1, H, W, 3)`` input and one raw output per ``[yolo]`` head."""
    width, height = input_size
    inputs = keras.Input(batch_shape=(1, height, width, sections[0].int("channels", 3)), name="image")
    outputs, heads = [], []
    anchors, classes = None, None
    conv_weights = iter(weights)
    layers = sections[1:]
    x = inputs
    for index, section in enumerate(layers):
        name = f"{section.kind[:4]}_{index}"
        if section.kind == "convolutional":
            size, stride = section.int("size", 1), section.int("stride", 1)
            pad = size // 2 if section.int("pad", 0) else section.int("padding", 0)
            if stride == 1 and 2 * pad == size - 1:
                padding = "same"
            else:
                padding = "valid"
                if pad:
                    x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
            kernel, bias = fold_batch_norm(next(conv_weights))
            conv = keras.layers.Conv2D(section.int("filters"), size, stride, padding=padding,
                                       groups=section.int("groups", 1), name=name)
            x = conv(x)
            conv.set_weights([kernel, bias])
            x = _activation(x, section.options.get("activation", "logistic"), leaky, name)
        elif section.kind == "maxpool":
            stride = section.int("stride", 1)
            size = section.int("size", stride)
            padding = {_pool_padding(section, size, stride, x.shape[axis]) for axis in (1, 2)}
            if len(padding) > 1:
                raise UserError(f"{section.where()} pads the two axes differently")
            x = keras.layers.MaxPooling2D(size, stride, padding=padding.pop(), name=name)(x)
        elif section.kind == "route":
            groups, group_id = section.int("groups", 1), section.int("group_id", 0)
            if not 0 <= group_id < groups:
                raise UserError(f"{section.where('group_id')} group_id={group_id} is not below groups={groups}")
            parts = []
            for source in route_sources(section, index, len(layers)):
                part = outputs[source]
                if groups > 1:
                    part = ChannelGroup(groups, group_id, name=f"{name}_from{source}")(part)
                parts.append(part)
            sizes = {tuple(p.shape[1:3]) for p in parts}
            if len(sizes) > 1:
                raise UserError(f"{section.where('layers')} joins layers of different sizes {sorted(sizes)}")
            x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name=name)(parts)
        elif section.kind == "shortcut":
            other = outputs[index + section.int("from")]
            if other.shape != x.shape:
                raise UserError(f"{section.where('from')} adds tensors of shapes {other.shape} and {x.shape}")
            x = keras.layers.Add(name=name)([x, other])
            x = _activation(x, section.options.get("activation", "linear"), leaky, name)
        elif section.kind == "upsample":
            stride = section.int("stride", 2)
            if stride < 1 or section.float("scale", 1.0) != 1.0:
                raise UserError(f"{section.where()} only stride >= 1 and scale=1 are supported")
            x = UpsampleNearest(stride, name=name)(x)
        elif section.kind == "yolo":
            these_anchors = section.floats("anchors")
            if len(these_anchors) % 2:
                raise UserError(f"{section.where('anchors')} has an odd count of numbers")
            these_anchors = list(zip(these_anchors[0::2], these_anchors[1::2]))
            these_classes = section.int("classes", 20)
            mask = section.ints("mask", list(range(len(these_anchors))))
            if anchors is not None and (these_anchors != anchors or these_classes != classes):
                raise UserError(f"{section.where()} anchors or classes differ from the first [yolo]")
            anchors, classes = these_anchors, these_classes
            if not mask or max(mask) >= len(anchors) or min(mask) < 0:
                raise UserError(f"{section.where('mask')} mask {mask} does not fit {len(anchors)} anchors")
            if x.shape[-1] != len(mask) * (5 + classes):
                raise UserError(f"{section.where()} expects {len(mask)} x (5 + {classes}) channels, "
                                f"its input has {x.shape[-1]}")
            heads.append(Head(mask, (int(x.shape[2]), int(x.shape[1])), section.float("scale_x_y", 1.0)))
            outputs_index = len(heads) - 1
            x = keras.layers.Identity(name=f"yolo_{outputs_index}")(x)
        outputs.append(x)
    head_outputs = [outputs[i] for i, s in enumerate(layers) if s.kind == "yolo"]
    model = keras.Model(inputs, head_outputs, name="darknet")
    meta = YoloMeta((width, height), classes, anchors, heads, leaky)
    return model, meta
