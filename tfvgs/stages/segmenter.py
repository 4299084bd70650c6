"""The `segmenter` stage: trains the attribute segmenter on rendered scenes (paper 000 sec. 6.1) and evaluates it.

    python -m tfvgs.train --stage segmenter --config cpu --data_dir SCENES --workdir W

SCENES holds scene TFRecords (beam_pipelines.render_scenes). Trains on split "train", validates on "val", saves
W/segmenter/model.keras, then describes the held-out "test" split and writes W/segmenter/eval.json
(`tfvgs.describe.evaluate_segmenter`). Steps, checkpoint interval, batch size and learning rate come from
`config.segmenter`, not `config.train` (the segmenter is an image model with its own schedule); resuming after a
kill works as for every stage.
"""
from __future__ import annotations

import json
import os
from typing import Dict, Optional

import keras
import tensorflow as tf

from tfvgs import data
from tfvgs.describe import evaluate_segmenter
from tfvgs.models.attribute_segmenter import AttributeSegmenter, segmentation_targets
from tfvgs.stages.stage import Stage


def build_segmenter(config) -> AttributeSegmenter:
    """The configured segmenter, compiled (Adam) and built, optimizer slots included, so checkpoints restore."""
    s = config.segmenter
    model = AttributeSegmenter(width=s.width, depth=s.depth, seed=config.seed)
    model.compile(optimizer=keras.optimizers.Adam(s.learning_rate))
    size = config.world.image_size
    model(tf.zeros([1, size, size, 3]), training=False)
    model.optimizer.build(model.trainable_variables)
    return model


def to_training_pair(batch: Dict[str, tf.Tensor]):
    """A scenes_dataset batch -> (images, targets) for `fit`."""
    return batch["image"], segmentation_targets(batch["instance_mask"], batch["attributes"])


class SegmenterStage(Stage):
    name = "segmenter"
    data_kinds = ("scenes",)
    data_splits = ("train", "val", "test")

    @property
    def eval_path(self) -> str:
        return os.path.join(self.stage_dir, "eval.json")

    def build_train_dataset(self, skip_batches: int, worker: Optional[data.WorkerShard] = None) -> tf.data.Dataset:
        batch = self.config.segmenter.batch_size
        ds = data.scenes_dataset(self.data_dir, "train", self.config, batch, training=True, repeat=True,
                                 seed=self.config.seed, skip_examples=skip_batches * batch, worker=worker)
        return ds.map(to_training_pair, num_parallel_calls=self.config.data.reader_parallelism,
                                         deterministic=True)

    def build_val_dataset(self):
        batch = self.config.segmenter.batch_size
        ds = data.scenes_dataset(self.data_dir, "val", self.config, batch).map(to_training_pair)
        return data.with_known_length(ds, self.data_dir, "val", batch)

    def build_model(self) -> keras.Model:
        return build_segmenter(self.config)

    def evaluate(self, model: keras.Model, split: str = "test") -> Dict:
        s = self.config.segmenter
        ds = data.scenes_dataset(self.data_dir, split, self.config, s.batch_size)
        metrics = evaluate_segmenter(model, ds, min_object_pixels=s.min_object_pixels,
                                     min_confidence=s.min_confidence)
        metrics["split"] = split
        with tf.io.gfile.GFile(self.eval_path, "w") as f:
            f.write(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        print(f"[{self.name}] {split} evaluation written to {self.eval_path}: "
              f"{json.dumps({k: metrics[k] for k in ('pixel_accuracy', 'object_accuracy', 'count_accuracy')})}",
              flush=True)
        return metrics

    def schedule(self):
        return self.config.segmenter.steps, self.config.segmenter.checkpoint_every

    def after_training(self, model: keras.Model, logs: Dict[str, float]) -> None:
        self.evaluate(model)
