"""A small CNN image branch for CPU training, with the same interface as the VGG16 / ResNet50 encoders.

Three stages of [3x3 conv /2 - BN - ReLU, 3x3 conv - BN - ReLU] after a 3x3 stem, then a 3x3 linear conv to D (as the
VGG16 branch): 64 px -> 8 x 8 x D, 32 px -> 4 x 4 x D. The map stays spatial so MISA matchmaps localise objects;
BatchNorm (synchronized across replicas) lets it train from scratch quickly.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfvgs.models.encoder_options import check_encoder_options, fan_out_he_normal, halved_shape, scaled_channels

STAGE_CHANNELS = (64, 128, 256)


@keras.saving.register_keras_serializable(package="tfvgs")
class SmallImageEncoder(keras.layers.Layer):
    """Images [B, H, W, 3] in [-1, 1] -> feature map [B, ceil(H/8), ceil(W/8), embedding_dim].

    Args:
        embedding_dim: D.
        width_multiplier: scales the stem/stage channels (32, 64, 128, 256).
        batchnorm_momentum: moving-average momentum.
    """

    def __init__(self, embedding_dim: int = 1024, width_multiplier: float = 1.0, batchnorm_momentum: float = 0.9,
                 **kwargs):
        super().__init__(**kwargs)
        embedding_dim, width_multiplier = check_encoder_options(embedding_dim, width_multiplier)
        self.embedding_dim = int(embedding_dim)
        self.width_multiplier = float(width_multiplier)
        self.batchnorm_momentum = float(batchnorm_momentum)

        def conv_bn(channels, stride, name):
            return [keras.layers.Conv2D(scaled_channels(channels, self.width_multiplier), 3, strides=stride,
                                        padding="valid", use_bias=False, kernel_initializer=fan_out_he_normal(),
                                        name=f"{name}_conv"),
                    keras.layers.BatchNormalization(momentum=self.batchnorm_momentum, epsilon=1e-5,
                                                    synchronized=True, name=f"{name}_bn")]

        self.units = [conv_bn(32, 1, "stem")]
        for s, channels in enumerate(STAGE_CHANNELS):
            self.units.append(conv_bn(channels, 2, f"stage{s + 1}_down"))
            self.units.append(conv_bn(channels, 1, f"stage{s + 1}_conv"))
        self.embedding = keras.layers.Conv2D(self.embedding_dim, 3, padding="same", name="embedding")

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] not in (None, 3):
            raise ValueError(f"SmallImageEncoder expects images [B, H, W, 3]. Received: input_shape={input_shape}")
        super().build(input_shape)

    def call(self, images, training=None):
        x = images
        for conv, bn in self.units:
            # Symmetric 1-pixel pad: a stride-2 output (i, j) is centred on input (2i, 2j), like PyTorch padding=1.
            x = conv(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]))
            x = tf.nn.relu(bn(x, training=training))
        return self.embedding(x)

    def compute_output_shape(self, input_shape):
        return halved_shape(input_shape, len(STAGE_CHANNELS), self.embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update(embedding_dim=self.embedding_dim, width_multiplier=self.width_multiplier,
                      batchnorm_momentum=self.batchnorm_momentum)
        return config
