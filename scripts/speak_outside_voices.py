"""Speaks the semantic test's words in voices the project never trains or tests with, as files for `import_words`.

    python scripts/speak_outside_voices.py --output_dir my_words [--engine espeak|flite|both] [--split val|test|all]
    python -m beam_pipelines.import_words --words_dir my_words --output_dir data/outside_words --config cpu
    python -m tfvgs.evaluate --workdir W --stage davenet --semantic_dir W/data/semantic --words_dir data/outside_words

Paper 000's semantic test should hold for any speaker, not only for the 96 espeak-ng speakers of
`tfvgs.speech.voices` (test voices are held out of that pool, but they share its accents and voice variants). This
writes `<speaker>_<word>.wav` for every word of `speech.isolated_words()` in speakers outside the pool:
- `espeak`: espeak-ng voice variants that `voices.VARIANTS` does not hold (klatt formant synthesis, the named
  variants), each with one of the pool's accents, at espeak-ng's default rate and pitch;
- `flite`: the CMU Flite voices (a different synthesiser: diphone kal / kal16, clustergen awb / rms / slt), when
  the `flite` binary is installed (Debian package `flite`; not a dependency of the project).
Each word gets 0.3 s of silence before and after, as a recording would, so `import_words` trims it by its own rule.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from typing import Dict, List, Sequence, Tuple

import numpy as np
import scipy.io.wavfile

# espeak-ng variants (voices/!v) outside `tfvgs.speech.voices.VARIANTS`, each paired with one of the pool's accents,
# and the Flite voices, split so a recipe can be chosen on "val" speakers and reported on "test" ones: each split
# has klatt and named espeak-ng variants, a Flite diphone and clustergen voice.
ESPEAK_OUTSIDE: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "val": (("en", "klatt"), ("en-gb-x-rp", "Andy"), ("en-029", "Michael"), ("en-us", "grandma"), ("en", "Alex")),
    "test": (("en-us", "klatt2"), ("en-gb-scotland", "klatt4"), ("en-gb-x-gbclan", "Annie"),
             ("en-gb-x-gbcwmd", "Mike"), ("en-us-nyc", "Gene")),
}
FLITE_VOICES: Dict[str, Tuple[str, ...]] = {"val": ("kal16", "rms"), "test": ("kal", "awb", "slt")}
SPLITS = ("val", "test", "all")
PAD_SECONDS = 0.3
ENGINES = ("espeak", "flite", "both")


def words() -> List[str]:
    """The spoken word of every attribute value, as the semantic test says them."""
    from tfvgs import speech
    return [word for family in speech.isolated_words().values() for _, word in family]


def check_outside_pool(pairs: Sequence[Tuple[str, str]]) -> None:
    """Raises if an 'outside' espeak-ng speaker is one of the pool's (then it would not be outside)."""
    from tfvgs.speech import voices
    inside = [f"{a}+{v}" for a, v in pairs if v in voices.VARIANTS or a not in voices.ACCENTS]
    if inside:
        raise ValueError(f"these speakers are in the pool's variants or not among its accents: {inside}")


def synthesize(engine: str, speaker: str, word: str, scratch: str) -> Tuple[int, np.ndarray]:
    """(rate, int16 mono samples) of `word` said by `speaker` of `engine`, at the synthesiser's own rate."""
    from tfvgs.speech import tts
    if engine == "espeak":
        command = [tts.espeak_binary(), "-v", speaker, "-w", scratch, word]
    else:
        command = ["flite", "-voice", speaker, "-t", word, "-o", scratch]
    if os.path.exists(scratch):
        os.remove(scratch)
    result = subprocess.run(command, capture_output=True, timeout=60, check=False)
    if result.returncode != 0 or not os.path.exists(scratch):
        raise RuntimeError(f"`{' '.join(command)}` failed (rc {result.returncode}): {result.stderr.decode()[-300:]}")
    rate, samples = scipy.io.wavfile.read(scratch)
    if samples.dtype != np.int16 or samples.ndim != 1 or not np.any(samples):
        raise RuntimeError(f"`{' '.join(command)}` wrote no 16-bit mono sound. Received {samples.dtype} {samples.shape}")
    return rate, samples


def write_padded(path: str, rate: int, samples: np.ndarray) -> None:
    pad = np.zeros(int(round(PAD_SECONDS * rate)), np.int16)
    scipy.io.wavfile.write(path, rate, np.concatenate([pad, samples, pad]))


def check_variant_exists(voice: str, scratch: str) -> None:
    """espeak-ng silently speaks an unknown variant with the accent's own voice: refuse a variant that sounds so."""
    accent = voice.partition("+")[0]
    if np.array_equal(synthesize("espeak", voice, "red", scratch)[1], synthesize("espeak", accent, "red", scratch)[1]):
        raise ValueError(f"espeak-ng has no variant {voice.partition('+')[2]!r} here (it spoke as {accent!r}). "
                         f"Received: {voice!r}")


def speakers(engine: str, split: str = "all") -> List[Tuple[str, str, str]]:
    """(engine, synthesiser voice, speaker name for the file) of `engine` ("espeak", "flite" or "both") and
    `split` ("val", "test" or "all")."""
    if engine not in ENGINES:
        raise ValueError(f"--engine must be one of {ENGINES}. Received: {engine!r}")
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {SPLITS}. Received: {split!r}")
    splits = ("val", "test") if split == "all" else (split,)
    out = []
    if engine in ("espeak", "both"):
        pairs = [pair for s in splits for pair in ESPEAK_OUTSIDE[s]]
        check_outside_pool(pairs)
        out += [("espeak", f"{a}+{v}", f"espeak-{a}-{v}") for a, v in pairs]
    if engine in ("flite", "both"):
        if shutil.which("flite") is None:
            raise FileNotFoundError("--engine flite needs the `flite` binary (Debian: apt-get install flite)")
        out += [("flite", v, f"flite-{v}") for s in splits for v in FLITE_VOICES[s]]
    return out


def run(argv=None) -> Dict[str, int]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--engine", default="both", choices=ENGINES)
    parser.add_argument("--split", default="all", choices=SPLITS,
                        help="which outside speakers: val (to choose a recipe on), test (to report), all")
    args = parser.parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    scratch = os.path.join(args.output_dir, ".scratch.wav")
    written: Dict[str, int] = {}
    for engine, voice, name in speakers(args.engine, args.split):
        if engine == "espeak":
            check_variant_exists(voice, scratch)
        for word in words():
            write_padded(os.path.join(args.output_dir, f"{name}_{word}.wav"), *synthesize(engine, voice, word, scratch))
            written[name] = written.get(name, 0) + 1
    if os.path.exists(scratch):
        os.remove(scratch)
    print(f"wrote {sum(written.values())} files for {len(written)} speakers to {args.output_dir}: {written}")
    return written


if __name__ == "__main__":
    sys.exit(0 if run() else 1)
