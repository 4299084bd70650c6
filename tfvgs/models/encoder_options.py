"""What every encoder shares: the embedding size and width options, their checks, and the initialisers."""
from __future__ import annotations

from typing import Tuple

import keras


def check_encoder_options(embedding_dim, width_multiplier) -> Tuple[int, float]:
    """Validated (embedding_dim, width_multiplier) for an encoder constructor."""
    if int(embedding_dim) < 1:
        raise ValueError(f"`embedding_dim` must be a positive integer. Received: embedding_dim={embedding_dim}")
    if not width_multiplier > 0:
        raise ValueError(f"`width_multiplier` must be > 0. Received: width_multiplier={width_multiplier}")
    return int(embedding_dim), float(width_multiplier)


def pytorch_conv_initializer():
    """PyTorch's default conv kernel init (kaiming_uniform with a=sqrt(5)): U(+-1/sqrt(fan_in)), as the reference."""
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def fan_out_he_normal():
    """He-normal over fan_out (torchvision's ResNet/VGG init and ResDAVEnet's)."""
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def scaled_channels(channels: int, width_multiplier: float) -> int:
    """A channel count scaled by `width_multiplier`, at least 1 (every encoder's width option)."""
    return max(1, int(round(channels * width_multiplier)))


def halved_shape(input_shape, halvings: int, channels: int):
    """Output shape [B, H', W', channels] of an image encoder whose stride-2 stages (padding "same"-like, so
    size -> ceil(size / 2)) halve [B, H, W, C] `halvings` times; unknown sizes stay None."""
    def down(size):
        if size is None:
            return None
        for _ in range(halvings):
            size = (size + 1) // 2
        return size
    return (input_shape[0], down(input_shape[1]), down(input_shape[2]), channels)
