"""The stage plug-in interface every training stage implements (gan, segmenter, davenet, the edit stages, ...).

A stage owns `<workdir>/<name>/`: `checkpoints/` (resumable), `tensorboard/`, `model.keras` (the final model).
`python -m tfvgs.train --stage NAME` calls `run()`, which is the same for every stage: build data, build the model in
the strategy's scope, restore or initialise it, train in resumable chunks, save. Stages override the hooks.
"""
from __future__ import annotations

import abc
from typing import Dict, List, Optional, Tuple

import keras
import tensorflow as tf

from tfvgs import atomic_files, data, multi_worker, training, workdir as layout
from tfvgs.config import Config


class Stage(abc.ABC):
    """One step of the curriculum. Subclasses set `name` and implement the abstract hooks."""

    name: str = ""
    # The stage whose final model warm-starts this one (paper 000 sec. 6.3), or None to start from scratch.
    init_from: Optional[str] = None
    # What --data_dir must hold (tfvgs.data.RECORD_KINDS) and which splits, checked before anything is written.
    data_kinds: Tuple[str, ...] = ("pairs",)
    data_splits: Tuple[str, ...] = ("train", "val")
    # Whether the step runs under a multi-worker strategy (`tfvgs.multi_worker`); steps that own their loop say no.
    multi_worker_ok: bool = True

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
        """Written last, once every output of the stage exists (`--stage all` skips stages that have it)."""
        return layout.done_path(self.workdir, self.name)

    @property
    def config_path(self) -> str:
        return layout.config_path(self.workdir, self.name)

    # --- hooks -------------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def build_train_dataset(self, skip_batches: int) -> tf.data.Dataset:
        """The endless, seeded training dataset with its first `skip_batches` batches skipped (for resume)."""

    def build_val_dataset(self) -> Optional[tf.data.Dataset]:
        return None

    @abc.abstractmethod
    def build_model(self) -> keras.Model:
        """A compiled, built model (called inside the strategy scope)."""

    def initialize(self, model: keras.Model) -> None:
        """Warm start when there is no checkpoint of this stage yet: by default the weights of `init_from`."""
        if self.init_from is None:
            return
        path = layout.model_path(self.workdir, self.init_from)
        source = layout.load_step_model(self.workdir, self.init_from, needed_by=self.name)
        if [w.shape for w in source.weights] != [w.shape for w in model.weights]:
            raise ValueError(f"stage {self.name!r} cannot start from {path}: its model has different weights "
                             f"(was it trained with another --config?)")
        for target, value in zip(model.weights, source.weights):  # weights only: a fresh optimizer and schedule
            target.assign(value)
        print(f"initialised {self.name} from {path}", flush=True)

    def callbacks(self, model: keras.Model) -> List[keras.callbacks.Callback]:
        """Extra callbacks (image summaries, ...)."""
        return []

    def save(self, model: keras.Model) -> None:
        atomic_files.save_keras(model, self.model_path)

    def mark_done(self, logs: Dict[str, float]) -> None:
        import json
        atomic_files.write_text(self.done_path, json.dumps(
            {"stage": self.name, "logs": {k: float(v) for k, v in logs.items()}}, indent=2))

    def schedule(self) -> Tuple[int, int]:
        """(total steps, steps between checkpoints); stages with their own config section override it."""
        return self.config.train.steps, self.config.train.checkpoint_every

    def after_training(self, model: keras.Model, logs: Dict[str, float]) -> None:
        """Runs once the model is saved (e.g. a held-out evaluation)."""

    # --- the shared driver -------------------------------------------------------------------------------------

    # Config sections a resumed run must share with the run that wrote its checkpoints (the data order, the model and
    # the edits depend on them); anything else, e.g. train.steps, may change between runs.
    RESUME_INVARIANTS = ("seed", "world", "features", "data", "model", "train.batch_size", "train.optimizer",
                         "edits.ablation_probabilities", "edits.pixel_change", "edits.min_changed_fraction",
                         "edits.targeted_unit_counts")

    def check_data(self) -> None:
        """A --data_dir this stage cannot read fails here, in one sentence, before the stage writes anything."""
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

    def run(self) -> Dict[str, float]:
        """Trains the stage. Under a multi-worker strategy every worker runs this; only the chief writes the stage's
        files, the others keep their checkpoint saves in a temporary folder (`tfvgs.multi_worker`)."""
        chief = multi_worker.is_chief(self.strategy)
        self.check_data()
        tf.io.gfile.makedirs(self.stage_dir)
        self.check_resume_config()
        if chief:
            self.config.save(self.config_path)
        t = self.config.train
        write_dir = multi_worker.write_dir(self.checkpoint_dir, self.strategy)
        with self.strategy.scope():
            model = self.build_model()
            manager = training.restore_or_initialize(model, self.checkpoint_dir, t.keep_checkpoints,
                                                     lambda: self.initialize(model), write_dir=write_dir)
        steps, checkpoint_every = self.schedule()
        callbacks = ([training.ScalarSummaries(self.tensorboard_dir, t.log_every), *self.callbacks(model)]
                     if chief else [])
        logs = training.fit_resumable(
            model, self.build_train_dataset, steps=steps, checkpoint_every=checkpoint_every, manager=manager,
            callbacks=callbacks, validation_data=self.build_val_dataset(),
            after_save=lambda: multi_worker.remove_worker_dir(write_dir, self.strategy))
        if not chief:
            return logs
        self.save(model)
        print(f"[{self.name}] model saved to {self.model_path}; TensorBoard: tensorboard --logdir "
              f"{self.tensorboard_dir}", flush=True)
        self.after_training(model, logs)
        self.mark_done(logs)
        return logs
