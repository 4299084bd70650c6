"""Edited negative images (paper 000 sec. 5.4, 5.6 and the renderer upper bound of 6.5) as `NegativeSource`s.

The GAN edits redraw the pair's own image: its latent z (stored in every Audio CLEVRGAN record) gives h4 = g_E(z);
h4 units are zeroed at the most salient location of the pair's matchmap and g_D draws the edited image. An edit
counts only if it changes the image (`EditsConfig.pixel_change`, `min_changed_fraction`; with
`edits.change_test = "segmenter"` also what the segmenter reads under it, `tfvgs.edits.described_change`); the
ablation grows until it does - more units with probability p raised along `ablation_probabilities` (random edits),
or more of the drawn cluster's top-ranked units along `targeted_unit_counts` (targeted edits). A pair whose edit
never changes the image gets valid=False and its original image back, so the loss ignores it
(`DualEncoder.training_loss`).

Randomness is stateless, keyed by (seed, optimizer step, try) and drawn for the whole global batch of which each
replica slices its rows (as `losses.anchor_uniforms`): a resumed run draws the same edits, and a pair gets the same
edit on 1 or 8 replicas.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import tensorflow as tf

from tfvgs import losses
from tfvgs import similarity as sim
from tfvgs.models.negative_source import NegativeSource

H4_GRID = 8   # h4 is the 8x8 map after the generator's 4th conv layer


def salient_location(image_feats, audio_feats, audio_frames):
    """argmax_{r,c,t} of the matchmap over valid frames (paper 000 sec. 5.6 step 2).

    Returns (rows [B] int32, cols [B] int32, embedding [B, D]): the image-feature cell and its feature vector w_i.
    """
    m = sim.matchmap(image_feats, audio_feats)                                       # [B, H', W', T']
    valid = sim.frame_mask(audio_frames, tf.shape(m)[-1], tf.bool)[:, None, None, :]
    per_cell = tf.reduce_max(tf.where(valid, m, tf.cast(m.dtype.min, m.dtype)), axis=-1)   # [B, H', W']
    batch, width = tf.shape(per_cell)[0], tf.shape(per_cell)[2]
    flat = tf.argmax(tf.reshape(per_cell, [batch, -1]), axis=-1, output_type=tf.int32)
    rows, cols = flat // width, flat % width
    embedding = tf.gather_nd(image_feats, tf.stack([tf.range(batch), rows, cols], axis=-1))
    return rows, cols, embedding


def location_mask(rows, cols, feature_size: int, grid: int = H4_GRID):
    """[B, grid, grid] float: the h4 cells whose image area overlaps feature cell (row, col) of a square map of
    `feature_size` cells - the same cell when both are 8x8, 2x2 cells under a 4x4 map, 1-2 under a 14x14 map."""
    cells = tf.range(grid)[None, :]

    def overlap(index):
        index = tf.cast(index, tf.int32)[:, None]
        return tf.logical_and(cells * feature_size < (index + 1) * grid, (cells + 1) * feature_size > index * grid)

    mask = tf.logical_and(overlap(rows)[:, :, None], overlap(cols)[:, None, :])
    return tf.cast(mask, tf.float32)


def quantize(images):
    """Float images -> the values a PNG round trip gives (uint8 levels in [-1, 1]), like the stored positives: an
    unquantised negative would differ from every positive in a way the model could learn instead of attributes."""
    images = tf.clip_by_value(tf.cast(images, tf.float32), -1.0, 1.0)
    return tf.round((images + 1.0) * 127.5) / 127.5 - 1.0


def changed_fraction(edited, original, pixel_change: float):
    """[B]: fraction of pixels whose largest channel difference exceeds `pixel_change` (images in [-1, 1])."""
    moved = tf.reduce_max(tf.abs(edited - original), axis=-1) > pixel_change
    return tf.reduce_mean(tf.cast(moved, tf.float32), axis=[1, 2])


class GanEdits(NegativeSource):
    """Shared machinery of the GAN edits: latents -> h4, salient location, grow-until-changed loop.

    Args:
        generator: the trained `ProgressiveGenerator` (frozen; create or load it in the model's strategy scope).
        edits: the `EditsConfig`.
        seed: seed of the edit randomness.
        step: a scalar integer variable that advances every train step (the optimizer's `iterations`).
        change_test: optional `tfvgs.edits.described_change.DescribedChange`: an edit must also change what the
            segmenter reads under it (`edits.change_test = "segmenter"`), not only move pixels.
    """

    def __init__(self, generator, edits, seed: int, step, change_test=None):
        self.generator, self.edits, self.seed, self.step = generator, edits, int(seed), step
        self.change_test = change_test
        self.latent_dim, self.resolution = int(generator.latent_dim), int(generator.max_resolution)

    # --- hooks -------------------------------------------------------------------------------------------------
    def num_tries(self) -> int:
        raise NotImplementedError

    def ablation(self, attempt, rows, context) -> tf.Tensor:
        """Unit mask [B, 1, 1, C] float of attempt `attempt` (0-based, a scalar tensor); `rows` as `global_rows`."""
        raise NotImplementedError

    def prepare(self, embedding, rows) -> Dict[str, tf.Tensor]:
        """Per-pair state for `ablation` (e.g. the drawn cluster) from the salient embedding [B, D]."""
        return {}

    # --- the edit ------------------------------------------------------------------------------------------------
    def row_uniforms(self, rows, tail, stream: int, attempt=0):
        """Uniforms [local rows, *tail] for this replica's rows of the global batch; `rows` from `global_rows`."""
        offset, global_size, local_size = rows
        return losses.anchor_uniforms(self.seed, self.step, global_size, offset, local_size,
                                      stream * 1024 + tf.cast(attempt, tf.int64), tail)

    @staticmethod
    def global_rows(local_size):
        """(offset of this replica's rows in the global batch, global batch size, local size)."""
        return (*losses.global_rows(local_size), tf.cast(local_size, tf.int32))

    def latents(self, batch):
        latent = batch.get("latent") if hasattr(batch, "get") else None
        if latent is None:
            raise ValueError("GAN edits need the latent of every pair: train on Audio CLEVRGAN records "
                             f"(beam_pipelines.audio_clevrgan). Received batch keys: {sorted(batch)}")
        tf.debugging.assert_equal(
            tf.shape(latent)[1], self.latent_dim,
            message=f"GAN edits need pairs drawn by this generator (latent size {self.latent_dim}); these records "
                    "carry latents of another size, or none (rendered scenes): use Audio CLEVRGAN data")
        return tf.ensure_shape(tf.cast(latent, tf.float32), [None, self.latent_dim])

    def edit(self, batch, image_feats, audio_feats, audio_frames) -> Dict[str, tf.Tensor]:
        """Edits every pair of `batch`: {"images" [B,S,S,3], "valid" [B] bool, "location" [B,8,8] float,
        "attempts" [B] int32 (tries used; 0 when invalid), plus the `prepare` state (e.g. "cluster")}."""
        original = tf.convert_to_tensor(batch["image"], tf.float32)
        if original.shape[1] is not None and original.shape[1] != self.resolution:
            raise ValueError(f"The pairs' images are {original.shape[1]} px but the generator draws "
                             f"{self.resolution} px. Received image shape {tuple(original.shape)}")
        h4 = self.generator.features(self.latents(batch))
        rows, cols, embedding = salient_location(image_feats, audio_feats, audio_frames)
        location = location_mask(rows, cols, int(image_feats.shape[1]))
        batch_size = tf.shape(original)[0]
        rows = self.global_rows(batch_size)
        context = self.prepare(embedding, rows)
        pixel_change, min_fraction = float(self.edits.pixel_change), float(self.edits.min_changed_fraction)
        reading = self.change_test.read(original) if self.change_test is not None else None

        def body(attempt, done, images, attempts):
            ablation = location[..., None] * self.ablation(attempt, rows, context)           # [B, 8, 8, C]
            edited = quantize(self.generator.render_ablated(h4, ablation))
            changed = changed_fraction(edited, original, pixel_change) >= min_fraction
            if reading is not None:
                changed = tf.logical_and(changed, self.change_test.changed(edited, reading, location))
            take = tf.logical_and(changed, tf.logical_not(done))
            images = tf.where(take[:, None, None, None], edited, images)
            attempts = tf.where(take, attempt + 1, attempts)
            return attempt + 1, tf.logical_or(done, changed), images, attempts

        def more(attempt, done, images, attempts):
            return tf.logical_and(attempt < self.num_tries(), tf.logical_not(tf.reduce_all(done)))

        _, valid, images, attempts = tf.while_loop(
            more, body, (tf.constant(0), tf.zeros([batch_size], tf.bool), original,
                         tf.zeros([batch_size], tf.int32)))
        public = {k: v for k, v in context.items() if not k.startswith("_")}
        return {"images": images, "valid": valid, "location": location, "attempts": attempts, **public}

    def negatives(self, batch, image_feats, audio_feats, audio_frames):
        result = self.edit(batch, image_feats, audio_feats, audio_frames)
        return result["images"], result["valid"]


class RandomEdits(GanEdits):
    """Paper 000 sec. 5.4: each h4 unit at the salient location ablated with probability p, p raised along
    `edits.ablation_probabilities` until the image changes."""

    def __init__(self, generator, edits, seed: int, step, change_test=None):
        super().__init__(generator, edits, seed, step, change_test)
        probabilities = [float(p) for p in edits.ablation_probabilities]
        if not probabilities or any(not 0.0 < p <= 1.0 for p in probabilities):
            raise ValueError("`edits.ablation_probabilities` must be a non-empty list of values in (0, 1]. "
                             f"Received: {edits.ablation_probabilities}")
        self.probabilities = tf.constant(probabilities, tf.float32)
        self.units = int(generator.h4_channels)

    def num_tries(self) -> int:
        return int(self.probabilities.shape[0])

    def prepare(self, embedding, rows):
        # one uniform per (pair, unit) for all tries: raising p only adds units, so each try ablates a superset of
        # the last ("p is increased until the edited image differs", sec. 5.4)
        return {"_unit_uniform": self.row_uniforms(rows, [self.units], stream=0)}

    def ablation(self, attempt, rows, context):
        return tf.cast(context["_unit_uniform"] < self.probabilities[attempt], tf.float32)[:, None, None, :]


class TargetedEdits(GanEdits):
    """Paper 000 sec. 5.6: a concept cluster w_k drawn with probability proportional to its similarity with the
    salient embedding w_i, and that cluster's top-ranked h4 units ablated at the salient location, their number
    growing along `edits.targeted_unit_counts` until the image changes.

    Args (besides `GanEdits`'):
        clusters: per cluster, the embedding units in it (`tfvgs.edits.concept_clusters`).
        unit_rankings: per cluster, every h4 unit, best first (`tfvgs.edits.unit_ranking`).
    """

    def __init__(self, generator, edits, seed: int, step, clusters: Sequence[np.ndarray],
                 unit_rankings: Sequence[np.ndarray], change_test=None):
        super().__init__(generator, edits, seed, step, change_test)
        if not clusters or len(clusters) != len(unit_rankings):
            raise ValueError("`clusters` and `unit_rankings` must be non-empty and of equal length. Received: "
                             f"{len(clusters)} clusters, {len(unit_rankings)} rankings")
        units = int(generator.h4_channels)
        ranks = np.zeros([len(unit_rankings), units], np.int32)
        for k, order in enumerate(unit_rankings):
            order = np.asarray(order, np.int64)
            if sorted(order.tolist()) != list(range(units)):
                raise ValueError(f"unit ranking {k} must order all {units} h4 units. Received {len(order)} entries")
            ranks[k, order] = np.arange(units)                  # rank of each unit in cluster k's order
        self.unit_rank = tf.constant(ranks)
        dim = max(int(np.max(c)) for c in clusters if len(c)) + 1
        membership = np.zeros([len(clusters), dim], np.float32)
        for k, members in enumerate(clusters):
            if len(members) == 0:
                raise ValueError(f"cluster {k} has no units")
            membership[k, np.asarray(members, np.int64)] = 1.0 / len(members)
        self.membership = tf.constant(membership)
        counts = sorted({min(int(n), units) for n in edits.targeted_unit_counts if int(n) > 0})
        if not counts:
            raise ValueError(f"`edits.targeted_unit_counts` must hold positive counts. Received: "
                             f"{edits.targeted_unit_counts}")
        self.counts = tf.constant(counts, tf.int32)

    def num_tries(self) -> int:
        return int(self.counts.shape[0])

    def prepare(self, embedding, rows):
        embedding = tf.cast(embedding, tf.float32)
        dim = self.membership.shape[1]
        scores = tf.matmul(embedding[:, :dim], self.membership, transpose_b=True)          # [B, K] cluster means
        weights = tf.nn.relu(scores)
        weights = tf.where(tf.reduce_sum(weights, -1, keepdims=True) > 0, weights, tf.ones_like(weights))
        # P(cluster k) proportional to weight k, by inverse CDF on one uniform per global row
        cumulative = tf.math.cumsum(weights / tf.reduce_sum(weights, -1, keepdims=True), axis=-1)
        uniform = self.row_uniforms(rows, [1], stream=1)                                     # [B, 1]
        last = int(self.membership.shape[0]) - 1
        return {"cluster": tf.minimum(tf.reduce_sum(tf.cast(cumulative <= uniform, tf.int32), axis=-1), last)}

    def ablation(self, attempt, rows, context):
        rank = tf.gather(self.unit_rank, context["cluster"])                                # [B, C]
        return tf.cast(rank < self.counts[attempt], tf.float32)[:, None, None, :]


class RendererEdits(NegativeSource):
    """The upper bound of paper 000 sec. 6.5: the renderer's single-attribute edit of the pair's scene, read from
    the renderer-edit training set (`beam_pipelines.transfer_test_set --split train`, key "edited")."""

    def negatives(self, batch, image_feats, audio_feats, audio_frames):
        if "edited" not in batch:
            raise ValueError("Renderer edits need the 'edited' image of every pair (records of "
                             f"beam_pipelines.transfer_test_set). Received batch keys: {sorted(batch)}")
        edited = tf.convert_to_tensor(batch["edited"], tf.float32)
        return edited, tf.ones([tf.shape(edited)[0]], tf.bool)
