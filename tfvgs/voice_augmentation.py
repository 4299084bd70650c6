"""Random speaker and channel changes of a training caption's log-mel, so words are learnt across voices.

The pool's 77 training speakers are espeak-ng voices: at the `cpu` preset DaveNet's isolated-word accuracy fell
from 82.4 on the held-out pool voices to 69.3 on voices outside the pool (other espeak-ng variants, CMU Flite;
docs/results.md, "Voices outside the pool"). Three changes a new speaker or microphone brings, applied per caption
in the log-mel domain of `tfvgs.features` (cheap, in tf.data, no re-synthesis):
- vocal tract length (VTLP, Jaitly & Hinton 2013): the spectrum's frequency axis scaled by alpha in
  [1 - warp, 1 + warp], S'(f) = S(f / alpha), by interpolating between mel bands;
- level: every band's power times exp(g), g in [-gain, gain] (natural log units: 1 = 4.3 dB);
- spectral tilt: band i's power times exp(t * (i / (bins - 1) - 0.5)), t in [-tilt, tilt].
Gains act on power (exp(log-mel) - floor), so silence stays at the padding value. The caption and its crop view get
the same change (one speaker), drawn from a stateless generator keyed by the record's stream position, so a resumed
stream augments as the uninterrupted one. Off (all zero) by default and in every preset: at `cpu`, warp 0.12, gain 2
and tilt 2 gained nothing on val, for outside speakers or pool voices, over two seeds (docs/results.md).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import tensorflow as tf

from tfvgs.config import FeatureConfig, TrainConfig

AUGMENT_STREAM = 7919   # keeps these draws apart from the crop's, which use the same record index


def _mel(hz):
    return 2595.0 * tf.math.log(1.0 + hz / 700.0) / math.log(10.0)


def _hz(mel):
    return 700.0 * (tf.pow(10.0, mel / 2595.0) - 1.0)


@dataclasses.dataclass(frozen=True)
class VoiceAugmentation:
    """Maxima of the three changes (see the module docstring) for log-mel of `features`."""
    features: FeatureConfig
    warp: float = 0.0
    gain: float = 0.0
    tilt: float = 0.0

    def __post_init__(self):
        if not 0.0 <= float(self.warp) < 0.5:
            raise ValueError(f"`train.voice_warp` must be in [0, 0.5) (alpha = 1 +- warp). Received: {self.warp}")
        if float(self.gain) < 0.0 or float(self.tilt) < 0.0:
            raise ValueError(f"`train.voice_gain` and `train.voice_tilt` must be >= 0. Received: gain={self.gain}, "
                             f"tilt={self.tilt}")

    @classmethod
    def from_config(cls, train: TrainConfig, features: FeatureConfig) -> Optional["VoiceAugmentation"]:
        """The augmentation of `train.voice_*`, or None when every one is 0 (off)."""
        if not (train.voice_warp or train.voice_gain or train.voice_tilt):
            return None
        return cls(features, float(train.voice_warp), float(train.voice_gain), float(train.voice_tilt))

    def draw(self, seed: tf.Tensor):
        """(alpha, gain, tilt) scalars of one caption; `seed` [2] int64."""
        u = tf.random.stateless_uniform([3], seed=tf.stack([seed[0], seed[1] * 2 + AUGMENT_STREAM]),
                                        minval=-1.0, maxval=1.0)
        return 1.0 + self.warp * u[0], self.gain * u[1], self.tilt * u[2]

    def source_bins(self, alpha) -> tf.Tensor:
        """[bins] fractional band index that each band reads from under warp alpha (clamped to the bands)."""
        f = self.features
        bins = f.num_mel_bins
        lo, hi = _mel(tf.constant(f.lower_edge_hz, tf.float32)), _mel(tf.constant(f.upper_edge_hz, tf.float32))
        step = (hi - lo) / (bins + 1)
        centres = _hz(lo + step * tf.range(1, bins + 1, dtype=tf.float32))
        source = (_mel(centres / alpha) - lo) / step - 1.0
        return tf.clip_by_value(source, 0.0, bins - 1.0)

    def apply(self, logmel: tf.Tensor, draw) -> tf.Tensor:
        """logmel [frames, bins] under one draw (alpha, gain, tilt)."""
        alpha, gain, tilt = draw
        logmel = tf.convert_to_tensor(logmel, tf.float32)
        bins = self.features.num_mel_bins
        if self.warp:
            source = self.source_bins(alpha)
            below = tf.cast(tf.floor(source), tf.int32)
            above = tf.minimum(below + 1, bins - 1)
            weight = source - tf.cast(below, tf.float32)
            logmel = (tf.gather(logmel, below, axis=-1) * (1.0 - weight) + tf.gather(logmel, above, axis=-1) * weight)
        if self.gain or self.tilt:
            floor = self.features.log_floor
            position = tf.range(bins, dtype=tf.float32) / max(bins - 1, 1) - 0.5
            power = tf.nn.relu(tf.exp(logmel) - floor)
            logmel = tf.math.log(power * tf.exp(gain + tilt * position) + floor)
        return logmel
