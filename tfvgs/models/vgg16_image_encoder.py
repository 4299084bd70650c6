"""VGG16 image branch of paper 001 sec. 4.1: conv1_1 ... conv5_3, no pool5, then a 3x3 linear conv to D.

Dropping pool5 and the classifier keeps a spatial map (14 x 14 for 224 px) whose every position has a receptive field
in the image, so matchmaps can localise objects. The final conv is linear ("no non-linearity") and 3x3 because the
map is finer than ResNet50's. Random init (He-normal over fan_out, like torchvision); no ImageNet weights.
"""
from __future__ import annotations

import keras

from tfvgs.models.encoder_options import check_encoder_options, fan_out_he_normal, scaled_channels

# (channels, convs) per block; pools follow blocks 1-4 only.
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


@keras.saving.register_keras_serializable(package="tfvgs")
class Vgg16ImageEncoder(keras.layers.Layer):
    """Images [B, H, W, 3] in [-1, 1] -> feature map [B, H/16, W/16, embedding_dim].

    Args:
        embedding_dim: D (paper: 1024).
        width_multiplier: scales the VGG channel counts (64 ... 512).
    """

    def __init__(self, embedding_dim: int = 1024, width_multiplier: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        embedding_dim, width_multiplier = check_encoder_options(embedding_dim, width_multiplier)
        self.embedding_dim = int(embedding_dim)
        self.width_multiplier = float(width_multiplier)
        self.stack = []
        for b, (channels, convs) in enumerate(VGG16_BLOCKS):
            for c in range(convs):
                self.stack.append(keras.layers.Conv2D(
                    scaled_channels(channels, self.width_multiplier), 3, padding="same", activation="relu",
                    kernel_initializer=fan_out_he_normal(), name=f"conv{b + 1}_{c + 1}"))
            if b < len(VGG16_BLOCKS) - 1:
                self.stack.append(keras.layers.MaxPooling2D(2, name=f"pool{b + 1}"))
        self.embedding = keras.layers.Conv2D(self.embedding_dim, 3, padding="same", name="embedding")

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] not in (None, 3):
            raise ValueError(f"Vgg16ImageEncoder expects images [B, H, W, 3]. Received: input_shape={input_shape}")
        super().build(input_shape)

    def call(self, images, training=None):
        x = images
        for layer in self.stack:
            x = layer(x)
        return self.embedding(x)

    def compute_output_shape(self, input_shape):
        def down(size):
            return None if size is None else size // 16
        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), self.embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update(embedding_dim=self.embedding_dim, width_multiplier=self.width_multiplier)
        return config
