"""TensorBoard pictures and sounds of what the model attends to: matchmap overlays for a fixed set of pairs, and
their audio (re-spoken from the stored caption and voice spec, since pair records keep log-mels, not waveforms)."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfvgs import similarity as sim


def heatmap_overlay(images: tf.Tensor, image_feats: tf.Tensor, audio_feats: tf.Tensor,
                    audio_frames: tf.Tensor) -> tf.Tensor:
    """Images [B,H,W,3] in [-1,1] with the per-region peak of each pair's matchmap (max over valid frames) laid
    over them in red -> uint8 [B,H,W,3]. Regions the caption matches best glow."""
    m = sim.matchmap(image_feats, audio_feats)                                    # [B, H', W', T']
    valid = sim.frame_mask(audio_frames, tf.shape(m)[-1], tf.bool)[:, None, None, :]
    peak = tf.reduce_max(tf.where(valid, m, m.dtype.min), axis=-1)                 # [B, H', W']
    lo = tf.reduce_min(peak, axis=[1, 2], keepdims=True)
    hi = tf.reduce_max(peak, axis=[1, 2], keepdims=True)
    heat = (peak - lo) / tf.maximum(hi - lo, 1e-6)
    heat = tf.image.resize(heat[..., None], tf.shape(images)[1:3], method="bilinear")
    base = (images + 1.0) / 2.0
    red = tf.concat([tf.ones_like(heat), tf.zeros_like(heat), tf.zeros_like(heat)], axis=-1)
    blended = 0.55 * base + 0.45 * (heat * red + (1.0 - heat) * base * 0.4)
    return tf.cast(tf.clip_by_value(blended * 255.0, 0, 255), tf.uint8)


def respeak(captions, voices, sample_rate: int):
    """Waveforms of the captions in their voices, or None when they cannot be re-spoken (e.g. imported data)."""
    from tfvgs import speech
    waves = []
    try:
        for caption, voice in zip(captions, voices):
            waves.append(speech.synthesize(caption, speech.Voice.from_spec(voice), sample_rate=sample_rate))
    except Exception as e:  # noqa: BLE001 - audio summaries are optional
        print(f"audio summaries skipped: {type(e).__name__}: {e}", flush=True)
        return None
    longest = max(w.size for w in waves)
    return np.stack([np.pad(w, (0, longest - w.size)) for w in waves])[..., None]


class MatchmapSummaries(keras.callbacks.Callback):
    """Every `every` steps (and at the end): matchmap overlays of a fixed batch of pairs; their audio once."""

    def __init__(self, log_dir: str, batch, config, every: int):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.batch = {k: batch[k] for k in ("image", "logmel", "nframes")}
        self.captions = [c.decode() for c in batch["caption"].numpy()]
        self.voices = [v.decode() for v in batch.get("voice", tf.constant([b""] * len(self.captions))).numpy()]
        self.config, self.every = config, max(1, int(every))

    def _write_images(self):
        step = int(self.model.optimizer.iterations.numpy())
        image_feats, audio_feats, frames = self.model(self.batch, training=False)
        overlay = heatmap_overlay(self.batch["image"], image_feats, audio_feats, frames)
        with self.writer.as_default(step=step):
            tf.summary.image("matchmap_overlay", overlay, max_outputs=len(self.captions),
                             description=" | ".join(self.captions))
        self.writer.flush()

    def on_train_begin(self, logs=None):
        waves = respeak(self.captions, self.voices, self.config.speech.sample_rate)
        with self.writer.as_default(step=0):
            tf.summary.text("caption_text", tf.constant(self.captions))
            if waves is not None:
                tf.summary.audio("caption_audio", waves, self.config.speech.sample_rate, max_outputs=len(waves))
        self._write_images()

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) % self.every == 0:
            self._write_images()


# The key under which `RecallSummaries` leaves val R@10 (its first similarity) in the epoch-end logs, for the
# callbacks after it (`training.PlateauSchedule`).
RECALL_LOG_KEY = "val_recall@10"


class RecallSummaries(keras.callbacks.Callback):
    """At the end of every checkpoint chunk: retrieval recall@1/5/10 on a fixed set of held-out pairs, to
    TensorBoard, so progress is visible in the metric the papers report, not only in the loss.

    `kinds`: one similarity or several. The first is logged as val/recall/..., the others as val/recall_<kind>/...:
    a model trained with SISA is also measured with SISA, since MISA (the evaluation default) ranks its untrained
    per-region features (docs/results.md: test R@10 18.7% with SISA vs 4.4% with MISA for the cpu run)."""

    def __init__(self, log_dir: str, dataset: tf.data.Dataset, num_pairs: int, kinds):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.kinds = tuple(dict.fromkeys([kinds] if isinstance(kinds, str) else kinds))
        self.dataset, self.num_pairs = dataset, num_pairs

    def on_epoch_end(self, epoch, logs=None):
        from tfvgs.evaluation import retrieval
        if self.model.stop_training:  # e.g. a non-finite loss: there is nothing meaningful to measure
            return
        if getattr(self, "_encode", None) is None:
            self._encode = tf.function(lambda b: self.model(b, training=False), reduce_retracing=True)
        step = int(self.model.optimizer.iterations.numpy())
        results = retrieval.evaluate_retrieval_kinds(self.model, self.dataset, self.num_pairs, self.kinds,
                                                     self._encode)
        for i, (kind, result) in enumerate(results.items()):
            if i == 0 and logs is not None:
                logs[RECALL_LOG_KEY] = float(result["recall"]["mean"]["10"])
            prefix = "val/recall" if i == 0 else f"val/recall_{kind}"
            with self.writer.as_default(step=step):
                for direction in ("audio_to_image", "image_to_audio", "mean"):
                    for k, value in result["recall"][direction].items():
                        tf.summary.scalar(f"{prefix}/{direction}@{k}", value)
            self.writer.flush()
            mean, chance = result["recall"]["mean"], result["recall"]["chance"]
            print(f"\n  val recall over {result['n_pairs']} pairs ({kind}): R@1 {100 * mean['1']:.1f} "
                  f"R@5 {100 * mean['5']:.1f} R@10 {100 * mean['10']:.1f} (chance R@10 {100 * chance['10']:.1f})",
                  flush=True)
