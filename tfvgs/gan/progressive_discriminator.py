"""The PGGAN discriminator (critic) built at full size, run at any level of the progressive growth.

Mirror of `ProgressiveGenerator`: fromRGB (1x1 conv) per resolution, then per resolution above 4x4 a block of two
3x3 convs and a 2x2 average-pool downsample, and at 4x4 the minibatch-stddev layer, a 3x3 conv, a 4x4 -> dense
layer and a linear dense to one score. During a fade-in the input image also goes, 2x average-pooled, through the
fromRGB of the level below, and the two paths are blended with `alpha` after the new block (PGGAN's "linear"
structure). All layers use the equalized learning rate; leaky ReLU 0.2 everywhere, no normalization.
"""
from __future__ import annotations

import math
from typing import Optional

import keras

from tfvgs.gan.equalized_conv2d import EqualizedConv2D
from tfvgs.gan.equalized_dense import EqualizedDense
from tfvgs.gan.minibatch_stddev import MinibatchStddev
from tfvgs.gan.progressive_generator import feature_maps


def _downsample(x):
    """2x2 box filter (average pooling) of [B, H, W, C]."""
    return keras.ops.average_pool(x, pool_size=2, strides=2, padding="valid")


@keras.saving.register_keras_serializable(package="tfvgs")
class ProgressiveDiscriminator(keras.Model):
    """image [B, R, R, num_channels] with R = 4 * 2**level -> score [B, 1] (a WGAN critic value).

    Args:
        max_resolution: final image size, a power of two >= 4.
        num_channels: image channels.
        fmap_base, fmap_max: channel counts as in the generator (PGGAN: 8192, 512).
        mbstd_group_size: group size of the minibatch-stddev layer (PGGAN: 4); 0 disables it.
    """

    def __init__(self, max_resolution: int = 128, num_channels: int = 3, fmap_base: int = 8192,
                 fmap_max: int = 512, mbstd_group_size: int = 4, **kwargs):
        super().__init__(**kwargs)
        res = int(max_resolution)
        if res != max_resolution or res < 4 or res & (res - 1):
            raise ValueError(f"`max_resolution` must be a power of two >= 4. "
                             f"Received: max_resolution={max_resolution!r}")
        if int(num_channels) != num_channels or num_channels < 1:
            raise ValueError(f"`num_channels` must be a positive integer. Received: num_channels={num_channels!r}")
        if fmap_base < 1 or fmap_max < 1:
            raise ValueError(f"`fmap_base` and `fmap_max` must be >= 1. Received: fmap_base={fmap_base!r}, "
                             f"fmap_max={fmap_max!r}")
        if int(mbstd_group_size) != mbstd_group_size or mbstd_group_size < 0:
            raise ValueError(f"`mbstd_group_size` must be an integer >= 0. Received: {mbstd_group_size!r}")
        self.max_resolution = res
        self.max_level = int(round(math.log2(res))) - 2
        self.num_channels = int(num_channels)
        self.fmap_base = int(fmap_base)
        self.fmap_max = int(fmap_max)
        self.mbstd_group_size = int(mbstd_group_size)

        # Layers are named attributes, not list items, so tf.train.Checkpoint (which follows attributes) sees them.
        for level in range(self.max_level + 1):
            res = self.resolution_of(level)
            name = f"{res}x{res}"
            setattr(self, f"from_rgb_{name}", EqualizedConv2D(self._nf(level + 1), 1, name=f"from_rgb_{name}"))
            if level > 0:
                setattr(self, f"conv_{name}_0", EqualizedConv2D(self._nf(level + 1), 3, name=f"conv_{name}_0"))
                setattr(self, f"conv_{name}_1", EqualizedConv2D(self._nf(level), 3, name=f"conv_{name}_1"))
        self.minibatch_stddev = (MinibatchStddev(self.mbstd_group_size, name="minibatch_stddev")
                                 if self.mbstd_group_size else None)
        self.conv_4x4 = EqualizedConv2D(self._nf(1), 3, name="conv_4x4")
        self.dense0 = EqualizedDense(self._nf(0), name="dense0")
        self.score = EqualizedDense(1, gain=1.0, name="score")
        self.alpha = self.add_weight(name="alpha", shape=(), initializer="ones", trainable=False)
        self.build((None, self.max_resolution, self.max_resolution, self.num_channels))

    def _nf(self, stage: int) -> int:
        return feature_maps(stage, self.fmap_base, self.fmap_max)

    @staticmethod
    def resolution_of(level: int) -> int:
        return 4 * 2 ** int(level)

    def from_rgb_layer(self, level: int) -> EqualizedConv2D:
        res = self.resolution_of(level)
        return getattr(self, f"from_rgb_{res}x{res}")

    def from_rgb(self, images, level: int):
        return keras.ops.leaky_relu(self.from_rgb_layer(level)(images), negative_slope=0.2)

    def block(self, x, level: int):
        """Level > 0: two 3x3 convs and a 2x2 average pool. Level 0: minibatch stddev, conv, dense, score [B, 1]."""
        if level > 0:
            res = self.resolution_of(level)
            x = keras.ops.leaky_relu(getattr(self, f"conv_{res}x{res}_0")(x), negative_slope=0.2)
            x = keras.ops.leaky_relu(getattr(self, f"conv_{res}x{res}_1")(x), negative_slope=0.2)
            return _downsample(x)
        if self.minibatch_stddev is not None:
            x = self.minibatch_stddev(x)
        x = keras.ops.leaky_relu(self.conv_4x4(x), negative_slope=0.2)
        x = keras.ops.reshape(x, (-1, 16 * self._nf(1)))
        x = keras.ops.leaky_relu(self.dense0(x), negative_slope=0.2)
        return self.score(x)

    def build(self, input_shape):
        for level in range(self.max_level + 1):
            res = self.resolution_of(level)
            self.from_rgb_layer(level).build((None, res, res, self.num_channels))
            if level > 0:
                getattr(self, f"conv_{res}x{res}_0").build((None, res, res, self._nf(level + 1)))
                getattr(self, f"conv_{res}x{res}_1").build((None, res, res, self._nf(level + 1)))
        channels = self._nf(1)
        if self.minibatch_stddev is not None:
            self.minibatch_stddev.build((None, 4, 4, channels))
            channels += 1
        self.conv_4x4.build((None, 4, 4, channels))
        self.dense0.build((None, 16 * self._nf(1)))
        self.score.build((None, self._nf(0)))
        self.built = True

    def level_of_images(self, images) -> int:
        """The level whose resolution matches `images` [B, R, R, C]."""
        shape = tuple(images.shape)
        size = shape[1] if len(shape) == 4 else None
        if (len(shape) != 4 or size is None or shape[2] != size or shape[3] != self.num_channels
                or size < 4 or size > self.max_resolution or size & (size - 1)):
            raise ValueError(f"Images must be [batch, R, R, {self.num_channels}] with R a power of two in "
                             f"[4, {self.max_resolution}]. Received: {shape}")
        return int(round(math.log2(size))) - 2

    def call(self, images, level: Optional[int] = None, alpha=None, training=None):
        """Scores [B, 1]; `level` defaults to the one matching the image size, alpha to the `alpha` variable."""
        image_level = self.level_of_images(images)
        if level is not None and level != image_level:
            raise ValueError(f"`level` {level} expects {self.resolution_of(level)} px images. "
                             f"Received images of shape {tuple(images.shape)}")
        level = image_level
        images = keras.ops.cast(images, self.compute_dtype)
        x = self.from_rgb(images, level)
        if level > 0:
            x = self.block(x, level)
            old = self.from_rgb(_downsample(images), level - 1)
            alpha = keras.ops.cast(self.alpha if alpha is None else alpha, self.compute_dtype)
            x = (1.0 - alpha) * old + alpha * x   # exact at alpha = 0 and alpha = 1, as in the generator
            for lower in range(level - 1, 0, -1):
                x = self.block(x, lower)
        return self.block(x, 0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def get_config(self):
        config = super().get_config()
        config.update({"max_resolution": self.max_resolution, "num_channels": self.num_channels,
                       "fmap_base": self.fmap_base, "fmap_max": self.fmap_max,
                       "mbstd_group_size": self.mbstd_group_size})
        return config
