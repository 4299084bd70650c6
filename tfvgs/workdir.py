"""The layout of a training workdir, in one place: where each step of a run keeps its files, and how a saved model
is loaded back.

    W/<step>/config.json     the config the step ran with (`saved_config` reads these)
    W/<step>/model.keras     its final model; the GAN keeps W/gan/generator.keras (tfvgs.gan_io)
    W/<step>/checkpoints/    resumable training state (the GAN also keeps training_time.json there)
    W/<step>/tensorboard/    its event files
    W/<step>/done.json       written last: the step finished (`--stage all` skips it)
    W/eval/<stage>/          metrics.json and report.md of `tfvgs.evaluate`

Steps are the names of `tfvgs.stages` (segmenter, gan, davenet, ..., cluster).
"""
from __future__ import annotations

import os

MODEL_FILENAME = "model.keras"


def step_dir(workdir: str, step: str) -> str:
    return os.path.join(workdir, step)


def model_path(workdir: str, step: str) -> str:
    return os.path.join(workdir, step, MODEL_FILENAME)


def config_path(workdir: str, step: str) -> str:
    return os.path.join(workdir, step, "config.json")


def checkpoint_dir(workdir: str, step: str) -> str:
    return os.path.join(workdir, step, "checkpoints")


def training_time_path(workdir: str, step: str) -> str:
    """The wall-clock seconds a step had trained for at its latest checkpoint (for time budgets across resumes)."""
    return os.path.join(checkpoint_dir(workdir, step), "training_time.json")


def tensorboard_dir(workdir: str, step: str) -> str:
    return os.path.join(workdir, step, "tensorboard")


def done_path(workdir: str, step: str) -> str:
    return os.path.join(workdir, step, "done.json")


def eval_dir(workdir: str, stage: str) -> str:
    return os.path.join(workdir, "eval", stage)


def metrics_path(workdir: str, stage: str) -> str:
    return os.path.join(eval_dir(workdir, stage), "metrics.json")


def step_config(workdir: str, step: str, fallback=None):
    """The config the step ran with (W/<step>/config.json), else `fallback` (ValueError when that is None)."""
    import tensorflow as tf

    from tfvgs.config import Config
    path = config_path(workdir, step)
    if tf.io.gfile.exists(path):
        return Config.load(path)
    if fallback is None:
        raise ValueError(f"Step {step!r} has no saved config ({path} is missing) and no `config` was given. "
                         f"Received: config=None")
    return fallback


def saved_config(workdir: str):
    """(config, path) of the newest <workdir>/<step>/config.json, or None when no step has saved one: every step of
    one run saves the same config, so any of them names the run's preset and overrides."""
    import glob

    from tfvgs.config import Config
    paths = sorted(glob.glob(config_path(workdir, "*")), key=os.path.getmtime)
    if not paths:
        return None
    return Config.load(paths[-1]), paths[-1]


def load_model(path: str, *, compile: bool = False):
    """A model saved by any step (dual encoder, segmenter, GAN generator), its tfvgs classes registered first:
    Keras can only deserialise classes whose modules were imported."""
    import keras

    import tfvgs.gan  # noqa: F401 - registers the generator and its layers
    import tfvgs.models  # noqa: F401 - registers the encoders and the dual encoder
    import tfvgs.models.attribute_segmenter  # noqa: F401 - registers the segmenter
    return keras.saving.load_model(path, compile=compile)


def load_step_model(workdir: str, step: str, *, compile: bool = False, hint: str = "", needed_by: str = ""):
    """W/<step>/model.keras, or FileNotFoundError saying which command makes it (and `hint`, another way out);
    `needed_by` names the stage that needs it (a warm start, the units to cluster)."""
    import tensorflow as tf
    path = model_path(workdir, step)
    if not tf.io.gfile.exists(path):
        who = f"stage {needed_by!r} needs stage {step!r}, but" if needed_by else f"no trained model for stage {step!r}:"
        raise FileNotFoundError(f"{who} {path} is missing (run `python -m tfvgs.train --stage {step}` first{hint})")
    return load_model(path, compile=compile)
