"""The edited-negative sources (tfvgs/edits/negatives.py) on an untrained tiny generator: where they edit, that they
grow the ablation until the image changes, that they are seeded, and that the edit reaches the loss gradient."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvgs import gan_io
from tfvgs.config import get_config
from tfvgs.edits import negatives
from tfvgs.gan import ProgressiveGenerator

CONFIG = get_config("tiny")


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(0)
    g = CONFIG.gan
    return ProgressiveGenerator(latent_dim=g.latent_dim, max_resolution=CONFIG.world.image_size,
                                fmap_base=g.fmap_base, fmap_max=g.fmap_max)


def gan_batch(generator, count=6):
    latents = gan_io.latents_for_seeds(range(count), generator.latent_dim)
    return {"image": tf.clip_by_value(generator(latents), -1.0, 1.0), "latent": tf.constant(latents)}


def planted_features(rows, cols, size=4, dim=8, frames=5):
    """Image features with one strong cell per pair at (row, col) matching the caption's frame 0."""
    batch = len(rows)
    image = np.zeros([batch, size, size, dim], np.float32)
    audio = np.zeros([batch, frames, dim], np.float32)
    for b, (r, c) in enumerate(zip(rows, cols)):
        image[b, r, c, b % dim] = 5.0
        audio[b, 0, b % dim] = 1.0
    return tf.constant(image), tf.constant(audio), tf.constant([frames] * batch)


def test_salient_location_is_the_matchmap_argmax_over_valid_frames_only():
    image, audio, frames = planted_features([0, 3, 1], [2, 1, 3])
    rows, cols, embedding = negatives.salient_location(image, audio, frames)
    assert rows.numpy().tolist() == [0, 3, 1] and cols.numpy().tolist() == [2, 1, 3]
    np.testing.assert_array_equal(embedding.numpy(), image.numpy()[[0, 1, 2], [0, 3, 1], [2, 1, 3]])
    # a padded frame that matches another cell far better is ignored
    audio = audio.numpy()
    audio[0, 4] = 0.0
    image = image.numpy()
    image[0, 3, 3, 1] = 100.0
    audio[0, 4, 1] = 1.0
    rows, cols, _ = negatives.salient_location(tf.constant(image), tf.constant(audio), tf.constant([4, 5, 5]))
    assert (rows.numpy()[0], cols.numpy()[0]) == (0, 2)


@pytest.mark.parametrize("feature_size, row, expected_rows", [(8, 5, [5]), (4, 1, [2, 3]), (14, 0, [0]),
                                                              (14, 7, [4]), (14, 3, [1, 2])])
def test_location_mask_covers_the_h4_cells_under_the_feature_cell(feature_size, row, expected_rows):
    mask = negatives.location_mask(tf.constant([row]), tf.constant([0]), feature_size).numpy()[0]
    assert np.nonzero(mask.any(axis=1))[0].tolist() == expected_rows
    assert mask.shape == (8, 8) and mask[:, 0].sum() == len(expected_rows)


def test_random_edit_changes_the_image_mostly_near_the_salient_location(generator):
    batch = gan_batch(generator)
    rows, cols = [0, 3, 1, 2, 0, 3], [0, 3, 2, 1, 3, 0]
    image, audio, frames = planted_features(rows, cols)
    source = negatives.RandomEdits(generator, CONFIG.edits, seed=0, step=tf.Variable(0, dtype=tf.int64))
    out = source.edit(batch, image, audio, frames)
    assert out["images"].shape == batch["image"].shape and out["valid"].numpy().all()
    moved = np.abs(out["images"].numpy() - batch["image"].numpy()).max(axis=-1)     # [B, 32, 32]
    for b, (r, c) in enumerate(zip(rows, cols)):
        assert (moved[b] > CONFIG.edits.pixel_change).mean() >= CONFIG.edits.min_changed_fraction
        near = np.zeros([32, 32], bool)          # the 8x8-pixel feature cell and a margin of one cell around it
        near[max(0, 8 * r - 8):8 * r + 16, max(0, 8 * c - 8):8 * c + 16] = True
        assert moved[b][near].sum() > 0.9 * moved[b].sum(), (b, moved[b][near].sum(), moved[b].sum())


