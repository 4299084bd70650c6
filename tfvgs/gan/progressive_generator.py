"""The PGGAN generator (Karras et al. 2018, Table 2) built at full size, run at any level of the progressive growth.

Layer numbering follows paper 000 sec. 4.1: "conv 1" is the dense layer from the latent to a 4x4 map, "conv 2" the
3x3 conv at 4x4, "conv 3" and "conv 4" the two 3x3 convs at 8x8. Their output, after leaky ReLU and pixel norm, is
`h4` ([B, 8, 8, C], channels last), the representation that the edit stages ablate. The generator is therefore
split as `render(features(z))`, and the normal forward pass at levels >= 2 *is* that composition, so edited and
unedited images come from exactly the same operations.

Every block and every toRGB exists from construction; `level` (a Python int, one graph per level) picks how many
blocks run and `alpha` blends the new block's toRGB with the upsampled toRGB of the level below during a fade-in.
Outputs are linear (no tanh) in the [-1, 1] range of the training data.
"""
from __future__ import annotations

import math
from typing import Optional

import keras

from tfvgs.gan.equalized_conv2d import EqualizedConv2D
from tfvgs.gan.equalized_dense import EqualizedDense
from tfvgs.gan.pixel_norm import PixelNorm

H4_LEVEL = 1   # h4 is the output of the 8x8 block (level 1)


def feature_maps(stage: int, fmap_base: int, fmap_max: int) -> int:
    """PGGAN's `nf(stage) = min(fmap_base / 2**stage, fmap_max)`; the block at resolution 2**r uses nf(r - 1)."""
    return max(1, min(int(fmap_base / 2.0 ** stage), int(fmap_max)))


def max_level_of(max_resolution: int) -> int:
    if int(max_resolution) != max_resolution or max_resolution < 8 or (int(max_resolution) & (int(max_resolution) - 1)):
        raise ValueError(f"`max_resolution` must be a power of two >= 8 (h4 lives at 8x8). "
                         f"Received: max_resolution={max_resolution!r}")
    return int(round(math.log2(int(max_resolution)))) - 2


def _upsample(x, factor: int = 2):
    """Nearest-neighbour upsampling of [B, H, W, C] by an integer factor."""
    if factor == 1:
        return x
    return keras.ops.repeat(keras.ops.repeat(x, factor, axis=1), factor, axis=2)


