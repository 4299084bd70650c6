"""ResNet50 image branch of paper 001 sec. 4.1: every residual stage, no global pooling or fc, then a 1x1 conv to D.

Written out (torchvision layout, stride on the 3x3 conv of each bottleneck) rather than taken from keras.applications
so that every BatchNorm is `synchronized=True`: multi-replica training then normalises with the global batch, as one
device would. 224 px -> 7 x 7 x D. Random init (He-normal over fan_out); no ImageNet weights.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfvgs.models.encoder_options import check_encoder_options, fan_out_he_normal, halved_shape, scaled_channels

# (bottleneck width, blocks, stride of the first block) per stage; block output = 4 x width.
RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
EXPANSION = 4


def _batchnorm(momentum, name):
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-5, synchronized=True, name=name)


def _conv(filters, kernel, stride, name):
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False,
                               kernel_initializer=fan_out_he_normal(), name=name)


def _pad(x, amount):
    return tf.pad(x, [[0, 0], [amount, amount], [amount, amount], [0, 0]]) if amount else x


@keras.saving.register_keras_serializable(package="tfvgs")
class Resnet50ImageEncoder(keras.layers.Layer):
    """Images [B, H, W, 3] in [-1, 1] -> feature map [B, ceil(H/32), ceil(W/32), embedding_dim].

    Args:
        embedding_dim: D (paper: 1024).
        width_multiplier: scales every ResNet channel count.
        batchnorm_momentum: moving-average momentum (0.9 = PyTorch's 0.1).
    """

    def __init__(self, embedding_dim: int = 1024, width_multiplier: float = 1.0, batchnorm_momentum: float = 0.9,
                 **kwargs):
        super().__init__(**kwargs)
        embedding_dim, width_multiplier = check_encoder_options(embedding_dim, width_multiplier)
        self.embedding_dim = int(embedding_dim)
        self.width_multiplier = float(width_multiplier)
        self.batchnorm_momentum = float(batchnorm_momentum)
        m = self.batchnorm_momentum
        self.stem_conv = _conv(scaled_channels(64, self.width_multiplier), 7, 2, "stem_conv")
        self.stem_bn = _batchnorm(m, "stem_bn")
        # Each block: (stride, [conv, bn] x 3, shortcut conv or None, shortcut bn or None).
        self.blocks = []
        in_channels = scaled_channels(64, self.width_multiplier)
        for s, (width, count, first_stride) in enumerate(RESNET50_STAGES):
            width = scaled_channels(width, self.width_multiplier)
            for b in range(count):
                stride = first_stride if b == 0 else 1
                prefix = f"stage{s + 1}_block{b + 1}"
                needs_projection = stride != 1 or in_channels != width * EXPANSION
                self.blocks.append([
                    _conv(width, 1, 1, f"{prefix}_conv1"), _batchnorm(m, f"{prefix}_bn1"),
                    _conv(width, 3, stride, f"{prefix}_conv2"), _batchnorm(m, f"{prefix}_bn2"),
                    _conv(width * EXPANSION, 1, 1, f"{prefix}_conv3"), _batchnorm(m, f"{prefix}_bn3"),
                ] + ([_conv(width * EXPANSION, 1, stride, f"{prefix}_shortcut_conv"),
                      _batchnorm(m, f"{prefix}_shortcut_bn")] if needs_projection else []))
                in_channels = width * EXPANSION
        self.embedding = keras.layers.Conv2D(self.embedding_dim, 1, name="embedding")

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] not in (None, 3):
            raise ValueError(f"Resnet50ImageEncoder expects images [B, H, W, 3]. Received: input_shape={input_shape}")
        super().build(input_shape)

    def call(self, images, training=None):
        x = tf.nn.relu(self.stem_bn(self.stem_conv(_pad(images, 3)), training=training))
        x = tf.nn.max_pool2d(_pad(x, 1), 3, 2, "VALID")  # zero pad is safe after ReLU
        for layers in self.blocks:
            conv1, bn1, conv2, bn2, conv3, bn3 = layers[:6]
            out = tf.nn.relu(bn1(conv1(x), training=training))
            out = tf.nn.relu(bn2(conv2(_pad(out, 1)), training=training))
            out = bn3(conv3(out), training=training)
            shortcut = x
            if len(layers) > 6:
                shortcut = layers[7](layers[6](x), training=training)
            x = tf.nn.relu(out + shortcut)
        return self.embedding(x)

    def compute_output_shape(self, input_shape):
        return halved_shape(input_shape, 5, self.embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update(embedding_dim=self.embedding_dim, width_multiplier=self.width_multiplier,
                      batchnorm_momentum=self.batchnorm_momentum)
        return config
