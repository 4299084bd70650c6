"""Speech from text with espeak-ng: 16 kHz mono float32 in [-1, 1], the form everything downstream expects.

espeak-ng runs as a subprocess (text on stdin, WAV on stdout, 22050 Hz 16-bit), so it works wherever the binary is
installed and a thread pool gives real parallelism (`synthesize_many`). Output is deterministic for the same text
and voice. The binary is `espeak-ng` on PATH, or the path in the TFVGS_ESPEAK_NG environment variable.
"""
from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
from typing import Iterable, List, Tuple

import numpy as np

from tfvgs.audio_io import resample
from tfvgs.audio_io import trim_silence as _trim_silence   # `synthesize` has a flag of that name
from tfvgs.speech.voices import Voice

ESPEAK_SAMPLE_RATE = 22050
ESPEAK_ENV_VAR = "TFVGS_ESPEAK_NG"
INSTALL_COMMAND = "apt-get install espeak-ng"
TIMEOUT_SECONDS = 120.0


def espeak_binary() -> str:
    """Full path of the espeak-ng executable, or RuntimeError saying how to install it."""
    name = os.environ.get(ESPEAK_ENV_VAR) or "espeak-ng"
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"espeak-ng is not installed (looked for {name!r} on PATH; set {ESPEAK_ENV_VAR} to use "
                           f"another binary). Install it with: {INSTALL_COMMAND}")
    return path


def check_espeak() -> str:
    """Fails early (RuntimeError with the install command) unless espeak-ng runs; returns its version line.

    Pipelines call this before starting so a missing binary is one clear error, not one dead letter per caption.
    """
    binary = espeak_binary()
    try:
        result = subprocess.run([binary, "--version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"espeak-ng at {binary!r} could not be run ({e}). Install it with: {INSTALL_COMMAND}") \
            from e
    version = result.stdout.decode("utf-8", "replace").strip()
    if result.returncode != 0 or "espeak" not in version.lower():
        raise RuntimeError(f"{binary!r} does not behave like espeak-ng (exit code {result.returncode}, output "
                           f"{version[:200]!r}). Install it with: {INSTALL_COMMAND}")
    return version


def synthesize(text: str, voice: Voice | str, sample_rate: int = 16000, trim_silence: bool = True) -> np.ndarray:
    """Speaks `text` with `voice` (a Voice, or an id like "en-us+f2" at default rate and pitch).

    Returns mono float32 samples in [-1, 1] at `sample_rate`. With `trim_silence`, leading and trailing samples
    quieter than -60 dBFS are cut, keeping 50 ms on each side. Raises ValueError for empty text and RuntimeError
    (naming text and voice) if espeak-ng is missing or fails.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"`text` must be a non-empty string. Received: text={text!r}")
    if isinstance(voice, str):
        voice = Voice.from_id(voice)
    elif not isinstance(voice, Voice):
        raise ValueError(f"`voice` must be a Voice or a voice id string. Received: {voice!r}")
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"`sample_rate` must be a positive integer. Received: sample_rate={sample_rate!r}")
    text = " ".join(text.split())   # newlines would make espeak-ng pause as for a paragraph
    command = [espeak_binary(), *voice.espeak_args(), "-b", "1", "--stdout"]   # -b 1: input is UTF-8
    where = f"text={text!r}, voice={voice.id} (rate {voice.rate}, pitch {voice.pitch})"
    try:
        result = subprocess.run(command, input=text.encode("utf-8"), capture_output=True,
                                timeout=TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"espeak-ng timed out after {TIMEOUT_SECONDS} s for {where}") from None
    except OSError as e:
        raise RuntimeError(f"espeak-ng could not be run ({e}) for {where}. Install it with: {INSTALL_COMMAND}") \
            from e
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"espeak-ng failed with exit code {result.returncode} for {where}: {stderr}")
    try:
        rate, samples = _parse_streamed_wav(result.stdout)
    except ValueError as e:
        raise RuntimeError(f"espeak-ng produced unusable output for {where}: {e}") from e
    if samples.size == 0 or not np.any(samples):
        raise RuntimeError(f"espeak-ng produced no audible audio for {where}")
    if trim_silence:   # espeak-ng leaves ~10 ms of digital silence before and ~0.2 s of near-silence after speech
        samples = _trim_silence(samples, rate)
    waveform = resample(samples, rate, sample_rate)
    return np.clip(waveform, -1.0, 1.0).astype(np.float32, copy=False)


def synthesize_many(items: Iterable[Tuple[str, Voice | str]], workers: int = 1, sample_rate: int = 16000,
                    trim_silence: bool = True) -> List[np.ndarray]:
    """`synthesize` for (text, voice) pairs, in order, on `workers` threads (each runs its own espeak-ng process).

    See benchmarks/tts_bench.py for the measured speed-up.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"`workers` must be a positive integer. Received: workers={workers!r}")
    items = list(items)

    def one(item: Tuple[str, Voice | str]) -> np.ndarray:
        text, voice = item
        return synthesize(text, voice, sample_rate=sample_rate, trim_silence=trim_silence)

    if workers == 1 or len(items) <= 1:
        return [one(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, items))


def _parse_streamed_wav(data: bytes) -> Tuple[int, np.ndarray]:
    """Reads espeak-ng's --stdout WAV, whose RIFF and data sizes are placeholders (0x7ffff000) because it streams.

    scipy.io.wavfile warns about or rejects such headers, so the chunks are walked by hand and the data chunk is
    taken to run to the end of the output.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"not a WAV stream (first bytes {data[:12]!r}, {len(data)} bytes)")
    position, rate, channels, bits = 12, None, None, None
    while position + 8 <= len(data):
        chunk, size = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
        body = position + 8
        if chunk == b"fmt ":
            fmt = data[body:body + 16]
            audio_format = int.from_bytes(fmt[0:2], "little")
            channels = int.from_bytes(fmt[2:4], "little")
            rate = int.from_bytes(fmt[4:8], "little")
            bits = int.from_bytes(fmt[14:16], "little")
            if audio_format != 1 or bits != 16:
                raise ValueError(f"expected 16-bit PCM, got format {audio_format} with {bits} bits")
        elif chunk == b"data":
            if rate is None:
                raise ValueError("data chunk before fmt chunk")
            payload = data[body:min(len(data), body + size)]
            payload = payload[:len(payload) // (2 * channels) * (2 * channels)]
            samples = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
            if channels > 1:
                samples = samples.reshape(-1, channels).mean(axis=1)
            return rate, samples
        position = body + size + (size & 1)
    raise ValueError("no data chunk")

