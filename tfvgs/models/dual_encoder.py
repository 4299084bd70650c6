"""The audio-visual dual encoder and its triplet-loss training step (paper 001 sec. 4.3-4.4; paper 000 sec. 5-6).

One training step on a replica's slice of the global batch:
  1. encode images and captions (valid output frames from `audio_encoder.output_frames(nframes)`);
  2. optionally ask the `negative_source` for one edited negative image per pair, outside the gradient tape, and
     encode those inside it;
  3. gather the candidates of the *global* batch across replicas (`ReplicaContext.all_gather`, whose gradient
     all-reduces and slices back, so every replica's features get the gradient of every replica's loss): pooled
     vectors for SISA (O(B^2 D)), full feature maps for MISA / SIMA;
  4. score local anchors against all candidates in both directions and apply the configured loss (sampled,
     semi_hard = sampled + semi-hard as paper 001 eq. 15, or hardest); random impostors come from uniforms keyed by
     (seed, optimizer step, global row), so they do not depend on the number of replicas;
  5. the replica's loss is sum(local per-anchor losses) / global batch size: Keras sums gradients over replicas, so
     the applied gradient is that of the global mean (= local mean / num_replicas_in_sync for even splits).

Logged values ("loss" and one "<term>_loss" per term, plus edit statistics with a negative source) are global-batch
means, identical on every replica; a non-finite "loss" is visible to callbacks that stop training.

Change `negative_source` before `fit` (setting it clears the compiled step functions so they are traced again).
"""
from __future__ import annotations

import contextlib
from typing import Optional

import keras
import tensorflow as tf

from tfvgs import losses as triplet_losses
from tfvgs import similarity as sim
from tfvgs.models.negative_source import NegativeSource

# Random streams: training draws streams [0, 4), evaluation [EVAL_STREAM_BASE, EVAL_STREAM_BASE + 4), the crop
# views of training [CROP_STREAM_BASE, CROP_STREAM_BASE + 4).
EVAL_STREAM_BASE = 1000
CROP_STREAM_BASE = 2000


