"""Fully connected layer with the equalized learning rate of Karras et al. 2018 (sec. 4.1).

The kernel is stored as N(0, 1) and multiplied at run time by the He constant `gain / sqrt(fan_in)`. Adam divides
each update by a running gradient scale, so storing unit-variance weights gives every layer the same effective
learning rate regardless of its fan-in; initializing with the He std instead would make wide layers learn slower.
"""
from __future__ import annotations

import math

import keras


@keras.saving.register_keras_serializable(package="tfvgs")
class EqualizedDense(keras.layers.Layer):
    """`y = x @ (w * gain / sqrt(fan_in)) + b` with `w ~ N(0, 1)` and `b = 0` at init.

    Args:
        units: output size.
        gain: He gain; sqrt(2) before a (leaky) ReLU, 1 for a linear output.
        use_bias: add a learned bias (initialized to zero).
    """

    def __init__(self, units: int, gain: float = math.sqrt(2.0), use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        if int(units) != units or units < 1:
            raise ValueError(f"`units` must be a positive integer. Received: units={units!r}")
        if gain <= 0:
            raise ValueError(f"`gain` must be positive. Received: gain={gain!r}")
        self.units = int(units)
        self.gain = float(gain)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        fan_in = input_shape[-1]
        if fan_in is None:
            raise ValueError(f"The last input dimension of {self.name} must be known. Received: {input_shape}")
        self.kernel = self.add_weight(name="kernel", shape=(fan_in, self.units),
                                      initializer=keras.initializers.RandomNormal(0.0, 1.0))
        self.bias = (self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
                     if self.use_bias else None)
        self.runtime_scale = self.gain / math.sqrt(fan_in)

    def call(self, inputs):
        outputs = keras.ops.matmul(inputs, self.kernel * self.runtime_scale)
        if self.bias is not None:
            outputs = outputs + self.bias
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "gain": self.gain, "use_bias": self.use_bias})
        return config
