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

from tfvgs import atomic_files, data, multi_worker, training, workdir as layout
from tfvgs.stages.step import Step


class Stage(Step):
    """A trained step of the curriculum. Subclasses set `name` and implement the abstract hooks."""

    # The stage whose final model warm-starts this one (paper 000 sec. 6.3), or None to start from scratch.
    init_from: Optional[str] = None

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
        """(total steps, steps between checkpoints); stages with their own config section override it."""
        return self.config.train.steps, self.config.train.checkpoint_every

    def after_training(self, model: keras.Model, logs: Dict[str, float]) -> None:
        """Runs once the model is saved (e.g. a held-out evaluation)."""

    # --- the driver ----------------------------------------------------------------------------------------------

    def execute(self) -> Dict[str, float]:
        """Trains the stage. Under a multi-worker strategy every worker runs this; only the chief writes the stage's
        files, the others keep their checkpoint saves in a temporary folder (`tfvgs.multi_worker`)."""
        chief = multi_worker.is_chief(self.strategy)
        t = self.config.train
        write_dir = multi_worker.write_dir(self.checkpoint_dir, self.strategy)
        with self.strategy.scope():
            model = self.build_model()
            manager = training.restore_or_initialize(model, self.checkpoint_dir, t.keep_checkpoints,
                                                     lambda: self.initialize(model), write_dir=write_dir)
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
        logs = training.fit_resumable(
            model, make_train_dataset, steps=steps, checkpoint_every=checkpoint_every, manager=manager,
            callbacks=callbacks, validation_data=self.build_val_dataset(),
            after_save=lambda: multi_worker.remove_worker_dir(write_dir, self.strategy))
        if not chief:
            return logs
        self.save(model)
        print(f"[{self.name}] model saved to {self.model_path}; TensorBoard: tensorboard --logdir "
              f"{self.tensorboard_dir}", flush=True)
        self.after_training(model, logs)
        return logs
