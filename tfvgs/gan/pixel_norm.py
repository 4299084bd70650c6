"""Pixelwise feature vector normalization (Karras et al. 2018, sec. 4.2).

Each spatial position's feature vector is scaled to unit RMS over channels. It stops generator and discriminator
magnitudes from escalating in the GAN game without batch statistics, so a sample's output never depends on the
rest of the batch (which also keeps the h4 edits of paper 000 per-image exact).
"""
from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="tfvgs")
class PixelNorm(keras.layers.Layer):
    """`x / sqrt(mean(x**2 over the last axis) + epsilon)`; works on [B, C] latents and [B, H, W, C] maps."""

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        if epsilon <= 0:
            raise ValueError(f"`epsilon` must be positive. Received: epsilon={epsilon!r}")
        self.epsilon = float(epsilon)

    def call(self, inputs):
        mean_square = keras.ops.mean(keras.ops.square(inputs), axis=-1, keepdims=True)
        return inputs * keras.ops.rsqrt(mean_square + self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config
