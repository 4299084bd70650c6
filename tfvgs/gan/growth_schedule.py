"""When to grow: resolution level, fade-in alpha and minibatch size as functions of the number of real images shown.

Pure Python (no TensorFlow) so the trainer can plan phases, and so a restored `images_shown` counter alone
recovers where training was. Follows `TrainingSchedule` of the official PGGAN code: starting at `base_resolution`,
each phase first trains the current resolution for `lod_training_kimg` thousand images, then fades in the next one
over `lod_transition_kimg` thousand images, until `max_resolution` is reached and trained for the rest of the run.

Levels count resolutions from 4x4: level `l` is `4 * 2**l` pixels, so a 128 px GAN has levels 0..5. During a
fade-in the networks run at the *new* level with `alpha` rising linearly from 0 to 1; `alpha == 1` means the new
block alone (PGGAN's `lod` is `max_level - level + 1 - alpha` inside a transition, `max_level - level` otherwise).
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple


class GrowthPhase(NamedTuple):
    """Where training is after some number of images: run the networks at `level` with fade-in `alpha`."""
    level: int
    resolution: int
    alpha: float
    minibatch_size: int
    in_transition: bool


def _level_of(resolution: int, what: str) -> int:
    if int(resolution) != resolution or resolution < 4 or (int(resolution) & (int(resolution) - 1)):
        raise ValueError(f"`{what}` must be a power of two >= 4. Received: {what}={resolution!r}")
    return int(round(math.log2(int(resolution)))) - 2


class GrowthSchedule:
    """Maps `images_shown` (real images given to the discriminator) to a `GrowthPhase`.

    Args:
        max_resolution: final image size (power of two >= 4).
        lod_training_kimg: thousands of images to train each resolution before the next fade-in.
        lod_transition_kimg: thousands of images over which each new resolution is faded in (0 = switch at once).
        base_resolution: resolution at the start (4 in PGGAN; `max_resolution` disables growing).
        minibatch_base: minibatch size for resolutions absent from `minibatch_per_resolution`.
        minibatch_per_resolution: {resolution: minibatch size} overrides, as PGGAN's `minibatch_dict`.
    """

    def __init__(self, max_resolution: int, lod_training_kimg: float = 600.0, lod_transition_kimg: float = 600.0,
                 base_resolution: int = 4, minibatch_base: int = 16,
                 minibatch_per_resolution: Optional[Mapping[int, int]] = None):
        self.max_level = _level_of(max_resolution, "max_resolution")
        self.base_level = _level_of(base_resolution, "base_resolution")
        if self.base_level > self.max_level:
            raise ValueError(f"`base_resolution` must not exceed `max_resolution`. Received: "
                             f"base_resolution={base_resolution}, max_resolution={max_resolution}")
        if lod_training_kimg < 0 or lod_transition_kimg < 0:
            raise ValueError(f"Phase lengths must be >= 0. Received: lod_training_kimg={lod_training_kimg}, "
                             f"lod_transition_kimg={lod_transition_kimg}")
        if int(minibatch_base) != minibatch_base or minibatch_base < 1:
            raise ValueError(f"`minibatch_base` must be a positive integer. Received: {minibatch_base!r}")
        per_resolution: Dict[int, int] = {}
        for resolution, size in dict(minibatch_per_resolution or {}).items():
            if int(size) != size or size < 1:
                raise ValueError(f"Minibatch sizes must be positive integers. Received: {resolution}: {size!r}")
            per_resolution[int(resolution)] = int(size)  # JSON round trips turn keys into strings
        self.max_resolution = int(max_resolution)
        self.base_resolution = int(base_resolution)
        self.lod_training_kimg = float(lod_training_kimg)
        self.lod_transition_kimg = float(lod_transition_kimg)
        self.minibatch_base = int(minibatch_base)
        self.minibatch_per_resolution = per_resolution
        self.training_images = int(round(self.lod_training_kimg * 1000))
        self.transition_images = int(round(self.lod_transition_kimg * 1000))

    # --- per level -------------------------------------------------------------------------------------------
    def resolution_of(self, level: int) -> int:
        return 4 * 2 ** int(level)

    def minibatch_size(self, resolution: int) -> int:
        return self.minibatch_per_resolution.get(int(resolution), self.minibatch_base)

    def transition_start(self, level: int) -> int:
        """Images shown when `level` starts fading in (alpha leaves 0); levels up to the base one return 0."""
        steps = int(level) - self.base_level
        if steps <= 0:
            return 0
        return (steps - 1) * (self.training_images + self.transition_images) + self.training_images

    def alpha(self, images_shown: int, level: int) -> float:
        """Fade-in weight of `level`'s new block: a clipped linear ramp over its transition (1 for the base level).

        The train step computes this same ramp with TensorFlow ops from `transition_start` and
        `transition_images`, so alpha moves every step while the level stays a Python constant per phase.
        """
        if int(level) <= self.base_level or self.transition_images == 0:
            return 1.0
        ramp = (int(images_shown) - self.transition_start(level)) / self.transition_images
        return min(max(ramp, 0.0), 1.0)

    # --- per images shown -------------------------------------------------------------------------------------
    def level_at(self, images_shown: int) -> int:
        if images_shown < 0:
            raise ValueError(f"`images_shown` must be >= 0. Received: images_shown={images_shown!r}")
        phase_images = self.training_images + self.transition_images
        if phase_images == 0:
            return self.base_level
        phase_index, within = divmod(int(images_shown), phase_images)
        level = self.base_level + phase_index + (1 if within > self.training_images else 0)
        return min(level, self.max_level)

    def phase_at(self, images_shown: int) -> GrowthPhase:
        level = self.level_at(images_shown)
        alpha = self.alpha(images_shown, level)
        resolution = self.resolution_of(level)
        return GrowthPhase(level=level, resolution=resolution, alpha=alpha,
                           minibatch_size=self.minibatch_size(resolution), in_transition=alpha < 1.0)

    def next_boundary(self, images_shown: int) -> Optional[int]:
        """Smallest images-shown count after `images_shown` whose (level, in_transition) differs; None if none.

        The trainer runs one `fit` per such phase: the level is a Python constant of the traced train step, and
        PGGAN resets the optimizer state both when a fade-in starts and when it ends.
        """
        def key(count):
            phase = self.phase_at(count)
            return phase.level, phase.in_transition

        current = key(images_shown)
        candidates = set()
        for level in range(self.base_level + 1, self.max_level + 1):
            start = self.transition_start(level)
            candidates.update((start, start + 1, start + self.transition_images, start + self.transition_images + 1))
        for count in sorted(c for c in candidates if c > images_shown):
            if key(count) != current:
                return count
        return None

    def phases_between(self, start: int, end: int) -> List[Tuple[GrowthPhase, int]]:
        """(the phase at its first image, images shown in it) for each phase from `start` to `end` images."""
        out, count = [], int(start)
        while count < end:
            boundary = self.next_boundary(count)
            stop = int(end) if boundary is None else min(boundary, int(end))
            out.append((self.phase_at(count), stop - count))
            count = stop
        return out

    def images_until_full_resolution(self) -> int:
        """Images shown when `max_resolution` is fully faded in (alpha reaches 1)."""
        return self.transition_start(self.max_level) + (self.transition_images if self.max_level > self.base_level
                                                        else 0)

    def get_config(self) -> dict:
        return {"max_resolution": self.max_resolution, "lod_training_kimg": self.lod_training_kimg,
                "lod_transition_kimg": self.lod_transition_kimg, "base_resolution": self.base_resolution,
                "minibatch_base": self.minibatch_base,
                "minibatch_per_resolution": dict(self.minibatch_per_resolution)}

    @classmethod
    def from_config(cls, config: Mapping) -> "GrowthSchedule":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"GrowthSchedule({args})"
