"""The segmenter change test of edited negatives (tfvgs/edits/described_change.py): what counts as read differently,
where, and that the GAN edits grow the ablation until it holds or drop the pair."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfvgs.config import get_config
from tfvgs.edits import negatives
from tfvgs.edits.described_change import DescribedChange

SIZE = 32


def colour_segmenter(images, training=False):
    """A stand-in segmenter: foreground where the image is not black, colour = the brightest RGB channel, every
    other family one constant class."""
    images = tf.convert_to_tensor(images, tf.float32)
    foreground = tf.where(tf.reduce_max(images, -1, keepdims=True) > -0.5, 5.0, -5.0)
    constant = tf.concat([tf.ones_like(foreground), tf.zeros_like(foreground)], -1)
    return {"foreground": foreground, "color": images * 10.0, "shape": constant, "material": constant,
            "size": constant}


def scene(*objects):
    """A black 32-px image with coloured squares: (row0, col0, side, rgb channel)."""
    image = -np.ones([SIZE, SIZE, 3], np.float32)
    for row, col, side, channel in objects:
        image[row:row + side, col:col + side, :] = -0.2
        image[row:row + side, col:col + side, channel] = 0.9
    return image


def cell_location(row, col, grid=8):
    location = np.zeros([1, grid, grid], np.float32)
    location[0, row, col] = 1.0
    return tf.constant(location)


def changed(test, original, edited, location):
    reading = test.read(original[None])
    return bool(test.changed(tf.constant(edited[None]), reading, location).numpy()[0])


TEST = DescribedChange(colour_segmenter, min_object_pixels=4)
RED_OBJECT = scene((8, 8, 6, 0))            # 36 pixels under h4 cell (2, 2) (pixels 8-11) and its margin


def test_the_same_image_is_not_a_change():
    assert not changed(TEST, RED_OBJECT, RED_OBJECT, cell_location(2, 2))


def test_recolouring_most_of_the_object_under_the_edit_is_a_change_and_a_few_pixels_are_not():
    assert changed(TEST, RED_OBJECT, scene((8, 8, 6, 1)), cell_location(2, 2))
    few = RED_OBJECT.copy()
    few[8:10, 8:13, 0], few[8:10, 8:13, 1] = -0.2, 0.9         # 10 of 36 object pixels turn green
    assert not changed(TEST, RED_OBJECT, few, cell_location(2, 2))
    half = RED_OBJECT.copy()
    half[8:11, 8:14, 0], half[8:11, 8:14, 1] = -0.2, 0.9       # 18 of 36: the majority threshold itself
    assert changed(TEST, RED_OBJECT, half, cell_location(2, 2))


def test_a_change_away_from_the_edit_does_not_count():
    original = scene((8, 8, 6, 0), (22, 22, 6, 2))
    elsewhere = scene((8, 8, 6, 0), (22, 22, 6, 1))            # the far object changed colour
    assert not changed(TEST, original, elsewhere, cell_location(2, 2))
    assert changed(TEST, original, elsewhere, cell_location(6, 6))


def test_the_margin_reaches_one_h4_cell_around_the_edit():
    original = scene((4, 4, 4, 0))                              # pixels 4-7: h4 cell (1, 1) only
    recoloured = scene((4, 4, 4, 2))
    assert changed(TEST, original, recoloured, cell_location(2, 2))
    assert not changed(DescribedChange(colour_segmenter, 4, margin_cells=0), original, recoloured, cell_location(2, 2))


def test_an_object_vanishing_or_appearing_counts_when_it_is_object_sized():
    empty = scene()
    assert changed(TEST, RED_OBJECT, empty, cell_location(2, 2))            # the object vanished
    assert changed(TEST, empty, scene((9, 9, 3, 1)), cell_location(2, 2))    # 9 pixels appeared
    assert not changed(TEST, empty, scene((9, 9, 1, 1)), cell_location(2, 2))   # 1 pixel: below min_object_pixels


def test_bad_arguments_are_named():
    for kwargs in ({"majority": 0.0}, {"margin_cells": -1}, {"min_object_pixels": 0}, {"foreground_threshold": 1.0}):
        with pytest.raises(ValueError, match="Received"):
            DescribedChange(colour_segmenter, **{"min_object_pixels": 4, **kwargs})
    with pytest.raises(ValueError, match="Missing"):
        DescribedChange(lambda images, training=False: {"foreground": images[..., :1]}, 4).read(RED_OBJECT[None])


class FixedVerdict:
    """A change test that answers the same for every edit."""

    def __init__(self, verdict):
        self.verdict = verdict

    def read(self, images):
        return {}

    def changed(self, edited, reading, location):
        return tf.fill([tf.shape(edited)[0]], self.verdict)


@pytest.fixture(scope="module")
def edit_inputs():
    import keras

    from tfvgs import gan_io
    from tfvgs.gan import ProgressiveGenerator
    from tests.test_edit_negatives import planted_features
    config = get_config("tiny")
    keras.utils.set_random_seed(0)
    generator = ProgressiveGenerator(latent_dim=config.gan.latent_dim, max_resolution=config.world.image_size,
                                     fmap_base=config.gan.fmap_base, fmap_max=config.gan.fmap_max)
    latents = gan_io.latents_for_seeds(range(6), generator.latent_dim)
    batch = {"image": negatives.quantize(generator(latents)), "latent": tf.constant(latents)}
    return config, generator, batch, planted_features([0, 3, 1, 2, 0, 3], [0, 3, 2, 1, 3, 0])


def test_gan_edits_drop_every_pair_the_change_test_rejects_and_keep_pixel_edits_it_accepts(edit_inputs):
    config, generator, batch, features = edit_inputs
    step = tf.Variable(0, dtype=tf.int64)
    pixels_only = negatives.RandomEdits(generator, config.edits, 0, step).edit(batch, *features)
    accepted = negatives.RandomEdits(generator, config.edits, 0, step, FixedVerdict(True)).edit(batch, *features)
    np.testing.assert_array_equal(accepted["images"].numpy(), pixels_only["images"].numpy())
    np.testing.assert_array_equal(accepted["attempts"].numpy(), pixels_only["attempts"].numpy())
    rejected = negatives.RandomEdits(generator, config.edits, 0, step, FixedVerdict(False)).edit(batch, *features)
    assert not rejected["valid"].numpy().any() and (rejected["attempts"].numpy() == 0).all()
    np.testing.assert_array_equal(rejected["images"].numpy(), batch["image"].numpy())


def test_gan_edits_with_a_real_segmenter_run_in_a_traced_step_and_every_kept_edit_passes_the_test(edit_inputs):
    from tfvgs.models.attribute_segmenter import AttributeSegmenter
    config, generator, batch, features = edit_inputs
    test = DescribedChange(AttributeSegmenter(width=4, depth=2, seed=1), min_object_pixels=2)
    source = negatives.RandomEdits(generator, config.edits, 0, tf.Variable(0, dtype=tf.int64), test)
    out = tf.function(source.edit)(batch, *features)
    valid = out["valid"].numpy()
    verdict = test.changed(out["images"], test.read(batch["image"]), out["location"]).numpy()
    assert (verdict[valid]).all()          # what the source kept, the test accepts when asked again


def test_the_stage_reads_edits_with_the_workdirs_segmenter_or_says_what_is_missing(tiny_demo, tmp_path):
    from tfvgs.config import apply_overrides
    from tfvgs.stages.edits import RandomEditsStage
    config = apply_overrides(get_config("tiny"), ["edits.change_test=segmenter"])
    pairs = os.path.join(tiny_demo["workdir"], "data", "pairs")
    test = RandomEditsStage(config, tiny_demo["workdir"], pairs).change_test()
    assert isinstance(test, DescribedChange) and not test.segmenter.trainable
    assert RandomEditsStage(get_config("tiny"), tiny_demo["workdir"], pairs).change_test() is None
    shutil.copytree(os.path.join(tiny_demo["workdir"], "gan"), tmp_path / "gan")
    with pytest.raises(FileNotFoundError, match="segmenter"):
        RandomEditsStage(config, str(tmp_path), pairs).change_test()
    wrong = apply_overrides(get_config("tiny"), ["edits.change_test=caption"])
    with pytest.raises(ValueError, match="Received: 'caption'"):
        RandomEditsStage(wrong, tiny_demo["workdir"], pairs).change_test()
