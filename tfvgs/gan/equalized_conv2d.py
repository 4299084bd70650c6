"""2D convolution (channels-last, stride 1, zero "same" padding) with the equalized learning rate.

As in `EqualizedDense`, the kernel is stored as N(0, 1) and scaled at run time by `gain / sqrt(k * k * in_channels)`
(Karras et al. 2018, sec. 4.1), so Adam's per-parameter normalisation gives all layers the same learning speed.
"""
from __future__ import annotations

import math

import keras


@keras.saving.register_keras_serializable(package="tfvgs")
class EqualizedConv2D(keras.layers.Layer):
    """Square `kernel_size` convolution with runtime He scaling.

    Args:
        filters: output channels.
        kernel_size: odd kernel size (1 for toRGB/fromRGB, 3 elsewhere in PGGAN).
        gain: He gain; sqrt(2) before a (leaky) ReLU, 1 for the linear toRGB.
        use_bias: add a learned per-channel bias (initialized to zero).
    """

    def __init__(self, filters: int, kernel_size: int = 3, gain: float = math.sqrt(2.0), use_bias: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        if int(filters) != filters or filters < 1:
            raise ValueError(f"`filters` must be a positive integer. Received: filters={filters!r}")
        if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be a positive odd integer. Received: kernel_size={kernel_size!r}")
        if gain <= 0:
            raise ValueError(f"`gain` must be positive. Received: gain={gain!r}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.gain = float(gain)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(f"{self.name} expects [batch, height, width, channels] with known channels. "
                             f"Received: {input_shape}")
        in_channels = input_shape[-1]
        k = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(k, k, in_channels, self.filters),
                                      initializer=keras.initializers.RandomNormal(0.0, 1.0))
        self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
                     if self.use_bias else None)
        self.runtime_scale = self.gain / math.sqrt(k * k * in_channels)

    def call(self, inputs):
        outputs = keras.ops.conv(inputs, self.kernel * self.runtime_scale, strides=1, padding="same",
                                 data_format="channels_last")
        if self.bias is not None:
            outputs = outputs + self.bias
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": self.kernel_size, "gain": self.gain,
                       "use_bias": self.use_bias})
        return config