def test_random_edits_are_seeded_by_step_and_raise_p_until_the_image_changes(generator):
    batch = gan_batch(generator)
    image, audio, frames = planted_features([1] * 6, [1] * 6)
    step = tf.Variable(3, dtype=tf.int64)
    source = negatives.RandomEdits(generator, CONFIG.edits, seed=0, step=step)
    first = source.edit(batch, image, audio, frames)["images"].numpy()
    np.testing.assert_array_equal(first, source.edit(batch, image, audio, frames)["images"].numpy())
    step.assign(4)
    assert not np.array_equal(first, source.edit(batch, image, audio, frames)["images"].numpy())
    # a threshold just above what every first try (p = 0.2) changed: later tries with a higher p are needed
    step.assign(3)
    first_change = negatives.changed_fraction(tf.constant(first), batch["image"], CONFIG.edits.pixel_change)
    strict = dataclasses.replace(CONFIG.edits, min_changed_fraction=float(np.max(first_change)) + 1e-4)
    out = negatives.RandomEdits(generator, strict, seed=0, step=step).edit(batch, image, audio, frames)
    assert (out["attempts"].numpy() != 1).all() and out["attempts"].numpy().max() > 1
    unreachable = dataclasses.replace(CONFIG.edits, min_changed_fraction=0.9)
    out = negatives.RandomEdits(generator, unreachable, seed=0, step=step).edit(batch, image, audio, frames)
    assert not out["valid"].numpy().any() and (out["attempts"].numpy() == 0).all()
    np.testing.assert_array_equal(out["images"].numpy(), batch["image"].numpy())   # the original, as documented


def test_targeted_edit_ablates_the_top_ranked_units_of_the_drawn_cluster(generator):
    batch = gan_batch(generator, count=4)
    image, audio, frames = planted_features([2] * 4, [2] * 4)
    units = generator.h4_channels
    rankings = [np.arange(units), np.arange(units)[::-1]]
    # embedding units 0-3 form cluster 0 and 4-7 cluster 1; pair b's salient embedding is unit b % 8 -> cluster b // 4
    source = negatives.TargetedEdits(generator, CONFIG.edits, seed=0, step=tf.Variable(0, dtype=tf.int64),
                                     clusters=[np.arange(4), np.arange(4, 8)], unit_rankings=rankings)
    out = source.edit(batch, image, audio, frames)
    assert out["cluster"].numpy().tolist() == [0, 0, 0, 0]
    count = int(source.counts.numpy()[out["attempts"].numpy()[0] - 1])
    h4 = generator.features(batch["latent"])
    ablation = np.zeros([1, 8, 8, units], np.float32)
    ablation[0, 4:6, 4:6, :count] = 1.0          # feature cell (2, 2) of 4x4 = h4 cells 4-5; cluster 0's first units
    expected = negatives.quantize(generator.render(h4[:1] * (1.0 - ablation)))
    np.testing.assert_allclose(out["images"].numpy()[0], expected.numpy()[0], atol=1e-5)


def test_targeted_edits_reject_inconsistent_clusters(generator):
    step = tf.Variable(0, dtype=tf.int64)
    with pytest.raises(ValueError, match="order all"):
        negatives.TargetedEdits(generator, CONFIG.edits, 0, step, clusters=[[0]], unit_rankings=[[0, 1]])
    with pytest.raises(ValueError, match="equal length"):
        negatives.TargetedEdits(generator, CONFIG.edits, 0, step, clusters=[[0]], unit_rankings=[])


def test_gan_edits_need_latents_of_the_generator(generator):
    source = negatives.RandomEdits(generator, CONFIG.edits, seed=0, step=tf.Variable(0, dtype=tf.int64))
    image, audio, frames = planted_features([0], [0])
    with pytest.raises(ValueError, match="latent"):
        source.edit({"image": tf.zeros([1, 32, 32, 3])}, image, audio, frames)
    with pytest.raises(tf.errors.InvalidArgumentError, match="latent size"):
        source.edit({"image": tf.zeros([1, 32, 32, 3]), "latent": tf.zeros([1, 0])}, image, audio, frames)


def test_the_edited_negative_enters_the_loss_gradient(generator):
    from tfvgs.stages.davenet import build_dual_encoder
    keras.utils.set_random_seed(1)
    model = build_dual_encoder(CONFIG, loss="hardest")
    batch = gan_batch(generator, count=4)
    batch.update({"logmel": tf.random.normal([4, CONFIG.features.max_frames, CONFIG.features.num_mel_bins]),
                  "nframes": tf.constant([300, 400, 200, 512])})

    def gradients(source):
        model.negative_source = source
        with tf.GradientTape() as tape:
            loss, _, stats = model.training_loss(batch, tf.constant(0, tf.int64), tape)
        return [g.numpy() for g in tape.gradient(loss, model.trainable_weights) if g is not None], stats

    plain, _ = gradients(None)
    used = 0
    for seed in range(6):   # whether an edit is harder than the in-batch impostor depends on the draw
        edited, stats = gradients(negatives.RandomEdits(generator, CONFIG.edits, seed=seed,
                                                        step=tf.Variable(0, dtype=tf.int64)))
        assert float(stats["edit_valid_fraction"]) > 0
        differs = any(not np.allclose(a, b) for a, b in zip(plain, edited))
        # "hardest of both": the gradient changes exactly when some edit is harder than the in-batch impostor
        assert differs == (float(stats["edit_harder_fraction"]) > 0), (seed, stats)
        used += int(differs)
    assert used > 0, "no draw made an edit harder than the in-batch impostors: the comparison was vacuous"
