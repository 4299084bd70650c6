"""Voice augmentation (tfvgs.voice_augmentation): identity at no change, exact level and tilt on power, silence kept,
the warp moves energy the right way, and the training streams apply it reproducibly and only in training."""
import numpy as np
import pytest
import tensorflow as tf

from tfvgs import config as config_lib, data, features
from tfvgs.voice_augmentation import VoiceAugmentation

FEATURES = config_lib.FeatureConfig()
SILENCE = features.padding_value(FEATURES)


def _logmel(seed=0, frames=20):
    rng = np.random.default_rng(seed)
    power = rng.uniform(1e-3, 1.0, size=(frames, FEATURES.num_mel_bins))
    return np.log(power + FEATURES.log_floor).astype(np.float32)


def test_no_change_is_identity():
    augment = VoiceAugmentation(FEATURES, warp=0.2, gain=1.0, tilt=1.0)
    x = _logmel()
    y = augment.apply(x, (tf.constant(1.0), tf.constant(0.0), tf.constant(0.0))).numpy()
    np.testing.assert_allclose(y, x, atol=1e-4)     # the mel <-> Hz round trip in float32


def test_gain_and_tilt_scale_power_and_keep_silence():
    augment = VoiceAugmentation(FEATURES, gain=2.0, tilt=2.0)
    x = _logmel()
    x[5] = SILENCE                                      # a silent frame
    y = augment.apply(x, (tf.constant(1.0), tf.constant(0.5), tf.constant(1.0))).numpy()
    position = np.arange(FEATURES.num_mel_bins) / (FEATURES.num_mel_bins - 1) - 0.5
    power = np.exp(x) - FEATURES.log_floor
    expected = np.log(power * np.exp(0.5 + position) + FEATURES.log_floor)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y[5], SILENCE, atol=1e-3)


def test_warp_moves_a_formant_up_for_alpha_above_one():
    augment = VoiceAugmentation(FEATURES, warp=0.2)
    x = np.full((3, FEATURES.num_mel_bins), -10.0, np.float32)
    x[:, 20] = 0.0                                      # one band of energy
    for alpha, direction in ((1.15, 1), (0.85, -1)):
        y = augment.apply(x, (tf.constant(alpha), tf.constant(0.0), tf.constant(0.0))).numpy()
        peak = int(np.argmax(y[0]))
        assert np.sign(peak - 20) == direction, (alpha, peak)
    source = augment.source_bins(tf.constant(1.0)).numpy()
    np.testing.assert_allclose(source, np.arange(FEATURES.num_mel_bins), atol=1e-3)


def test_draws_are_reproducible_and_within_bounds():
    augment = VoiceAugmentation(FEATURES, warp=0.1, gain=1.0, tilt=0.5)
    draws = [augment.draw(tf.constant([3, i], tf.int64)) for i in range(50)]
    again = augment.draw(tf.constant([3, 7], tf.int64))
    np.testing.assert_allclose([float(v) for v in again], [float(v) for v in draws[7]])
    alphas, gains, tilts = (np.array([float(d[k]) for d in draws]) for k in range(3))
    assert np.all(np.abs(alphas - 1) <= 0.1) and np.all(np.abs(gains) <= 1.0) and np.all(np.abs(tilts) <= 0.5)
    assert alphas.std() > 0.02 and gains.std() > 0.2          # they vary per caption


def test_from_config_off_by_default_and_checks_values():
    assert VoiceAugmentation.from_config(config_lib.TrainConfig(), FEATURES) is None
    on = VoiceAugmentation.from_config(config_lib.TrainConfig(voice_warp=0.1), FEATURES)
    assert on is not None and on.warp == 0.1
    with pytest.raises(ValueError, match="voice_warp"):
        VoiceAugmentation(FEATURES, warp=0.6)
    with pytest.raises(ValueError, match="voice_gain"):
        VoiceAugmentation(FEATURES, gain=-1.0)


def test_pairs_dataset_augments_training_captions_only(tiny_world):
    tiny_pairs_dir = tiny_world["pairs"]
    config = config_lib.get_config("tiny")
    augment = VoiceAugmentation(config.features, warp=0.15, gain=1.0, tilt=1.0)
    kwargs = dict(training=True, seed=1, crop_frames=(4, 8))
    plain = next(iter(data.pairs_dataset(tiny_pairs_dir, "train", config, 4, **kwargs)))
    changed = next(iter(data.pairs_dataset(tiny_pairs_dir, "train", config, 4, voice_augmentation=augment, **kwargs)))
    again = next(iter(data.pairs_dataset(tiny_pairs_dir, "train", config, 4, voice_augmentation=augment, **kwargs)))
    np.testing.assert_array_equal(plain["pair_id"].numpy(), changed["pair_id"].numpy())   # same pairs, same order
    np.testing.assert_array_equal(plain["nframes"].numpy(), changed["nframes"].numpy())
    np.testing.assert_allclose(changed["logmel"].numpy(), again["logmel"].numpy())          # reproducible
    n = plain["nframes"].numpy()
    for i in range(4):
        assert not np.allclose(plain["logmel"][i, :n[i]], changed["logmel"][i, :n[i]], atol=1e-3)
        np.testing.assert_allclose(changed["logmel"][i, n[i]:], plain["logmel"][i, n[i]:])  # padding untouched
    # the crop view is cut from the changed caption: it differs from the plain crop where it holds speech
    assert not np.allclose(plain["crop_logmel"].numpy(), changed["crop_logmel"].numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="training"):
        data.pairs_dataset(tiny_pairs_dir, "val", config, 4, voice_augmentation=augment)
