"""The DAVEnet stages: `davenet` (paper 001: sampled + semi-hard triplet loss from random init) and
`hard_negatives` (paper 000 sec. 6.3 "Hard Neg": the hardest in-batch impostor, initialised from davenet)."""
from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from tfvgs import data, losses as triplet_losses, training
from tfvgs.models import DualEncoder, build_audio_encoder, build_image_encoder
from tfvgs.stages.stage import Stage
from tfvgs.summaries import MatchmapSummaries, RecallSummaries
from tfvgs.voice_augmentation import VoiceAugmentation


def build_dual_encoder(config, loss: Optional[str] = None, on_plateau: bool = False) -> DualEncoder:
    """The configured dual encoder, compiled and built (weights and optimizer slots exist, so checkpoints restore).
    `on_plateau`: the learning rate is a variable for `training.PlateauSchedule`, not the step decay."""
    m = config.model
    keras.utils.set_random_seed(config.seed)   # the initial weights follow the config's seed, like the GAN's
    model = DualEncoder(
        build_image_encoder(m.image_encoder, embedding_dim=m.embedding_dim, width_multiplier=m.image_width),
        build_audio_encoder(m.audio_encoder, embedding_dim=m.embedding_dim, width_multiplier=m.audio_width),
        similarity=m.train_similarity, loss=loss or m.loss, margin=m.margin, seed=config.seed,
        crop_weight=config.train.crop_weight)
    # the hardest-impostor stages fine-tune a trained model; see TrainConfig.hardest_lr_scale
    scale = config.train.hardest_lr_scale if triplet_losses.uses_hardest(model.loss_kind) else 1.0
    model.compile(optimizer=training.build_optimizer(config.train, lr_scale=scale, on_plateau=on_plateau))
    size = config.world.image_size
    model({"image": tf.zeros([1, size, size, 3]),
           "logmel": tf.zeros([1, config.features.max_frames, config.features.num_mel_bins]),
           "nframes": tf.constant([config.features.max_frames])}, training=False)
    model.optimizer.build(model.trainable_variables)
    return model


class DavenetStage(Stage):
    name = "davenet"
    hard_negatives = False      # True: trains with config.train.hard_negative_loss instead of config.model.loss
    stops_on_plateau = True     # from random init, its length is what the seed changes most (train.plateau_patience)

    def build_train_dataset(self, skip_batches: int, worker: Optional[data.WorkerShard] = None) -> tf.data.Dataset:
        batch = self.config.train.batch_size
        return data.pairs_dataset(self.data_dir, "train", self.config, batch, training=True, repeat=True,
                                  seed=self.config.seed, skip_examples=skip_batches * batch,
                                  bucket_frames=self.config.data.bucket_frames,
                                  crop_frames=self.config.train.crop_frames if self.config.train.crop_weight else None,
                                  worker=worker, voice_augmentation=VoiceAugmentation.from_config(
                                      self.config.train, self.config.features))

    def build_val_dataset(self):
        batch = self.config.train.batch_size
        return data.with_known_length(data.pairs_dataset(self.data_dir, "val", self.config, batch), self.data_dir,
                                      "val", batch, limit=self.config.train.eval_pairs)

    def build_model(self) -> keras.Model:
        if not self.hard_negatives:
            return build_dual_encoder(self.config, on_plateau=self.uses_plateau)
        loss = self.config.train.hard_negative_loss
        if not triplet_losses.uses_hardest(loss):
            raise ValueError(f"stage {self.name!r} trains on the hardest impostor: train.hard_negative_loss must be "
                             f"one of {[k for k in triplet_losses.LOSS_KINDS if triplet_losses.uses_hardest(k)]}. "
                             f"Received: {loss!r}")
        return build_dual_encoder(self.config, loss, on_plateau=self.uses_plateau)

    def callbacks(self, model):
        t = self.config.train
        pairs = data.pairs_dataset(self.data_dir, "val", self.config, t.summary_pairs)
        recall_pairs = data.pairs_dataset(self.data_dir, "val", self.config, batch_size=min(64, t.eval_pairs))
        return [MatchmapSummaries(self.tensorboard_dir, next(iter(pairs)), self.config, every=t.checkpoint_every),
                RecallSummaries(self.tensorboard_dir, recall_pairs, t.eval_pairs,
                                (self.config.model.eval_similarity, self.config.model.train_similarity))]


class HardNegativesStage(DavenetStage):
    name = "hard_negatives"
    hard_negatives = True
    init_from = "davenet"
    stops_on_plateau = False    # fine-tunes for train.steps, as the edit stages do for edits.steps
