"""The pool of espeak-ng speakers, split so test speech comes from speakers never heard in training.

A speaker is an English accent (an espeak-ng gmw/ language voice) combined with a voice variant (m1-m7, f1-f5:
formant, pitch-range and breathiness settings), plus a speaking rate and pitch drawn per utterance.
MBROLA voices (mb/...) are listed by `espeak-ng --voices=en` but need the separate mbrola binary and databases, so
they are not used.

Split rule: with accents and variants indexed in the order of `ACCENTS` and `VARIANTS`, the combination
(accent a, variant v) belongs to the test split iff (a + v) % 5 == 0, and to the train split otherwise. That holds
out 19 of the 96 combinations (~20%) while every accent and every variant still occurs in both splits, so the test
measures generalisation to new speakers, not to an accent or variant never heard at all. New accents or variants
must be appended (never inserted) so existing assignments do not change.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Dict, Sequence, Tuple

# espeak-ng voice name -> accent. "en" is British English (gmw/en): in espeak-ng 1.51 the name "en-gb" resolves to
# the same voice but silently ignores a "+variant" suffix, and unknown names silently fall back to "en" - which is
# why `Voice` only accepts names from this table.
ACCENTS: Dict[str, str] = {
    "en": "English (Great Britain)",
    "en-us": "English (America)",
    "en-gb-scotland": "English (Scotland)",
    "en-gb-x-rp": "English (Received Pronunciation)",
    "en-gb-x-gbclan": "English (Lancaster)",
    "en-gb-x-gbcwmd": "English (West Midlands)",
    "en-029": "English (Caribbean)",
    "en-us-nyc": "English (America, New York City)",
}
VARIANTS: Tuple[str, ...] = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
SPLITS = ("train", "test", "all")
HOLDOUT_MODULUS = 5

# espeak-ng's own limits for -s (words per minute) and -p (0-99).
RATE_LIMITS = (80, 450)
PITCH_LIMITS = (0, 99)
DEFAULT_RATE_RANGE = (140, 190)    # as tfvgs.config.SpeechConfig
DEFAULT_PITCH_RANGE = (30, 70)


@dataclasses.dataclass(frozen=True)
class Voice:
    """One espeak-ng speaker setting. `id` is what `espeak-ng -v` takes, e.g. "en-gb-scotland+f3"."""
    accent: str
    variant: str
    rate: int = 175     # espeak-ng default words per minute
    pitch: int = 50     # espeak-ng default

    def __post_init__(self):
        if self.accent not in ACCENTS:
            raise ValueError(f"Unknown accent (espeak-ng would silently fall back to its default voice). "
                             f"Expected one of {sorted(ACCENTS)}. Received: accent={self.accent!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"Unknown voice variant. Expected one of {VARIANTS}. Received: variant={self.variant!r}")
        _check_int_in("rate", self.rate, RATE_LIMITS)
        _check_int_in("pitch", self.pitch, PITCH_LIMITS)

    @property
    def id(self) -> str:
        return f"{self.accent}+{self.variant}"

    @property
    def gender(self) -> str:
        return "female" if self.variant.startswith("f") else "male"

    @property
    def split(self) -> str:
        return "test" if is_test_speaker(self.accent, self.variant) else "train"

    def espeak_args(self) -> list:
        return ["-v", self.id, "-s", str(self.rate), "-p", str(self.pitch)]

    def to_dict(self) -> Dict[str, object]:
        return {"id": self.id, "accent": self.accent, "variant": self.variant, "rate": self.rate,
                "pitch": self.pitch}

    @property
    def spec(self) -> str:
        """Everything needed to speak again exactly as this voice did, e.g. "en-us+f2@183,42" (id@rate,pitch).
        Pair records store this; the speaker is the part before '@'."""
        return f"{self.id}@{self.rate},{self.pitch}"

    @classmethod
    def from_spec(cls, spec: str) -> "Voice":
        """Parses `spec` ("accent+variant@rate,pitch"); a bare id gets the default rate and pitch."""
        voice_id, at, settings = str(spec).partition("@")
        if not at:
            return cls.from_id(voice_id)
        try:
            rate, pitch = (int(v) for v in settings.split(","))
        except ValueError as e:
            raise ValueError(f"A voice spec looks like 'en-us+f2@183,42'. Received: {spec!r}") from e
        return cls.from_id(voice_id, rate, pitch)

    @classmethod
    def from_id(cls, voice_id: str, rate: int = 175, pitch: int = 50) -> "Voice":
        """Parses "accent+variant" (e.g. "en-029+m3")."""
        accent, plus, variant = str(voice_id).partition("+")
        if not plus:
            raise ValueError(f"A voice id looks like 'en-us+f2' (accent+variant). Received: {voice_id!r}")
        return cls(accent, variant, rate, pitch)


def is_test_speaker(accent: str, variant: str) -> bool:
    """The split rule of the module docstring."""
    return (list(ACCENTS).index(accent) + VARIANTS.index(variant)) % HOLDOUT_MODULUS == 0


def speaker_pool(split: str) -> Tuple[Tuple[str, str], ...]:
    """(accent, variant) combinations of `split` ("train", "test" or "all"), in a fixed order."""
    if split not in SPLITS:
        raise ValueError(f"Unknown voice split. Expected one of {SPLITS}. Received: split={split!r}")
    combos = [(accent, variant) for accent in ACCENTS for variant in VARIANTS]
    if split == "all":
        return tuple(combos)
    want_test = split == "test"
    return tuple(c for c in combos if is_test_speaker(*c) == want_test)


def pick_voice(key: str, split: str = "train", rate_range: Sequence[int] = DEFAULT_RATE_RANGE,
               pitch_range: Sequence[int] = DEFAULT_PITCH_RANGE) -> Voice:
    """A speaker, rate and pitch for one utterance, chosen by a SHA-256 hash of `key` (e.g. a caption id).

    The same key always gets the same voice in every process and on every machine (Python's hash() is salted per
    process and must not be used). Rate and pitch are uniform integers in the inclusive ranges.
    """
    if not isinstance(key, (str, int)) or isinstance(key, bool):
        raise ValueError(f"`key` must be a string (or int) identifying the utterance. Received: {key!r}")
    rate_low, rate_high = _check_range("rate_range", rate_range, RATE_LIMITS)
    pitch_low, pitch_high = _check_range("pitch_range", pitch_range, PITCH_LIMITS)
    pool = speaker_pool(split)
    digest = hashlib.sha256(f"tfvgs-voice:{key}".encode("utf-8")).digest()
    draws = [int.from_bytes(digest[i:i + 8], "big") for i in (0, 8, 16)]
    accent, variant = pool[draws[0] % len(pool)]
    rate = rate_low + draws[1] % (rate_high - rate_low + 1)
    pitch = pitch_low + draws[2] % (pitch_high - pitch_low + 1)
    return Voice(accent, variant, rate, pitch)


def _check_int_in(name: str, value, limits: Tuple[int, int]) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not limits[0] <= value <= limits[1]:
        raise ValueError(f"`{name}` must be an integer in [{limits[0]}, {limits[1]}] (espeak-ng's range). "
                         f"Received: {name}={value!r}")


def _check_range(name: str, value: Sequence[int], limits: Tuple[int, int]) -> Tuple[int, int]:
    try:
        low, high = (int(v) for v in value)
        ok = low == value[0] and high == value[1]
    except (TypeError, ValueError):
        ok = False
    if not ok or not limits[0] <= low <= high <= limits[1]:
        raise ValueError(f"`{name}` must be (low, high) integers with {limits[0]} <= low <= high <= {limits[1]}. "
                         f"Received: {name}={value!r}")
    return low, high