@keras.saving.register_keras_serializable(package="tfvgs")
class ProgressiveGenerator(keras.Model):
    """z [B, latent_dim] -> image [B, R, R, num_channels] with R = 4 * 2**level.

    Args:
        latent_dim: size of z (paper 000: 100).
        max_resolution: final image size, a power of two >= 8.
        num_channels: image channels (3 for RGB).
        fmap_base, fmap_max: channel counts, `min(fmap_base / 2**stage, fmap_max)` (PGGAN: 8192, 512).
        normalize_latents: pixel-normalize z first (PGGAN default), i.e. put it on the unit sphere * sqrt(dim).
        pixel_norm_epsilon: epsilon of every PixelNorm.
    """

    def __init__(self, latent_dim: int = 100, max_resolution: int = 128, num_channels: int = 3,
                 fmap_base: int = 8192, fmap_max: int = 512, normalize_latents: bool = True,
                 pixel_norm_epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        if int(latent_dim) != latent_dim or latent_dim < 1:
            raise ValueError(f"`latent_dim` must be a positive integer. Received: latent_dim={latent_dim!r}")
        if int(num_channels) != num_channels or num_channels < 1:
            raise ValueError(f"`num_channels` must be a positive integer. Received: num_channels={num_channels!r}")
        if fmap_base < 1 or fmap_max < 1:
            raise ValueError(f"`fmap_base` and `fmap_max` must be >= 1. Received: fmap_base={fmap_base!r}, "
                             f"fmap_max={fmap_max!r}")
        self.latent_dim = int(latent_dim)
        self.max_resolution = int(max_resolution)
        self.max_level = max_level_of(max_resolution)
        self.num_channels = int(num_channels)
        self.fmap_base = int(fmap_base)
        self.fmap_max = int(fmap_max)
        self.normalize_latents = bool(normalize_latents)
        self.pixel_norm_epsilon = float(pixel_norm_epsilon)

        # Layers are attributes named after paper 000's numbering ("conv1_dense", "conv2", ...) rather than items
        # of lists: tf.train.Checkpoint follows attributes only, and the names make checkpoints readable.
        self.latent_norm = PixelNorm(pixel_norm_epsilon, name="latent_norm") if normalize_latents else None
        self.feature_norm = PixelNorm(pixel_norm_epsilon, name="feature_norm")   # stateless, shared
        self.conv1_dense = EqualizedDense(16 * self.channels_at(0), gain=math.sqrt(2.0) / 4.0, name="conv1_dense")
        for number in range(2, 2 * self.max_level + 3):
            setattr(self, f"conv{number}", EqualizedConv2D(self.channels_at((number - 1) // 2), 3,
                                                            name=f"conv{number}"))
        for level in range(self.max_level + 1):
            res = self.resolution_of(level)
            setattr(self, f"to_rgb_{res}x{res}",
                    EqualizedConv2D(self.num_channels, kernel_size=1, gain=1.0, name=f"to_rgb_{res}x{res}"))
        # Fade-in weight of the newest block: a variable so one traced graph per level serves the whole fade-in.
        self.alpha = self.add_weight(name="alpha", shape=(), initializer="ones", trainable=False)
        self.build((None, self.latent_dim))

    # --- structure --------------------------------------------------------------------------------------------
    def channels_at(self, level: int) -> int:
        """Feature maps of the block at `level` (PGGAN nf(log2(resolution) - 1))."""
        return feature_maps(int(level) + 1, self.fmap_base, self.fmap_max)

    @property
    def h4_channels(self) -> int:
        return self.channels_at(H4_LEVEL)

    @staticmethod
    def resolution_of(level: int) -> int:
        return 4 * 2 ** int(level)

    def conv_layer(self, number: int):
        """The layer paper 000 calls "conv `number`": 1 the latent dense, 2 the 4x4 conv, 3-4 at 8x8, 5-6 at 16x16..."""
        if number == 1:
            return self.conv1_dense
        if int(number) != number or not 2 <= number <= 2 * self.max_level + 2:
            raise ValueError(f"`number` must be in [1, {2 * self.max_level + 2}]. Received: number={number!r}")
        return getattr(self, f"conv{int(number)}")

    def to_rgb_layer(self, level: int) -> EqualizedConv2D:
        res = self.resolution_of(level)
        return getattr(self, f"to_rgb_{res}x{res}")

    def _act_norm(self, x):
        return self.feature_norm(keras.ops.leaky_relu(x, negative_slope=0.2))

    def block(self, x, level: int):
        """The block of `level`: at 0 conv 1 (dense -> 4x4) and conv 2; above, 2x nearest upsample and two convs."""
        if level == 0:
            x = self.conv1_dense(x)
            x = self._act_norm(keras.ops.reshape(x, (-1, 4, 4, self.channels_at(0))))
            return self._act_norm(self.conv2(x))
        x = _upsample(x)
        x = self._act_norm(self.conv_layer(2 * level + 1)(x))
        return self._act_norm(self.conv_layer(2 * level + 2)(x))

    def build(self, input_shape):
        if self.latent_norm is not None:
            self.latent_norm.build((None, self.latent_dim))
        self.conv1_dense.build((None, self.latent_dim))
        for level in range(self.max_level + 1):
            res = self.resolution_of(level)
            channels_in = self.channels_at(max(level - 1, 0))
            if level == 0:
                self.conv2.build((None, 4, 4, channels_in))
            else:
                self.conv_layer(2 * level + 1).build((None, res, res, channels_in))
                self.conv_layer(2 * level + 2).build((None, res, res, self.channels_at(level)))
            self.to_rgb_layer(level).build((None, res, res, self.channels_at(level)))
        self.built = True

    # --- forward passes ---------------------------------------------------------------------------------------
    def _check_level(self, level: Optional[int], lowest: int = 0) -> int:
        level = self.max_level if level is None else level
        if int(level) != level or not lowest <= level <= self.max_level:
            raise ValueError(f"`level` must be an integer in [{lowest}, {self.max_level}] (resolution "
                             f"{self.resolution_of(lowest)}..{self.max_resolution}). Received: level={level!r}")
        return int(level)

    def _check_latents(self, z):
        if len(z.shape) != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"Latents must have shape [batch, {self.latent_dim}]. Received: {tuple(z.shape)}")
        return keras.ops.cast(z, self.compute_dtype)

    def _alpha(self, alpha):
        return keras.ops.cast(self.alpha if alpha is None else alpha, self.compute_dtype)

    def _fade_in(self, x_below, level: int, alpha):
        """Runs block `level` on the output of block `level - 1` and blends toRGBs.

        `(1 - alpha) * old + alpha * new` (not `old + alpha * (new - old)`) so alpha = 0 and alpha = 1 give the
        upsampled old image and the new block's image bit-exactly.
        """
        old = _upsample(self.to_rgb_layer(level - 1)(x_below))
        new = self.to_rgb_layer(level)(self.block(x_below, level))
        alpha = self._alpha(alpha)
        return (1.0 - alpha) * old + alpha * new

    def features(self, z):
        """`h4 = g_E(z)`: pixel-normed latent through conv 1..4, [B, 8, 8, h4_channels] (paper 000 sec. 4.1)."""
        x = self._check_latents(z)
        if self.latent_norm is not None:
            x = self.latent_norm(x)
        for level in range(H4_LEVEL + 1):
            x = self.block(x, level)
        return x

    def render(self, h4, level: Optional[int] = None, alpha=None):
        """`g_D(h4)`: the remaining layers up to `level` (default: the final resolution), fading with `alpha`.

        Needs level >= 2: at level 1 the fade-in blends in the 4x4 toRGB, which is upstream of h4.
        """
        level = self._check_level(level, lowest=H4_LEVEL + 1)
        expected = (8, 8, self.h4_channels)
        if len(h4.shape) != 4 or tuple(h4.shape[1:]) != expected:
            raise ValueError(f"`h4` must have shape [batch, 8, 8, {self.h4_channels}]. Received: {tuple(h4.shape)}")
        x = keras.ops.cast(h4, self.compute_dtype)
        for block_level in range(H4_LEVEL + 1, level):
            x = self.block(x, block_level)
        return self._fade_in(x, level, alpha)

    def generate(self, z, ablation=None, level: Optional[int] = None, alpha=None):
        """Image for `z` with h4 units ablated where `ablation` is 1 (`render_ablated`)."""
        return self.render_ablated(self.features(z), ablation, level=level, alpha=alpha)

    def render_ablated(self, h4, ablation=None, level: Optional[int] = None, alpha=None):
        """`g_D(h4 * (1 - ablation))`: the one definition of an edit (paper 000 sec. 4.1), for callers that keep h4
        across several ablations of the same drawing (the edit stages' grow-until-changed loop).

        `ablation` is a float mask broadcastable to [B, 8, 8, C] (e.g. [B, 8, 8, 1] for whole locations, [1, 1, 1, C]
        for units everywhere), cast to h4's dtype; 1 zeroes an activation and 0 leaves it exactly unchanged
        (fractional values attenuate).
        """
        if ablation is not None:
            h4 = h4 * (1.0 - keras.ops.cast(ablation, h4.dtype))
        return self.render(h4, level=level, alpha=alpha)

    def call(self, z, level: Optional[int] = None, alpha=None, training=None):
        """Image at `level` (default final) [B, R, R, num_channels]; alpha defaults to the `alpha` variable."""
        level = self._check_level(level)
        if level > H4_LEVEL:
            return self.render(self.features(z), level=level, alpha=alpha)
        x = self._check_latents(z)
        if self.latent_norm is not None:
            x = self.latent_norm(x)
        x = self.block(x, 0)
        if level == 0:
            return self.to_rgb_layer(0)(x)
        return self._fade_in(x, level, alpha)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.max_resolution, self.max_resolution, self.num_channels)

    # --- viewing ----------------------------------------------------------------------------------------------
    def upscale_to_max_resolution(self, images):
        """Nearest-neighbour upscaling of images from any level to `max_resolution`, for image grids and logs."""
        size = images.shape[1]
        if size is None or self.max_resolution % size or images.shape[2] != size:
            raise ValueError(f"Images must be square with a size dividing {self.max_resolution}. "
                             f"Received: {tuple(images.shape)}")
        return _upsample(images, self.max_resolution // size)

    @staticmethod
    def to_uint8(images):
        """[-1, 1] floats -> uint8 [0, 255], clipping what the linear toRGB overshoots."""
        images = keras.ops.clip((keras.ops.cast(images, "float32") + 1.0) * 127.5 + 0.5, 0.0, 255.0)
        return keras.ops.cast(images, "uint8")

    def get_config(self):
        config = super().get_config()
        config.update({"latent_dim": self.latent_dim, "max_resolution": self.max_resolution,
                       "num_channels": self.num_channels, "fmap_base": self.fmap_base, "fmap_max": self.fmap_max,
                       "normalize_latents": self.normalize_latents, "pixel_norm_epsilon": self.pixel_norm_epsilon})
        return config
