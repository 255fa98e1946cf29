"""Custom Keras layers that lower to Edge TPU-friendly TFLite ops.

Registered serializable, so ``keras.models.load_model`` finds them once this module is imported.
"""
from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tinyyolo")
class UpsampleNearest(keras.layers.Layer):
    """Darknet's ``[upsample]``: ``out[y][x] = in[y // s][x // s]``.

    Lowers to one RESIZE_NEAREST_NEIGHBOR of op version 2 (no half-pixel centres), which the
    Edge TPU maps; Keras' ``UpSampling2D`` lowers to TILE/RESHAPE, which it does not.
    """

    def __init__(self, stride: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.stride = int(stride)

    def call(self, inputs):
        size = [inputs.shape[1] * self.stride, inputs.shape[2] * self.stride]
        return tf.raw_ops.ResizeNearestNeighbor(images=inputs, size=size, align_corners=False,
                                                half_pixel_centers=False)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, height * self.stride, width * self.stride, channels)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}


@keras.saving.register_keras_serializable(package="tinyyolo")
class ChannelGroup(keras.layers.Layer):
    """Darknet's route ``groups``/``group_id``: channel slice ``group_id`` of ``groups``."""

    def __init__(self, groups: int, group_id: int, **kwargs):
        super().__init__(**kwargs)
        self.groups, self.group_id = int(groups), int(group_id)

    def call(self, inputs):
        width = inputs.shape[-1] // self.groups
        return inputs[..., self.group_id * width:(self.group_id + 1) * width]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // self.groups)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "group_id": self.group_id}


@keras.saving.register_keras_serializable(package="tinyyolo")
class ChannelSlice(keras.layers.Layer):
    """Channels ``start`` to ``stop``: the overlap Darknet's [shortcut] adds when channel counts differ."""

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)

    def call(self, inputs):
        return inputs[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}
