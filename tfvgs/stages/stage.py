"""Trained stages: one model, one resumable `fit` (segmenter, davenet, hard_negatives, the edit stages).

`Stage.execute` is the same for every one of them: build data, build the model in the strategy's scope, restore or
initialise it, train in resumable chunks, save. Stages override the hooks; what every step shares (checks, config,
done.json) is `tfvgs.stages.step.Step`.
"""
from __future__ import annotations

import abc
from typing import Dict, List, Optional, Tuple

import keras
import tensorflow as tf

from tfvgs import atomic_files, data, multi_worker, summaries, training, workdir as layout
from tfvgs.stages.step import Step


class Stage(Step):
    """A trained step of the curriculum. Subclasses set `name` and implement the abstract hooks."""

    # The stage whose final model warm-starts this one (paper 000 sec. 6.3), or None to start from scratch.
    init_from: Optional[str] = None
    # Whether train.plateau_patience > 0 gives this stage its learning rate and length from val recall
    # (`training.PlateauSchedule`); the stages that fine-tune for a set number of steps say no.
    stops_on_plateau: bool = False

    @property
    def uses_plateau(self) -> bool:
        return self.stops_on_plateau and self.config.train.plateau_patience > 0

    # --- hooks -------------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def build_train_dataset(self, skip_batches: int, worker: Optional[data.WorkerShard] = None) -> tf.data.Dataset:
        """The endless, seeded training dataset with its first `skip_batches` (global) batches skipped (for resume);
        with `worker`, that worker's part under FILE sharding (`tfvgs.data.WorkerShard`: its shard files, batches
        of one replica's part of the global batch)."""

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

    def schedule(self) -> Tuple[int, int]:
        """(total steps, steps between checkpoints); stages with their own config section override it. A stage that
        stops on a plateau trains at most train.plateau_max_steps when that is set."""
        t = self.config.train
        if t.plateau_max_steps < 0:
            raise ValueError(f"train.plateau_max_steps must be >= 0 (0: train.steps is the ceiling). Received: "
                             f"{t.plateau_max_steps}")
        if self.uses_plateau and t.plateau_max_steps:
            return t.plateau_max_steps, t.checkpoint_every
        return t.steps, t.checkpoint_every

    def check_resume_config(self) -> None:
        """Also refuses a checkpoint of the other DaveNet schedule, before this run's config.json replaces the
        saved one."""
        super().check_resume_config()
        latest = tf.train.latest_checkpoint(self.checkpoint_dir)
        if latest:
            training.check_plateau_state(latest, self.uses_plateau)

    def after_training(self, model: keras.Model, logs: Dict[str, float]) -> None:
        """Runs once the model is saved (e.g. a held-out evaluation)."""

    # --- the driver ----------------------------------------------------------------------------------------------

    def execute(self) -> Dict[str, float]:
        """Trains the stage. Under a multi-worker strategy every worker runs this; only the chief writes the stage's
        files, the others keep their checkpoint saves in a temporary folder (`tfvgs.multi_worker`)."""
        chief = multi_worker.is_chief(self.strategy)
        t = self.config.train
        if self.uses_plateau and multi_worker.num_workers(self.strategy) > 1:
            # only the chief measures val recall, and every worker must stop at the same step
            raise ValueError(f"stage {self.name!r}: train.plateau_patience needs one machine (the chief alone "
                             f"measures val recall); under MultiWorkerMirroredStrategy use fixed train.steps (--set "
                             f"train.plateau_patience=0, as the cpu preset's schedule is on). "
                             f"Received: train.plateau_patience={t.plateau_patience}")
        plateau = training.PlateauState() if self.uses_plateau else None   # plain variables, outside the scope
        write_dir = multi_worker.write_dir(self.checkpoint_dir, self.strategy)
        with self.strategy.scope():
            model = self.build_model()
            manager = training.restore_or_initialize(model, self.checkpoint_dir, t.keep_checkpoints,
                                                     lambda: self.initialize(model), write_dir=write_dir,
                                                     plateau=plateau)
        steps, checkpoint_every = self.schedule()
        make_train_dataset = self.build_train_dataset
        workers = multi_worker.num_workers(self.strategy)
        num_shards = len(data.list_shards(self.data_dir, "train")) if workers > 1 else 0   # one process: no listing
        if multi_worker.shards_by_file(self.config.data.worker_sharding, num_shards, workers):
            print(f"[{self.name}] FILE sharding: each of {workers} workers reads its own of the {num_shards} train "
                  f"shards", flush=True)
            make_train_dataset = lambda skip: multi_worker.distribute_by_file(   # noqa: E731
                self.strategy, lambda worker: self.build_train_dataset(skip, worker))
        callbacks = ([training.ScalarSummaries(self.tensorboard_dir, t.log_every), *self.callbacks(model)]
                     if chief else [])
        if plateau is not None:   # after the callbacks: it reads the val recall they log
            callbacks.append(training.PlateauSchedule(plateau, summaries.RECALL_LOG_KEY, t.plateau_patience,
                                                      t.plateau_min_delta, t.lr_decay_factor, t.plateau_decays))
        logs = training.fit_resumable(
            model, make_train_dataset, steps=steps, checkpoint_every=checkpoint_every, manager=manager,
            callbacks=callbacks, validation_data=self.build_val_dataset(),
            after_save=lambda: multi_worker.remove_worker_dir(write_dir, self.strategy),
            stopped=lambda: plateau is not None and bool(plateau.stopped.numpy()))
        if not chief:
            return logs
        self.save(model)
        print(f"[{self.name}] model saved to {self.model_path}; TensorBoard: tensorboard --logdir "
              f"{self.tensorboard_dir}", flush=True)
        self.after_training(model, logs)
        return logs
