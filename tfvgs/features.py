"""The one log-mel definition (paper 001 sec. 4.2), shared by Beam, tf.data and the serving signatures.

DC removal (mean subtraction), pre-emphasis 0.97, 25 ms Hamming window with a 10 ms hop (frames are not centred:
frame k covers samples [k*hop, k*hop+window)), power spectrum |STFT|^2, 40 HTK-mel bands from 20 Hz to Nyquist,
natural log with a small floor. `pad_or_crop` fixes the frame count per preset and keeps the true count (`nframes`)
so the models can ignore padding.
"""
from __future__ import annotations

import math
from typing import Tuple

import tensorflow as tf

from tfvgs.config import FeatureConfig


def frame_params(config: FeatureConfig) -> Tuple[int, int]:
    """(window_length, hop_length) in samples."""
    return (int(round(config.sample_rate * config.window_ms / 1000.0)),
            int(round(config.sample_rate * config.hop_ms / 1000.0)))


def num_frames(num_samples, config: FeatureConfig):
    """Frames log_mel produces for a waveform of `num_samples` (0 when shorter than one window)."""
    window, hop = frame_params(config)
    return 0 if num_samples < window else 1 + (int(num_samples) - window) // hop


def log_mel(waveform: tf.Tensor, config: FeatureConfig = FeatureConfig()) -> tf.Tensor:
    """Log-mel spectrogram of a mono waveform [N] (or a batch [..., N]) -> float32 [..., frames, num_mel_bins].

    A waveform shorter than one window gives zero frames; callers reject such audio before this point.
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    window, hop = frame_params(config)
    waveform = waveform - tf.reduce_mean(waveform, axis=-1, keepdims=True)
    waveform = tf.concat([waveform[..., :1],
                          waveform[..., 1:] - config.preemphasis * waveform[..., :-1]], axis=-1)
    stft = tf.signal.stft(waveform, frame_length=window, frame_step=hop, fft_length=config.fft_length,
                          window_fn=tf.signal.hamming_window, pad_end=False)
    power = tf.math.square(tf.math.abs(stft))
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=config.num_mel_bins, num_spectrogram_bins=config.fft_length // 2 + 1,
        sample_rate=config.sample_rate, lower_edge_hertz=config.lower_edge_hz,
        upper_edge_hertz=config.upper_edge_hz)
    mel = tf.tensordot(power, mel_matrix, axes=1)
    return tf.math.log(mel + config.log_floor)


def pad_or_crop(features: tf.Tensor, max_frames: int, pad_value: float) -> Tuple[tf.Tensor, tf.Tensor]:
    """Fixes [frames, bins] to [max_frames, bins]; returns (features, nframes) with nframes = min(frames, max)."""
    frames = tf.shape(features)[0]
    nframes = tf.minimum(frames, max_frames)
    features = features[:max_frames]
    features = tf.pad(features, [[0, max_frames - nframes], [0, 0]], constant_values=pad_value)
    features = tf.ensure_shape(features, [max_frames, features.shape[-1]])
    return features, tf.cast(nframes, tf.int32)


def padding_value(config: FeatureConfig) -> float:
    """The log-mel value of silence, used for padded frames."""
    return math.log(config.log_floor)
