"""The step plug-in interface: what every step of the curriculum shares, trained or not.

A step owns `<workdir>/<name>/` (`tfvgs.workdir` spells the layout). `run()` is the same for every step: check the
data, check that a resumed run has the settings of the run that wrote its checkpoints, save `config.json`, do the
step's own work (`execute`), and write `done.json` last (`--stage all` skips steps that have it). A trained stage
with one `fit` is a `Stage` (tfvgs.stages.stage); the GAN, which owns its loop, and the concept clusters, which train
nothing, implement `execute` themselves.
"""
from __future__ import annotations

import abc
import json
import math
from typing import Dict, Optional, Tuple

import tensorflow as tf

from tfvgs import atomic_files, data, multi_worker, training, workdir as layout
from tfvgs.config import Config


class Step(abc.ABC):
    """One step of the curriculum. Subclasses set `name` and implement `execute`."""

    name: str = ""
    # What --data_dir must hold (tfvgs.data.RECORD_KINDS) and which splits, checked before anything is written.
    data_kinds: Tuple[str, ...] = ("pairs",)
    data_splits: Tuple[str, ...] = ("train", "val")
    # Whether the step runs under a multi-worker strategy (`tfvgs.multi_worker`); steps that own their loop say no.
    multi_worker_ok: bool = True
    # Config sections a resumed run must share with the run that wrote its checkpoints (the data order, the model and
    # the edits depend on them); anything else, e.g. train.steps, may change between runs.
    RESUME_INVARIANTS = ("seed", "world", "features", "data", "model", "train.batch_size", "train.optimizer",
                         "train.crop_weight", "train.crop_frames", "train.voice_warp", "train.voice_gain",
                         "train.voice_tilt",
                         "edits.ablation_probabilities", "edits.pixel_change", "edits.min_changed_fraction",
                         "edits.targeted_unit_counts")

    def __init__(self, config: Config, workdir: str, data_dir: str,
                 strategy: Optional[tf.distribute.Strategy] = None):
        self.config, self.workdir, self.data_dir = config, workdir, data_dir
        refused = not self.multi_worker_ok and (multi_worker.is_multi_worker(strategy) if strategy is not None
                                                else training.wants_multi_worker(config.train.strategy))
        if refused:     # before the strategy is built: building it waits for every worker
            raise ValueError(f"The {self.name} step runs on one machine, not under MultiWorkerMirroredStrategy (every "
                             f"worker would write the same files). Run it without TF_CONFIG or with --set "
                             f"train.strategy=default. Received: train.strategy={config.train.strategy!r} with a "
                             f"TF_CONFIG of several workers")
        self.strategy = strategy or training.build_strategy(config.train.strategy)

    # --- paths -------------------------------------------------------------------------------------------------

    @property
    def stage_dir(self) -> str:
        return layout.step_dir(self.workdir, self.name)

    @property
    def checkpoint_dir(self) -> str:
        return layout.checkpoint_dir(self.workdir, self.name)

    @property
    def tensorboard_dir(self) -> str:
        return layout.tensorboard_dir(self.workdir, self.name)

    @property
    def model_path(self) -> str:
        return layout.model_path(self.workdir, self.name)

    @property
    def done_path(self) -> str:
        """Written last, once every output of the step exists (`--stage all` skips steps that have it)."""
        return layout.done_path(self.workdir, self.name)

    @property
    def config_path(self) -> str:
        return layout.config_path(self.workdir, self.name)

    # --- the shared driver -------------------------------------------------------------------------------------

    @abc.abstractmethod
    def execute(self) -> Dict[str, float]:
        """The step's own work, after the shared checks; returns the figures `done.json` keeps. Under a multi-worker
        strategy every worker runs it, and only the chief may write the step's files."""

    def check_data(self) -> None:
        """A --data_dir this step cannot read fails here, in one sentence, before the step writes anything."""
        data.check_data_dir(self.data_dir, self.data_kinds, self.data_splits, f"stage {self.name!r}")

    def check_resume_config(self) -> None:
        saved_path = self.config_path
        if not (tf.train.latest_checkpoint(self.checkpoint_dir) and tf.io.gfile.exists(saved_path)):
            return
        saved, current = Config.load(saved_path).to_dict(), self.config.to_dict()
        for key in self.RESUME_INVARIANTS:
            a, b = saved, current
            for part in key.split("."):
                a, b = a[part], b[part]
            if a != b:
                raise ValueError(f"{self.checkpoint_dir} was written with {key}={a!r}; this run has {key}={b!r}. "
                                 f"Resume with the same settings, or use another --workdir.")

    def mark_done(self, logs: Dict[str, float]) -> None:
        """done.json with the step's finite figures (JSON has no NaN)."""
        finite = {k: float(v) for k, v in logs.items() if math.isfinite(float(v))}
        atomic_files.write_text(self.done_path, json.dumps({"stage": self.name, "logs": finite}, indent=2))

    def run(self) -> Dict[str, float]:
        chief = multi_worker.is_chief(self.strategy)
        self.check_data()
        tf.io.gfile.makedirs(self.stage_dir)
        self.check_resume_config()
        if chief:
            self.config.save(self.config_path)
        logs = self.execute()
        if chief:
            self.mark_done(logs)
        return logs
