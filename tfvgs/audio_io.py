"""Reading speech into the one form everything downstream expects: 16 kHz mono float32 in [-1, 1].

Other sample rates are resampled (scipy's polyphase filter), stereo is downmixed, and audio that cannot be used
(corrupt, empty, too short or too long) raises `AudioError` naming the source and what was received, so Beam
pipelines can route it to their dead-letter output instead of dropping it.
"""
from __future__ import annotations

import io
from fractions import Fraction
from typing import Tuple

import numpy as np
import scipy.io.wavfile
import scipy.signal


class AudioError(ValueError):
    """Audio that cannot be turned into a usable waveform; the message says which and why."""


# Silence trimming, one rule for synthesised and recorded speech: leading and trailing samples at or below a level
# are cut, keeping KEEP_SILENCE_SECONDS on each side. espeak-ng writes digital silence, so its level is the fixed
# -60 dBFS; a recording has a noise floor, so its level rises to NOISE_FACTOR times the floor (`speech_level`).
SILENCE_LEVEL = 1e-3
KEEP_SILENCE_SECONDS = 0.05
NOISE_FACTOR = 2.0
NOISE_PERCENTILE = 10        # the floor: this percentile of the 10 ms frames' peak amplitudes
MIN_PEAK_OVER_FLOOR = 10.0   # speech peaks at least 20 dB above the floor; less is noise (or silence) only
CLIP_LEVEL = 0.999           # |sample| at or above this fraction of full scale counts as clipped


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


def trim_silence(samples: np.ndarray, rate: int, level: float = SILENCE_LEVEL,
                 keep_seconds: float = KEEP_SILENCE_SECONDS) -> np.ndarray:
    """Cuts leading and trailing samples with |x| <= level, keeping `keep_seconds` beside the first and last louder
    sample. Audio with no louder sample comes back unchanged (the caller decides whether that is an error)."""
    loud = np.flatnonzero(np.abs(samples) > level)
    if loud.size == 0:
        return samples
    keep = int(round(keep_seconds * rate))
    return samples[max(0, loud[0] - keep):min(samples.size, loud[-1] + 1 + keep)]


def noise_floor(samples: np.ndarray, rate: int) -> Tuple[float, float]:
    """(floor, peak) of a recording: the NOISE_PERCENTILE-th percentile and the maximum of its 10 ms frames' peak
    amplitudes (0 and 0 for audio shorter than a frame)."""
    frame = max(1, int(rate * 0.01))
    usable = samples[:samples.size // frame * frame]
    if usable.size == 0:
        return 0.0, 0.0
    peaks = np.abs(usable).reshape(-1, frame).max(axis=1)
    return float(np.percentile(peaks, NOISE_PERCENTILE)), float(peaks.max())


def speech_level(samples: np.ndarray, rate: int) -> float:
    """The trimming level of a recording: SILENCE_LEVEL, raised to NOISE_FACTOR x its noise floor. On digital
    silence (espeak-ng's output) the floor is 0 and the level is exactly the synthesised speech's."""
    return _level_over(noise_floor(samples, rate)[0])


def _level_over(floor: float) -> float:
    return float(max(SILENCE_LEVEL, NOISE_FACTOR * floor))


def clipped_fraction(samples: np.ndarray) -> float:
    """Fraction of samples at full scale: |x| >= CLIP_LEVEL of float audio (beyond [-1, 1] counts too), and for
    integer codes the same after conversion, the level lowered to the format's largest positive code but one
    (8-bit audio peaks at 127/128 = 0.992, 24-bit audio read as int32 at 0.99999)."""
    if samples.size == 0:
        return 0.0
    level = CLIP_LEVEL
    if np.issubdtype(samples.dtype, np.integer):
        info = np.iinfo(samples.dtype)
        half_range = (float(info.max) - float(info.min) + 1.0) / 2.0
        level = min(CLIP_LEVEL, (half_range - 2.0) / half_range)
        samples = _to_float(samples)
    return float(np.mean(np.abs(samples) >= level))


def decode_audio(data: bytes, source: str = "<bytes>", sample_rate: int = 16000,
                 min_seconds: float = 0.0, max_seconds: float = float("inf"),
                 max_clipped_fraction: float = 1.0, trim: bool = False) -> np.ndarray:
    """Decodes WAV (any PCM/float layout scipy reads) or FLAC (needs the optional `soundfile` package).

    Returns mono float32 at `sample_rate`. Raises AudioError naming `source` for anything unusable, including audio
    of which more than `max_clipped_fraction` of the samples (of any channel, before downmixing) are clipped.
    With `trim`, leading and trailing silence is cut at the file's own rate, as espeak-ng's output is before it is
    resampled (`trim_silence` at the recording's `speech_level`); audio with nothing above that level is an error.
    The length limits apply to the file as it is, before trimming.
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
    if np.issubdtype(samples.dtype, np.floating) and not np.all(np.isfinite(samples)):
        raise AudioError(f"{source}: audio contains NaN or infinite samples")
    clipped = clipped_fraction(samples)   # on the stored codes, before conversion
    if clipped > max_clipped_fraction:
        raise AudioError(f"{source}: clipped ({100 * clipped:.2f}% of samples at full scale, more than "
                         f"{100 * max_clipped_fraction:.2f}%); record it again at a lower gain")
    samples = _to_float(samples)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)  # downmix all channels
    elif samples.ndim != 1:
        raise AudioError(f"{source}: expected mono or multi-channel audio. Received shape {samples.shape}")
    if samples.size == 0:
        raise AudioError(f"{source}: no audio samples")
    if rate <= 0:
        raise AudioError(f"{source}: invalid sample rate {rate} in the file header")
    seconds = samples.size / float(rate)
    if seconds < min_seconds:
        raise AudioError(f"{source}: audio too short ({seconds:.3f} s < {min_seconds} s)")
    if seconds > max_seconds:
        raise AudioError(f"{source}: audio too long ({seconds:.1f} s > {max_seconds} s)")
    if trim:
        floor, peak = noise_floor(samples, int(rate))
        level = _level_over(floor)
        if peak <= level or peak < MIN_PEAK_OVER_FLOOR * floor:
            raise AudioError(f"{source}: no speech found (its loudest 10 ms peak at {peak:.4f} is not "
                             f"{MIN_PEAK_OVER_FLOOR:g}x above its noise floor {floor:.4f} and above the silence "
                             f"level {level:.4f})")
        samples = trim_silence(samples, int(rate), level)
    return resample(samples, int(rate), sample_rate)


def encode_wav(waveform: np.ndarray, sample_rate: int = 16000) -> bytes:
    """16-bit PCM WAV bytes (what people play back and what `tf.audio.decode_wav` reads)."""
    pcm = np.clip(np.round(np.asarray(waveform, np.float32) * 32767.0), -32768, 32767).astype(np.int16)
    buffer = io.BytesIO()
    scipy.io.wavfile.write(buffer, sample_rate, pcm)
    return buffer.getvalue()