@keras.saving.register_keras_serializable(package="tfvgs")
class DualEncoder(keras.Model):
    """Image encoder + audio encoder trained with a triplet loss over in-batch (and optionally edited) negatives.

    Args:
        image_encoder: layer mapping images [B, H, W, 3] to [B, H', W', D].
        audio_encoder: layer mapping log-mel [B, T, F] to [B, T', D], with `output_frames(nframes)`.
        similarity: "sisa" (default; paper 001 uses it with semi-hard mining), "misa" (paper 000) or "sima".
        loss: "sampled" (eq. 11), "semi_hard" (eq. 15 = sampled + semi-hard), "hardest" (paper 000), "mms", or
            "hardest_sampled" / "hardest_mms" (the hardest term plus another, tfvgs.losses)
            (masked margin softmax over all impostors, Ilharco et al. 2019; see tfvgs.losses).
        margin: triplet margin eta (paper: 1).
        seed: seed of the impostor sampling.
        crop_weight: weight of the crop views' loss (0: none). A training batch with "crop_logmel" and
            "crop_nframes" (random stretches of its captions alone in silence, `tfvgs.data.caption_crop`) then also
            scores every crop against the batch's images with the same loss: short stretches must find their image
            too, as an isolated word must in the semantic test. Crops run the audio encoder in inference mode, so
            its BatchNorm statistics stay those of whole captions and a crop is normalised as a test word is.
        negative_source: optional `NegativeSource` of edited negative images (not serialised).
    """

    def __init__(self, image_encoder, audio_encoder, similarity: str = "sisa", loss: str = "semi_hard",
                 margin: float = 1.0, seed: int = 0, crop_weight: float = 0.0,
                 negative_source: Optional[NegativeSource] = None, **kwargs):
        super().__init__(**kwargs)
        if not hasattr(audio_encoder, "output_frames"):
            raise ValueError("`audio_encoder` must have an `output_frames(nframes)` method. "
                             f"Received: audio_encoder={audio_encoder!r}")
        self.image_encoder = image_encoder
        self.audio_encoder = audio_encoder
        self.similarity = sim.check_kind(similarity)
        self.loss_kind = triplet_losses.check_loss_kind(loss)
        self.margin = float(margin)
        self.seed = int(seed)
        self.crop_weight = float(crop_weight)
        if self.crop_weight < 0:
            raise ValueError(f"`crop_weight` must be >= 0. Received: crop_weight={crop_weight}")
        self.term_names = triplet_losses.LOSS_TERMS[self.loss_kind]
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.term_trackers = [keras.metrics.Mean(name=f"{t}_loss") for t in self.term_names]
        self.edit_valid_tracker = keras.metrics.Mean(name="edit_valid_fraction")
        self.edit_harder_tracker = keras.metrics.Mean(name="edit_harder_fraction")
        self.crop_tracker = keras.metrics.Mean(name="crop_loss")
        self.negative_source = negative_source

    # --- the negative-source seam -------------------------------------------------------------------------------

    @property
    def negative_source(self) -> Optional[NegativeSource]:
        return self.__dict__.get("_negative_source_ref")

    @negative_source.setter
    def negative_source(self, source: Optional[NegativeSource]):
        if source is not None and not callable(getattr(source, "negatives", None)):
            raise ValueError("`negative_source` must have a `negatives(batch, image_feats, audio_feats, "
                             f"audio_frames)` method. Received: {source!r}")
        self.__dict__["_negative_source_ref"] = source
        for attr in ("train_function", "test_function"):  # traced with the old source: trace again
            if self.__dict__.get(attr) is not None:
                object.__setattr__(self, attr, None)

    def __setattr__(self, name, value):
        if name == "negative_source":
            # Past Keras' attribute tracking: a GAN's weights must not become this model's (trainable) weights.
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # --- forward ----------------------------------------------------------------------------------------------

    def call(self, batch, training=None):
        """batch dict -> (image_feats [B, H', W', D], audio_feats [B, T', D], audio_frames [B] int32)."""
        image_feats = self.image_encoder(batch["image"], training=training)
        audio_feats = self.audio_encoder(batch["logmel"], training=training)
        frames = self.audio_encoder.output_frames(batch["nframes"])
        frames = tf.minimum(frames, tf.shape(audio_feats)[1])
        return image_feats, audio_feats, frames

    def loss_terms(self, image_feats, audio_feats, audio_frames, step, stream_base: int = 0, extra=None):
        """Per-replica loss terms {name: scalar} (sum over local anchors / global batch size) and statistics.

        `extra` = (edited-negative scores S(I_n,j, A_j) [B], valid [B]) joins the image impostors of the captions.
        Must run in a replica context (inside `strategy.run`, or anywhere without a strategy).
        """
        ctx = tf.distribute.get_replica_context()
        local = tf.shape(image_feats)[0]
        offset, global_size = triplet_losses.global_rows(local)

        if self.similarity == "sisa":
            image_vec = sim.pool_image(image_feats)
            audio_vec = sim.pool_audio(audio_feats, audio_frames)
            all_image_vec = ctx.all_gather(image_vec, axis=0)
            all_audio_vec = ctx.all_gather(audio_vec, axis=0)
            image_to_audio = tf.matmul(image_vec, all_audio_vec, transpose_b=True)
            audio_to_image = tf.matmul(audio_vec, all_image_vec, transpose_b=True)
        else:
            all_image_feats = ctx.all_gather(image_feats, axis=0)
            all_audio_feats = ctx.all_gather(audio_feats, axis=0)
            all_frames = ctx.all_gather(audio_frames, axis=0)
            image_to_audio = sim.similarity_matrix(image_feats, all_audio_feats, all_frames, self.similarity)
            audio_to_image = tf.transpose(
                sim.similarity_matrix(all_image_feats, audio_feats, audio_frames, self.similarity))

        positive_index = offset + tf.range(local)
        uniforms = [triplet_losses.anchor_uniforms(self.seed, step, global_size, offset, local, stream_base + k)
                    for k in range(triplet_losses.num_uniform_streams(self.loss_kind))]
        per_anchor, details = triplet_losses.triplet_loss_terms(
            self.loss_kind, image_to_audio, audio_to_image, positive_index, uniforms, self.margin,
            extra_negative_scores=None if extra is None else extra[0],
            extra_negative_valid=None if extra is None else extra[1])
        denominator = tf.cast(tf.maximum(global_size, 1), image_to_audio.dtype)
        terms = {name: tf.reduce_sum(per_anchor[name]) / denominator for name in self.term_names}
        stats = {}
        if extra is not None:
            harder = tf.zeros([local], tf.bool)
            for name in self.term_names:
                harder = tf.logical_or(harder, details[name]["used_extra"])
            stats["edit_valid_fraction"] = tf.reduce_sum(tf.cast(extra[1], denominator.dtype)) / denominator
            stats["edit_harder_fraction"] = tf.reduce_sum(tf.cast(harder, denominator.dtype)) / denominator
        return terms, stats

    # --- Keras steps ------------------------------------------------------------------------------------------

    @property
    def metrics(self):
        return [self.loss_tracker, *self.term_trackers, self.edit_valid_tracker, self.edit_harder_tracker,
                self.crop_tracker]

    def training_loss(self, batch, step, tape: Optional[tf.GradientTape] = None):
        """(loss, terms, stats) of one training step on `batch`, recorded by `tape` if given.

        The negative source (if any) runs with `tape` paused; its images are then encoded under the tape.
        """
        image_feats, audio_feats, audio_frames = self(batch, training=True)
        extra = None
        source = self.negative_source
        if source is not None:
            with (tape.stop_recording() if tape is not None else contextlib.nullcontext()):
                negative_images, valid = source.negatives(
                    batch, tf.stop_gradient(image_feats), tf.stop_gradient(audio_feats), audio_frames)
            negative_feats = self.image_encoder(tf.stop_gradient(negative_images), training=True)
            extra = (sim.paired_similarity(negative_feats, audio_feats, audio_frames, self.similarity),
                     tf.cast(valid, tf.bool))
        terms, stats = self.loss_terms(image_feats, audio_feats, audio_frames, step, 0, extra)
        loss = tf.add_n(list(terms.values()))
        if self.crop_weight > 0 and "crop_logmel" in batch:
            crop_feats = self.audio_encoder(batch["crop_logmel"], training=False)
            crop_frames = tf.minimum(self.audio_encoder.output_frames(batch["crop_nframes"]),
                                     tf.shape(crop_feats)[1])
            crop_terms, _ = self.loss_terms(image_feats, crop_feats, crop_frames, step, CROP_STREAM_BASE)
            stats["crop_loss"] = tf.add_n(list(crop_terms.values()))
            loss = loss + self.crop_weight * stats["crop_loss"]
        return loss, terms, stats

    def train_step(self, data):
        batch = _unpack(data)
        with tf.GradientTape() as tape:
            loss, terms, stats = self.training_loss(batch, self.optimizer.iterations, tape)
            scaled_loss = self.optimizer.scale_loss(loss)
        trainable = self.trainable_weights
        gradients = tape.gradient(scaled_loss, trainable)
        self.optimizer.apply_gradients(zip(gradients, trainable))
        return self._update_metrics(loss, terms, stats)

    def test_step(self, data):
        """The training loss (without edited negatives) with inference-mode BatchNorm."""
        batch = _unpack(data)
        image_feats, audio_feats, audio_frames = self(batch, training=False)
        terms, stats = self.loss_terms(image_feats, audio_feats, audio_frames, self.optimizer.iterations,
                                       EVAL_STREAM_BASE)
        return self._update_metrics(tf.add_n(list(terms.values())), terms, stats)

    def _update_metrics(self, loss, terms, stats):
        """Metrics take the global value (sum of per-replica parts), so every replica logs the same number."""
        ctx = tf.distribute.get_replica_context()
        global_sum = lambda v: ctx.all_reduce(tf.distribute.ReduceOp.SUM, v)  # noqa: E731
        self.loss_tracker.update_state(global_sum(loss))
        logs = {"loss": self.loss_tracker.result()}
        for name, tracker in zip(self.term_names, self.term_trackers):
            tracker.update_state(global_sum(terms[name]))
            logs[tracker.name] = tracker.result()
        for tracker in (self.edit_valid_tracker, self.edit_harder_tracker, self.crop_tracker):
            if tracker.name in stats:
                tracker.update_state(global_sum(stats[tracker.name]))
                logs[tracker.name] = tracker.result()
        return logs

    # --- serialisation ----------------------------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_encoder": keras.saving.serialize_keras_object(self.image_encoder),
            "audio_encoder": keras.saving.serialize_keras_object(self.audio_encoder),
            "similarity": self.similarity,
            "loss": self.loss_kind,
            "margin": self.margin,
            "seed": self.seed,
            "crop_weight": self.crop_weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["image_encoder"] = keras.saving.deserialize_keras_object(config["image_encoder"])
        config["audio_encoder"] = keras.saving.deserialize_keras_object(config["audio_encoder"])
        return cls(**config)


def _unpack(data):
    """Accepts the batch dict itself or Keras' (x,) / (x, y) / (x, y, w) tuples with x the dict."""
    if isinstance(data, (tuple, list)):
        data = data[0]
    missing = [k for k in ("image", "logmel", "nframes") if k not in data]
    if missing:
        raise ValueError(f"A batch must be a dict with 'image', 'logmel' and 'nframes'. Missing {missing}. "
                         f"Received keys: {sorted(data)}")
    return data

