"""Reading speech into the one form everything downstream expects: 16 kHz mono float32 in [-1, 1].

Other sample rates are resampled (scipy's polyphase filter), stereo is downmixed, and audio that cannot be used
(corrupt, empty, too short or too long) raises `AudioError` naming the source and what was received, so Beam
pipelines can route it to their dead-letter output instead of dropping it.
"""
from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import scipy.io.wavfile
import scipy.signal


class AudioError(ValueError):
    """Audio that cannot be turned into a usable waveform; the message says which and why."""


def resample(waveform: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (exact rational ratio, anti-aliased)."""
    if from_rate == to_rate:
        return waveform.astype(np.float32, copy=False)
    if from_rate <= 0 or to_rate <= 0:
        raise AudioError(f"Sample rates must be positive. Received: from_rate={from_rate}, to_rate={to_rate}")
    ratio = Fraction(int(to_rate), int(from_rate))
    return scipy.signal.resample_poly(waveform, ratio.numerator, ratio.denominator).astype(np.float32)


def _to_float(samples: np.ndarray) -> np.ndarray:
    if samples.dtype == np.uint8:  # 8-bit WAV is unsigned
        return (samples.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(samples.dtype, np.integer):
        return samples.astype(np.float32) / float(-np.iinfo(samples.dtype).min)
    return samples.astype(np.float32)


def decode_audio(data: bytes, source: str = "<bytes>", sample_rate: int = 16000,
                 min_seconds: float = 0.0, max_seconds: float = float("inf")) -> np.ndarray:
    """Decodes WAV (any PCM/float layout scipy reads) or FLAC (needs the optional `soundfile` package).

    Returns mono float32 at `sample_rate`. Raises AudioError naming `source` for anything unusable.
    """
    if not data:
        raise AudioError(f"{source}: empty file")
    if data[:4] == b"fLaC":
        try:
            import soundfile
        except ImportError as e:
            raise AudioError(f"{source}: FLAC needs the optional 'soundfile' package (pip install soundfile)") from e
        try:
            samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
        except Exception as e:  # soundfile raises its own error types for corrupt data
            raise AudioError(f"{source}: corrupt FLAC ({e})") from e
    else:
        try:
            rate, samples = scipy.io.wavfile.read(io.BytesIO(data))
        except Exception as e:  # scipy raises ValueError, EOFError, struct.error... on corrupt WAV
            raise AudioError(f"{source}: not a readable WAV file ({type(e).__name__}: {e})") from e
        samples = _to_float(samples)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)  # downmix all channels
    elif samples.ndim != 1:
        raise AudioError(f"{source}: expected mono or multi-channel audio. Received shape {samples.shape}")
    if samples.size == 0:
        raise AudioError(f"{source}: no audio samples")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{source}: audio contains NaN or infinite samples")
    if rate <= 0:
        raise AudioError(f"{source}: invalid sample rate {rate} in the file header")
    seconds = samples.size / float(rate)
    if seconds < min_seconds:
        raise AudioError(f"{source}: audio too short ({seconds:.3f} s < {min_seconds} s)")
    if seconds > max_seconds:
        raise AudioError(f"{source}: audio too long ({seconds:.1f} s > {max_seconds} s)")
    return resample(samples, int(rate), sample_rate)


def encode_wav(waveform: np.ndarray, sample_rate: int = 16000) -> bytes:
    """16-bit PCM WAV bytes (what people play back and what `tf.audio.decode_wav` reads)."""
    pcm = np.clip(np.round(np.asarray(waveform, np.float32) * 32767.0), -32768, 32767).astype(np.int16)
    buffer = io.BytesIO()
    scipy.io.wavfile.write(buffer, sample_rate, pcm)
    return buffer.getvalue()
