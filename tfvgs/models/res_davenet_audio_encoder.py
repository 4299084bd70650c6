"""ResDAVEnet: the residual speech encoder of paper 001 sec. 4.2.

Follows `ResDavenet` of wnhsu/ResDAVEnet-VQ (models/AudioModels.py), channels-last:

    BatchNorm over the whole spectrogram (paper 001: "a BatchNorm layer at the front of the network"; the
        ResDAVEnet-VQ code defines it but skips it, conv1 + bn1 then normalise anyway)
    conv 40x1 -> 128 (no bias) + BN + ReLU
    4 stages of `blocks_per_stage` basic residual blocks (widths 128, 256, 512, D), the first block of each stage
        striding time by 2: conv 1xk /2 - BN - ReLU - conv 1xk - BN, plus a 1x1 /2 conv + BN shortcut, then ReLU.

Strided convs pad (k-1)/2 frames on both sides like the reference, so main path and shortcut both centre output frame
i on input frame 2 i; the output has ceil(T / 16) frames. Kernel init is He-normal over fan_out, as the reference.
"""
from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from tfvgs.models.encoder_options import check_encoder_options, fan_out_he_normal, scaled_channels

NUM_STAGES = 4


def _batchnorm(momentum, name):
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-5, synchronized=True, name=name)


def _conv(filters, kernel, stride, name):
    """Unpadded, bias-free 1-D conv; callers pad (k-1)/2 frames on both sides like the reference."""
    return keras.layers.Conv1D(filters, kernel, strides=stride, padding="valid", use_bias=False,
                               kernel_initializer=fan_out_he_normal(), name=name)


@keras.saving.register_keras_serializable(package="tfvgs")
class ResDavenetAudioEncoder(keras.layers.Layer):
    """Log-mel [B, T, F] -> frame embeddings [B, ceil(T/16), embedding_dim].

    Args:
        embedding_dim: D, the width of the last stage (paper: 1024).
        width_multiplier: scales the stem and the first three stage widths (128, 128, 256, 512).
        blocks_per_stage: residual blocks per stage (reference: 2).
        kernel_size: temporal kernel of the block convs (reference: 9).
        num_mel_bins: F (paper: 40).
    """

    def __init__(self, embedding_dim: int = 1024, width_multiplier: float = 1.0, blocks_per_stage: int = 2,
                 kernel_size: int = 9, num_mel_bins: int = 40, batchnorm_momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        embedding_dim, width_multiplier = check_encoder_options(embedding_dim, width_multiplier)
        if int(blocks_per_stage) < 1:
            raise ValueError(f"`blocks_per_stage` must be >= 1. Received: blocks_per_stage={blocks_per_stage}")
        if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ValueError(f"`kernel_size` must be a positive odd integer. Received: kernel_size={kernel_size}")
        self.embedding_dim = int(embedding_dim)
        self.width_multiplier = float(width_multiplier)
        self.blocks_per_stage = int(blocks_per_stage)
        self.kernel_size = int(kernel_size)
        self.num_mel_bins = int(num_mel_bins)
        self.batchnorm_momentum = float(batchnorm_momentum)

        stem, *stages = [scaled_channels(c, self.width_multiplier) for c in (128, 128, 256, 512)]
        stage_widths: Sequence[int] = list(stages) + [self.embedding_dim]
        m = self.batchnorm_momentum
        self.input_norm = _batchnorm(m, "input_norm")
        self.stem_conv = _conv(stem, 1, 1, "stem_conv")
        self.stem_bn = _batchnorm(m, "stem_bn")
        # Each basic block: [conv1, bn1, conv2, bn2] + [shortcut conv, shortcut bn] when it changes shape.
        self.blocks = []
        in_channels = stem
        for s, width in enumerate(stage_widths):
            for b in range(self.blocks_per_stage):
                stride = 2 if b == 0 else 1
                prefix = f"stage{s + 1}_block{b + 1}"
                self.blocks.append([
                    _conv(width, self.kernel_size, stride, f"{prefix}_conv1"), _batchnorm(m, f"{prefix}_bn1"),
                    _conv(width, self.kernel_size, 1, f"{prefix}_conv2"), _batchnorm(m, f"{prefix}_bn2"),
                ] + ([_conv(width, 1, stride, f"{prefix}_shortcut_conv"), _batchnorm(m, f"{prefix}_shortcut_bn")]
                     if stride != 1 or in_channels != width else []))
                in_channels = width

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] not in (None, self.num_mel_bins):
            raise ValueError(f"ResDavenetAudioEncoder expects log-mel input [B, T, {self.num_mel_bins}]. "
                             f"Received: input_shape={input_shape}")
        super().build(input_shape)

    def call(self, logmel, training=None):
        x = self.input_norm(logmel[..., None], training=training)[..., 0]
        x = tf.nn.relu(self.stem_bn(self.stem_conv(x), training=training))
        pad = (self.kernel_size - 1) // 2
        for layers in self.blocks:
            conv1, bn1, conv2, bn2 = layers[:4]
            out = tf.nn.relu(bn1(conv1(tf.pad(x, [[0, 0], [pad, pad], [0, 0]])), training=training))
            out = bn2(conv2(tf.pad(out, [[0, 0], [pad, pad], [0, 0]])), training=training)
            shortcut = x
            if len(layers) > 4:
                shortcut = layers[5](layers[4](x), training=training)
            x = tf.nn.relu(out + shortcut)
        return x

    def compute_output_shape(self, input_shape):
        frames = input_shape[1]
        for _ in range(NUM_STAGES):
            frames = None if frames is None else (frames + 1) // 2
        return (input_shape[0], frames, self.embedding_dim)

    def output_frames(self, nframes):
        """Valid output frames for `nframes` valid input frames: floor(n / 16) as DAVEnet's, at least 1."""
        return tf.maximum(tf.cast(nframes, tf.int32) // self.downsampling, 1)

    @property
    def downsampling(self) -> int:
        return 2 ** NUM_STAGES

    def get_config(self):
        config = super().get_config()
        config.update(embedding_dim=self.embedding_dim, width_multiplier=self.width_multiplier,
                      blocks_per_stage=self.blocks_per_stage, kernel_size=self.kernel_size,
                      num_mel_bins=self.num_mel_bins, batchnorm_momentum=self.batchnorm_momentum)
        return config
