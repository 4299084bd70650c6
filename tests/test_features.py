"""The log-mel function against an independent float64 NumPy/SciPy implementation of paper 001 sec. 4.2."""
import numpy as np
import pytest
import scipy.signal

from tfvgs import features
from tfvgs.config import FeatureConfig


def reference_log_mel(waveform: np.ndarray, c: FeatureConfig) -> np.ndarray:
    x = waveform.astype(np.float64)
    x = x - x.mean()
    x = np.concatenate([x[:1], x[1:] - c.preemphasis * x[:-1]])
    window = int(round(c.sample_rate * c.window_ms / 1000))
    hop = int(round(c.sample_rate * c.hop_ms / 1000))
    n_frames = 1 + (len(x) - window) // hop
    frames = np.stack([x[i * hop:i * hop + window] for i in range(n_frames)])
    frames = frames * scipy.signal.get_window("hamming", window, fftbins=True)
    power = np.abs(np.fft.rfft(frames, n=c.fft_length)) ** 2
    # HTK mel scale, triangular filters with edges evenly spaced in mel, DC bin excluded.
    def mel(f):
        return 1127.0 * np.log1p(np.asarray(f) / 700.0)
    bin_freqs = np.linspace(0.0, c.sample_rate / 2.0, c.fft_length // 2 + 1)[1:]
    edges = np.linspace(mel(c.lower_edge_hz), mel(c.upper_edge_hz), c.num_mel_bins + 2)
    m = mel(bin_freqs)[:, None]
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0.0, np.minimum((m - lower) / (center - lower), (upper - m) / (upper - center)))
    weights = np.concatenate([np.zeros((1, c.num_mel_bins)), weights], axis=0)
    return np.log(power @ weights + c.log_floor)


def test_log_mel_matches_float64_reference():
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2) / 16000.0
    waveform = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3100 * t)
                + 0.05 * rng.standard_normal(t.size) + 0.1).astype(np.float32)  # DC offset on purpose
    config = FeatureConfig()
    ours = features.log_mel(waveform, config).numpy()
    ref = reference_log_mel(waveform, config)
    assert ours.shape == ref.shape == (features.num_frames(waveform.size, config), 40)
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=0)


def test_frame_count_and_geometry():
    config = FeatureConfig()
    assert features.frame_params(config) == (400, 160)
    assert features.num_frames(399, config) == 0
    assert features.num_frames(400, config) == 1
    assert features.num_frames(16000, config) == 98
    assert features.log_mel(np.zeros(16000, np.float32), config).shape == (98, 40)


def test_dc_offset_is_removed():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(8000).astype(np.float32) * 0.1
    a = features.log_mel(x).numpy()
    b = features.log_mel(x + 0.5).numpy()
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_pad_or_crop_keeps_true_length():
    x = np.arange(30 * 40, dtype=np.float32).reshape(30, 40)
    padded, n = features.pad_or_crop(x, 50, -13.0)
    assert padded.shape == (50, 40) and int(n) == 30
    np.testing.assert_array_equal(padded[:30], x)
    assert np.all(padded.numpy()[30:] == -13.0)
    cropped, n = features.pad_or_crop(x, 20, -13.0)
    assert cropped.shape == (20, 40) and int(n) == 20
    np.testing.assert_array_equal(cropped, x[:20])


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_resampled_tone_keeps_its_mel_band(rate):
    from tfvgs import audio_io
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    wav = audio_io.encode_wav(tone, rate)
    decoded = audio_io.decode_audio(wav, "tone.wav", sample_rate=16000)
    assert abs(decoded.size - 16000) <= 2
    peak_band = features.log_mel(decoded).numpy().mean(axis=0).argmax()
    reference_band = features.log_mel(np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)
                                      ).numpy().mean(axis=0).argmax()
    assert peak_band == reference_band
