"""The trained scene generator on disk: where the `gan` stage puts it, and how later stages and tools load it.

The `gan` stage saves PGGAN's smoothed generator (the EMA copy, `ProgressiveGAN.sampling_generator`) as
`<workdir>/gan/generator.keras`, with `<workdir>/gan/generator.json` describing how far it had grown. Everything
that draws (the `draw` tool, GAN-drawn data sets, the edit stages) loads it with `load_generator(workdir)` and makes
latents with `latents_for_seeds`, so "seed 3" is the same image everywhere.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable

import numpy as np

from tfvgs import workdir as layout

STAGE_NAME = "gan"
GENERATOR_FILENAME = "generator.keras"
INFO_FILENAME = "generator.json"


def generator_path(workdir: str) -> str:
    return os.path.join(layout.step_dir(workdir, STAGE_NAME), GENERATOR_FILENAME)


def info_path(workdir: str) -> str:
    return os.path.join(layout.step_dir(workdir, STAGE_NAME), INFO_FILENAME)


def latents_for_seeds(seeds: Iterable[int], latent_dim: int) -> np.ndarray:
    """One standard-normal latent per seed, [len(seeds), latent_dim] float32 (PGGAN draws z the same way).

    A latent depends only on its seed and the latent size, not on the batch it is drawn in.
    """
    seeds = [int(s) for s in seeds]
    if any(s < 0 for s in seeds):
        raise ValueError(f"Seeds must be >= 0. Received: {seeds}")
    if not seeds:
        return np.zeros((0, int(latent_dim)), np.float32)
    return np.stack([np.random.default_rng(s).standard_normal(int(latent_dim)) for s in seeds]).astype(np.float32)


def save_generator(generator, stage_dir: str, info: Dict[str, Any]) -> str:
    """Writes `generator.keras` and `generator.json` (`info` plus the generator's sizes) into `stage_dir`."""
    from tfvgs import atomic_files
    path = os.path.join(stage_dir, GENERATOR_FILENAME)
    info = dict(info, latent_dim=generator.latent_dim, max_resolution=generator.max_resolution,
                h4_channels=generator.h4_channels, model=GENERATOR_FILENAME)
    atomic_files.write_text(os.path.join(stage_dir, INFO_FILENAME), json.dumps(info, indent=2, sort_keys=True) + "\n")
    atomic_files.save_keras(generator, path)      # last: generator.keras exists only with its generator.json
    return path


def read_info(workdir: str) -> Dict[str, Any]:
    """The `generator.json` of a workdir ({} when absent, e.g. a generator saved by hand)."""
    import tensorflow as tf
    path = info_path(workdir)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def load_generator(workdir: str, allow_partial: bool = False):
    """The trained EMA generator of `workdir`, running at its final resolution with alpha 1.

    Args:
        workdir: the `--workdir` the `gan` stage trained in (the generator is `<workdir>/gan/generator.keras`).
        allow_partial: load a generator whose training stopped before its final resolution was fully faded in
            (its top blocks are then untrained; useful only for debugging short runs).

    Raises:
        FileNotFoundError: no trained generator in `workdir`.
        ValueError: the generator had not reached its final resolution and `allow_partial` is False.
    """
    import tensorflow as tf
    path = generator_path(workdir)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"No trained generator in workdir {workdir!r}: {path} does not exist. Train one "
                                f"with `python -m tfvgs.train --stage gan --data_dir SCENES --workdir {workdir}`.")
    info = read_info(workdir)
    if info and not info.get("fully_grown", True) and not allow_partial:
        resolution, needed = info.get("resolution"), info.get("images_until_full_resolution")
        raise ValueError(f"The generator in {path} stopped growing at {resolution}x{resolution} (alpha "
                         f"{info.get('alpha')}, {info.get('images_shown')} images shown; full "
                         f"{info.get('max_resolution')} px needs {needed}). Train longer (raise gan.total_kimg and "
                         f"rerun the gan stage) or pass allow_partial=True.")
    generator = layout.load_model(path)
    generator.alpha.assign(1.0)
    return generator
