"""Tests of the progressive GAN (tfvgs.gan) at tiny sizes: latent 16, max resolution 32, small feature maps, batch 4."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvgs.gan import (EqualizedConv2D, EqualizedDense, GrowthSchedule, MinibatchStddev, PixelNorm,
                       ProgressiveDiscriminator, ProgressiveGAN, ProgressiveGenerator)

LATENT = 16
MAX_RES = 32
FMAPS = dict(fmap_base=128, fmap_max=32)
BATCH = 4


def make_generator(seed=0, **overrides):
    keras.utils.set_random_seed(seed)
    return ProgressiveGenerator(**{"latent_dim": LATENT, "max_resolution": MAX_RES, **FMAPS, **overrides})


def make_discriminator(seed=1, **overrides):
    keras.utils.set_random_seed(seed)
    return ProgressiveDiscriminator(**{"max_resolution": MAX_RES, **FMAPS, **overrides})


def latents(batch=BATCH, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, LATENT)).astype("float32")


def real_images(batch=BATCH, size=MAX_RES, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype("float32")


def upsample(images, factor=2):
    return images.repeat(factor, axis=1).repeat(factor, axis=2)


def box_downsample(images, factor=2):
    b, h, w, c = images.shape
    return images.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


@pytest.fixture(scope="module")
def generator():
    return make_generator()


@pytest.fixture(scope="module")
def discriminator():
    return make_discriminator()


# --- layers --------------------------------------------------------------------------------------------------------

def test_equalized_dense_scales_unit_normal_kernel_at_runtime():
    layer = EqualizedDense(8, gain=2.0)
    x = np.random.default_rng(0).standard_normal((5, 50)).astype("float32")
    layer(x)
    layer.bias.assign(np.arange(8, dtype="float32"))
    kernel = layer.kernel.numpy()
    assert abs(kernel.std() - 1.0) < 0.15       # stored weights are N(0, 1), not He-initialized
    expected = x @ (kernel * 2.0 / math.sqrt(50)) + np.arange(8)
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_equalized_conv2d_matches_plain_conv_with_he_scaled_kernel():
    layer = EqualizedConv2D(6, kernel_size=3)
    x = np.random.default_rng(0).standard_normal((2, 7, 7, 4)).astype("float32")
    layer(x)
    layer.bias.assign(np.linspace(-1, 1, 6).astype("float32"))
    plain = keras.layers.Conv2D(6, 3, padding="same")
    plain.build(x.shape)
    plain.set_weights([layer.kernel.numpy() * math.sqrt(2.0) / math.sqrt(3 * 3 * 4), layer.bias.numpy()])
    np.testing.assert_allclose(layer(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)


def test_pixel_norm_gives_unit_rms_feature_vectors_per_pixel():
    x = np.random.default_rng(0).standard_normal((2, 3, 3, 8)).astype("float32") * 7.0
    y = PixelNorm()(x).numpy()
    np.testing.assert_allclose(np.sqrt((y ** 2).mean(axis=-1)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(y / np.linalg.norm(y, axis=-1, keepdims=True),
                               x / np.linalg.norm(x, axis=-1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_minibatch_stddev_appends_strided_group_statistic():
    x = np.random.default_rng(0).standard_normal((8, 3, 3, 5)).astype("float32")
    y = MinibatchStddev(group_size=4)(x).numpy()
    assert y.shape == (8, 3, 3, 6)
    np.testing.assert_array_equal(y[..., :5], x)
    groups = x.reshape(4, 2, 3, 3, 5)   # PGGAN grouping: sample i is in group i % 2
    expected = np.sqrt(groups.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))
    for i in range(8):
        np.testing.assert_allclose(y[i, ..., 5], expected[i % 2], rtol=1e-5)


def test_minibatch_stddev_rejects_batch_not_divisible_by_group():
    with pytest.raises(ValueError, match="group_size"):
        MinibatchStddev(group_size=4)(np.zeros((6, 2, 2, 3), "float32"))


@pytest.mark.parametrize("layer", [EqualizedDense(7, gain=1.0, use_bias=False), EqualizedConv2D(5, 1, gain=0.5),
                                   PixelNorm(epsilon=1e-6), MinibatchStddev(group_size=2, epsilon=1e-4)])
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config


# --- generator and discriminator -----------------------------------------------------------------------------------

def test_channel_counts_follow_pggan_fmap_rule():
    paper = ProgressiveGenerator(latent_dim=100, max_resolution=16)   # fmap_base 8192, fmap_max 512
    assert paper.h4_channels == 512                                    # paper 000: h4 in R^{512 x 8 x 8}
    g = make_generator()
    assert [g.channels_at(level) for level in range(4)] == [32, 32, 16, 8]   # min(128 / 2**(level+1), 32)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_shapes_at_every_level(generator, discriminator, level):
    resolution = 4 * 2 ** level
    images = generator(latents(), level=level)
    assert images.shape == (BATCH, resolution, resolution, 3)
    assert discriminator(images).shape == (BATCH, 1)
    assert generator.upscale_to_max_resolution(images).shape == (BATCH, MAX_RES, MAX_RES, 3)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_generator_fade_in_endpoints_are_exact(generator, level):
    z = latents()
    lower = generator(z, level=level - 1, alpha=1.0).numpy()
    np.testing.assert_array_equal(generator(z, level=level, alpha=0.0).numpy(), upsample(lower))
    new_block = generator.to_rgb_layer(level)(generator.block(_generator_trunk(generator, z, level - 1), level)).numpy()
    np.testing.assert_array_equal(generator(z, level=level, alpha=1.0).numpy(), new_block)
    halfway = generator(z, level=level, alpha=0.25).numpy()
    np.testing.assert_allclose(halfway, 0.75 * upsample(lower) + 0.25 * new_block, rtol=1e-5, atol=1e-5)


def _generator_trunk(generator, z, level):
    x = generator.latent_norm(z)
    for block_level in range(level + 1):
        x = generator.block(x, block_level)
    return x


def test_generator_alpha_defaults_to_its_variable(generator):
    z = latents()
    try:
        generator.alpha.assign(0.3)
        np.testing.assert_array_equal(generator(z, level=2).numpy(), generator(z, level=2, alpha=0.3).numpy())
    finally:
        generator.alpha.assign(1.0)


@pytest.mark.parametrize("level", [1, 3])
def test_discriminator_fade_in_endpoints_are_exact(discriminator, level):
    resolution = 4 * 2 ** level
    images = real_images(size=resolution)
    pooled = keras.layers.AveragePooling2D(2)(images)
    np.testing.assert_array_equal(discriminator(images, alpha=0.0).numpy(), discriminator(pooled, alpha=1.0).numpy())
    np.testing.assert_allclose(pooled.numpy(), box_downsample(images), rtol=1e-6, atol=1e-6)
    assert not np.allclose(discriminator(images, alpha=1.0).numpy(), discriminator(images, alpha=0.0).numpy())


def test_discriminator_rejects_images_of_a_size_it_has_no_level_for(discriminator):
    with pytest.raises(ValueError, match="power of two"):
        discriminator(np.zeros((BATCH, 12, 12, 3), "float32"))
    with pytest.raises(ValueError, match="level"):
        discriminator(np.zeros((BATCH, 8, 8, 3), "float32"), level=2)


def test_generator_rejects_bad_levels_and_latents(generator):
    with pytest.raises(ValueError, match="number"):
        generator.conv_layer(2 * generator.max_level + 3)
    with pytest.raises(ValueError, match="level"):
        generator(latents(), level=4)
    with pytest.raises(ValueError, match="Latents"):
        generator(np.zeros((BATCH, LATENT + 1), "float32"))
    with pytest.raises(ValueError, match="level"):
        generator.render(generator.features(latents()), level=1)   # the 4x4 toRGB is upstream of h4
    with pytest.raises(ValueError, match="h4"):
        generator.render(np.zeros((BATCH, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="max_resolution"):
        ProgressiveGenerator(max_resolution=48)


# --- the h4 API (paper 000 sec. 4.1) --------------------------------------------------------------------------------

def test_features_are_h4_after_conv4_activation_and_pixel_norm(generator):
    z = latents()
    h4 = generator.features(z).numpy()
    assert h4.shape == (BATCH, 8, 8, generator.h4_channels)

    def act_norm(x):
        x = np.where(x > 0, x, 0.2 * x)
        return x / np.sqrt((x ** 2).mean(axis=-1, keepdims=True) + 1e-8)

    x = np.asarray(z) / np.sqrt((np.asarray(z) ** 2).mean(axis=-1, keepdims=True) + 1e-8)
    x = act_norm(generator.conv_layer(1)(x).numpy().reshape(BATCH, 4, 4, -1))     # conv 1: dense to 4x4
    x = act_norm(generator.conv_layer(2)(x).numpy())                              # conv 2 at 4x4
    x = act_norm(generator.conv_layer(3)(upsample(x)).numpy())                    # conv 3 at 8x8
    x = act_norm(generator.conv_layer(4)(x).numpy())                              # conv 4 at 8x8
    np.testing.assert_allclose(h4, x, rtol=1e-4, atol=1e-5)


def test_render_of_features_equals_full_forward_exactly(generator):
    z = latents()
    full = generator(z).numpy()
    np.testing.assert_array_equal(generator.render(generator.features(z)).numpy(), full)
    np.testing.assert_array_equal(generator.generate(z).numpy(), full)
    for level in (2, 3):
        np.testing.assert_array_equal(generator.render(generator.features(z), level=level, alpha=0.4).numpy(),
                                      generator(z, level=level, alpha=0.4).numpy())


def test_h4_api_inside_tf_function_matches_eager(generator):
    z = latents()
    split = tf.function(lambda z: generator.render(generator.features(z)))
    ablated = tf.function(lambda z, mask: generator.generate(z, ablation=mask))
    mask = np.zeros((BATCH, 8, 8, generator.h4_channels), "float32")
    np.testing.assert_array_equal(split(z).numpy(), generator(z).numpy())
    np.testing.assert_array_equal(ablated(z, mask).numpy(), generator(z).numpy())


def test_all_zero_ablation_changes_nothing(generator):
    z = latents()
    for mask in (np.zeros((BATCH, 8, 8, generator.h4_channels), "float32"), np.zeros((1, 1, 1, 1), "float32")):
        np.testing.assert_array_equal(generator.generate(z, ablation=mask).numpy(), generator.generate(z).numpy())


def test_ablation_zeroes_exactly_the_masked_h4_units(generator):
    z = latents()
    captured = {}
    original_render = generator.render

    def spy(h4, **kwargs):
        captured["h4"] = np.asarray(h4)
        return original_render(h4, **kwargs)

    mask = np.zeros((BATCH, 8, 8, generator.h4_channels), "float32")
    mask[0, 2, 3, :5] = 1.0
    mask[2, :, :, 7] = 1.0
    generator.render = spy
    try:
        generator.generate(z, ablation=mask)
    finally:
        del generator.render
    h4 = generator.features(z).numpy()
    np.testing.assert_array_equal(captured["h4"][mask == 1], 0.0)
    np.testing.assert_array_equal(captured["h4"][mask == 0], h4[mask == 0])


@pytest.mark.parametrize("y, x", [(3, 5), (0, 0), (7, 2)])
def test_ablating_one_location_changes_the_image_near_it(generator, y, x):
    z = latents()
    mask = np.zeros((1, 8, 8, 1), "float32")
    mask[0, y, x, 0] = 1.0                    # all units at one h4 location
    energy = ((generator.generate(z, ablation=mask).numpy() - generator.generate(z).numpy()) ** 2).sum(axis=(0, 3))
    assert energy.sum() > 0
    scale = MAX_RES // 8

    def share_within(margin):
        window = np.zeros_like(energy)
        rows = slice(max(0, scale * y - margin), scale * (y + 1) + margin)
        cols = slice(max(0, scale * x - margin), scale * (x + 1) + margin)
        window[rows, cols] = 1
        return (energy * window).sum() / energy.sum()

    # Receptive field of one 8x8 cell at 32 px: 2 convs at 16 px (+-2 px at 32) and 2 convs at 32 px (+-2 px),
    # plus the 16->32 upsampling of the 16 px halo: nothing can change beyond 6 px from the cell's window.
    assert share_within(6) == 1.0
    assert share_within(scale) > 0.5          # most of it within one h4 cell of the location


# --- serialization -------------------------------------------------------------------------------------------------

def test_generator_and_discriminator_config_round_trip(generator, discriminator):
    for model in (generator, discriminator):
        clone = type(model).from_config(model.get_config())
        assert clone.get_config() == model.get_config()
        assert clone.count_params() == model.count_params()
        clone.set_weights(model.get_weights())
    g_clone = ProgressiveGenerator.from_config(generator.get_config())
    g_clone.set_weights(generator.get_weights())
    np.testing.assert_array_equal(g_clone(latents()).numpy(), generator(latents()).numpy())


def test_generator_saves_and_loads_as_keras_file(generator, tmp_path):
    path = str(tmp_path / "generator.keras")
    generator.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, ProgressiveGenerator)
    np.testing.assert_array_equal(loaded.generate(latents()).numpy(), generator.generate(latents()).numpy())


# --- growth schedule -----------------------------------------------------------------------------------------------

def _pggan_reference(images_shown, max_resolution, training_kimg, transition_kimg):
    """TrainingSchedule of the official PGGAN train.py, mapped to (level, alpha)."""
    kimg = images_shown / 1000.0
    phase_dur = training_kimg + transition_kimg
    phase_idx = int(np.floor(kimg / phase_dur)) if phase_dur > 0 else 0
    phase_kimg = kimg - phase_idx * phase_dur
    resolution_log2 = int(np.log2(max_resolution))
    lod = resolution_log2 - 2 - phase_idx
    if transition_kimg > 0:
        lod -= max(phase_kimg - training_kimg, 0.0) / transition_kimg
    lod = max(lod, 0.0)
    level = resolution_log2 - 2 - int(np.floor(lod))
    return level, 1.0 - (lod - np.floor(lod))


def test_schedule_values_match_hand_computation():
    schedule = GrowthSchedule(32, lod_training_kimg=600, lod_transition_kimg=600, minibatch_base=16,
                              minibatch_per_resolution={4: 128, 32: 64})
    # (images shown, level, alpha, minibatch): 600k stable at 4 px, then 600k fade-in of 8 px, 600k stable, ...
    expected = [(0, 0, 1.0, 128), (600_000, 0, 1.0, 128), (900_000, 1, 0.5, 16), (1_200_000, 1, 1.0, 16),
                (1_950_000, 2, 0.25, 16), (3_450_000, 3, 0.75, 64), (3_600_000, 3, 1.0, 64), (10**8, 3, 1.0, 64)]
    for shown, level, alpha, minibatch in expected:
        phase = schedule.phase_at(shown)
        assert (phase.level, phase.resolution, phase.minibatch_size) == (level, 4 * 2 ** level, minibatch), shown
        assert phase.alpha == pytest.approx(alpha), shown
        assert phase.in_transition == (alpha < 1.0)
    assert schedule.transition_start(2) == 1_800_000
    assert schedule.images_until_full_resolution() == 3_600_000


@pytest.mark.parametrize("training, transition", [(600, 600), (800, 200), (30, 0), (0, 50)])
def test_schedule_agrees_with_pggan_training_schedule(training, transition):
    schedule = GrowthSchedule(64, lod_training_kimg=training, lod_transition_kimg=transition)
    for shown in np.linspace(0, 6 * (training + transition) * 1000, 397).astype(int):
        level, alpha = _pggan_reference(shown, 64, training, transition)
        phase = schedule.phase_at(int(shown))
        assert phase.level == level, shown
        assert phase.alpha == pytest.approx(alpha, abs=1e-9), shown


def test_schedule_next_boundary_is_where_level_or_transition_changes():
    schedule = GrowthSchedule(16, lod_training_kimg=0.01, lod_transition_kimg=0.02)   # 10 stable, 20 fading
    assert schedule.next_boundary(0) == 11          # level 0 lasts while images_shown <= 10
    assert schedule.phase_at(11).level == 1 and schedule.phase_at(11).in_transition
    assert schedule.next_boundary(11) == 30          # fade-in of level 1 ends (alpha 1)
    assert schedule.next_boundary(30) == 41
    assert schedule.next_boundary(60) is None        # final level fully faded in


def test_phases_between_cover_the_range_one_phase_each():
    schedule = GrowthSchedule(16, lod_training_kimg=0.01, lod_transition_kimg=0.02)   # boundaries 11, 30, 41, 60
    phases = schedule.phases_between(0, 100)
    assert [(p.level, p.in_transition, n) for p, n in phases] == [
        (0, False, 11), (1, True, 19), (1, False, 11), (2, True, 19), (2, False, 40)]
    assert [(p.level, n) for p, n in schedule.phases_between(35, 50)] == [(1, 6), (2, 9)]
    assert schedule.phases_between(50, 50) == []


def test_gan_stage_eta_counts_every_phase_still_to_come():
    import types
    from tfvgs.stages.gan import GanProgress
    schedule = GrowthSchedule(16, lod_training_kimg=0.01, lod_transition_kimg=0.02, minibatch_base=2,
                              minibatch_per_resolution={4: 4})
    progress = GanProgress.__new__(GanProgress)      # only the measurement state, no stage or writer
    progress.set_model(types.SimpleNamespace(schedule=schedule))
    progress.total_images, progress.phase_rates, progress.last_phase = 100, {}, None
    assert math.isnan(progress.eta_seconds(0))       # nothing measured yet
    # level 0 measured at 0.1 s per step of 4 images: 0.1 s per step per block
    progress.phase_rates[(0, False)] = [40, 1.0]
    progress.last_phase = schedule.phase_at(0)
    # from image 5: 6 more at level 0 (0.025 s each), then 19 + 11 images at level 1 (2 per step, 2 blocks:
    # 0.2 s per step) and 19 + 40 at level 2 (3 blocks: 0.3 s per step)
    expected = 6 * 0.025 + (19 + 11) / 2 * 0.2 + (19 + 40) / 2 * 0.3
    assert progress.eta_seconds(5) == pytest.approx(expected)
    # a phase once measured counts at its own rate
    progress.phase_rates[(1, True)] = [19, 19.0]
    assert progress.eta_seconds(11) == pytest.approx(19 * 1.0 + 11 / 2 * 0.2 + 59 / 2 * 0.3)
    # without a time budget the stage's ETA is the schedule's; with one, whichever ends first
    assert progress.stage_eta_seconds(11) == progress.eta_seconds(11)
    progress.budget_left = lambda: 3.0
    assert progress.stage_eta_seconds(11) == 3.0
    progress.budget_left = lambda: 1e6
    assert progress.stage_eta_seconds(11) == progress.eta_seconds(11)
    progress.budget_left = lambda: -5.0               # spent: the stage stops at the next segment boundary
    assert progress.stage_eta_seconds(11) == 0.0


def test_schedule_rejects_bad_arguments_and_round_trips():
    with pytest.raises(ValueError, match="max_resolution"):
        GrowthSchedule(30)
    with pytest.raises(ValueError, match="base_resolution"):
        GrowthSchedule(16, base_resolution=32)
    with pytest.raises(ValueError, match="images_shown"):
        GrowthSchedule(16).phase_at(-1)
    schedule = GrowthSchedule(32, 10, 20, base_resolution=8, minibatch_base=4, minibatch_per_resolution={"8": 32})
    assert schedule.minibatch_size(8) == 32
    assert GrowthSchedule.from_config(schedule.get_config()).get_config() == schedule.get_config()
    assert schedule.phase_at(0).level == 1           # starts at base_resolution 8


# --- ProgressiveGAN ------------------------------------------------------------------------------------------------

def make_gan(training_images=8, transition_images=8, **kwargs):
    schedule = GrowthSchedule(MAX_RES, lod_training_kimg=training_images / 1000,
                              lod_transition_kimg=transition_images / 1000, minibatch_base=BATCH)
    return ProgressiveGAN(make_generator(), make_discriminator(), schedule, seed=3, **kwargs)


def reals_dataset(size=MAX_RES, batch=BATCH):
    return tf.data.Dataset.from_tensor_slices(real_images(16, size)).repeat().batch(batch, drop_remainder=True)


def weights_of(model):
    return [w.numpy().copy() for w in model.trainable_variables]


def test_train_steps_update_weights_images_shown_and_metrics():
    gan = make_gan(ema_beta=0.5)
    phase = gan.sync_phase()
    assert (phase.level, phase.alpha) == (0, 1.0)
    g_before, d_before = weights_of(gan.generator), weights_of(gan.discriminator)
    ema_before = [w.numpy().copy() for w in gan.generator_ema.weights]
    history = gan.fit(reals_dataset(), steps_per_epoch=2, epochs=1, verbose=0)
    assert int(gan.images_shown.numpy()) == 2 * BATCH
    for name in ("d_loss", "g_loss", "gp", "drift", "wasserstein"):
        assert np.isfinite(history.history[name][-1]), name
    g_after, d_after = weights_of(gan.generator), weights_of(gan.discriminator)
    changed = [not np.array_equal(a, b) for a, b in zip(g_before, g_after)]
    assert any(changed) and any(not np.array_equal(a, b) for a, b in zip(d_before, d_after))
    # Only 4x4 layers run at level 0, so the 8x8 block is untouched and its EMA stays equal to it.
    block_8 = {id(v) for n in (3, 4) for v in gan.generator.conv_layer(n).trainable_variables}
    for variable, was, is_changed in zip(gan.generator.trainable_variables, g_before, changed):
        if id(variable) in block_8:
            assert not is_changed
    # EMA after 2 steps with beta 0.5: ema = 0.5 * g2 + 0.25 * g1 + 0.25 * g0, strictly between old and new.
    for variable, ema, was in zip(gan.generator.weights, gan.generator_ema.weights, ema_before):
        if variable.trainable and not np.array_equal(variable.numpy(), was):
            assert not np.array_equal(ema.numpy(), variable.numpy())
            assert not np.array_equal(ema.numpy(), was)


def test_ema_update_is_exponential_moving_average():
    gan = make_gan(ema_beta=0.9)
    gan.sync_phase()
    before = weights_of(gan.generator)
    gan.train_step(real_images(size=4))
    after = weights_of(gan.generator)
    ema = {id(v): e for v, e in zip(gan.generator.weights, gan.generator_ema.weights)}
    for variable, old, new in zip(gan.generator.trainable_variables, before, after):
        np.testing.assert_allclose(ema[id(variable)].numpy(), 0.1 * new + 0.9 * old, rtol=1e-5, atol=1e-6)


def test_n_critic_steps_use_slices_of_the_real_batch():
    gan = make_gan(n_critic=2)
    gan.sync_phase()
    gan.train_step(real_images(batch=2 * BATCH, size=4))
    assert int(gan.images_shown.numpy()) == 2 * BATCH
    assert int(gan.d_optimizer.iterations.numpy()) == 2 and int(gan.g_optimizer.iterations.numpy()) == 1
    with pytest.raises(ValueError, match="n_critic"):
        gan.train_step(real_images(batch=BATCH + 1, size=4))


@pytest.mark.parametrize("r1_every", [1, 2])   # 2: the lazy penalty's tf.cond inside the traced step
def test_logistic_r1_steps_train_both_networks_with_finite_metrics(r1_every):
    gan = make_gan(loss="logistic_r1", r1_gamma=10.0, r1_every=r1_every)
    gan.sync_phase()
    g_before, d_before = weights_of(gan.generator), weights_of(gan.discriminator)
    history = gan.fit(reals_dataset(), steps_per_epoch=2, epochs=1, verbose=0).history
    for name in ("d_loss", "g_loss", "gp", "wasserstein"):
        assert np.isfinite(history[name][-1]), name
    assert history["drift"][-1] == 0.0 and history["gp"][-1] > 0.0   # no drift term; R1 ran
    assert history["d_loss"][-1] > 0.0   # softplus terms are positive, unlike WGAN scores
    assert any(not np.array_equal(a, b) for a, b in zip(g_before, weights_of(gan.generator)))
    assert any(not np.array_equal(a, b) for a, b in zip(d_before, weights_of(gan.discriminator)))


def test_r1_gamma_changes_the_critic_update():
    def critic_after_one_step(gamma):
        keras.utils.set_random_seed(5)
        gan = make_gan(loss="logistic_r1", r1_gamma=gamma)
        gan.sync_phase()
        gan.train_step(real_images(size=4))
        return weights_of(gan.discriminator)
    plain, penalised = critic_after_one_step(0.0), critic_after_one_step(100.0)
    assert any(not np.allclose(a, b) for a, b in zip(plain, penalised))


def test_r1_penalty_is_the_mean_squared_input_gradient_of_the_critic():
    gan = make_gan(loss="logistic_r1")
    reals = tf.constant(real_images(size=4))
    with tf.GradientTape() as tape:
        tape.watch(reals)
        scores = gan.discriminator(reals, level=0, alpha=1.0)
    grads = tape.gradient(scores, reals).numpy()
    expected = np.mean(np.sum(grads.astype("float64") ** 2, axis=(1, 2, 3)))
    np.testing.assert_allclose(gan._r1_penalty(reals, 0, 1.0).numpy(), expected, rtol=1e-4)


def test_lazy_r1_regularises_every_r1_every_critic_steps():
    gan = make_gan(loss="logistic_r1", r1_every=3)
    gan.sync_phase()
    reals = gan.prepare_reals(real_images(size=4), level=0, alpha=1.0)
    weights = []
    for _ in range(4):
        _, penalty, weight, _, _ = gan._critic_step(reals, 0, tf.constant(1.0))
        weights.append(float(weight))
        assert (float(penalty) > 0.0) == (float(weight) == 1.0)
    assert weights == [1.0, 0.0, 0.0, 1.0]   # Adam's step counter 0 and 3


@pytest.mark.parametrize("kwargs,message", [({"loss": "hinge"}, "loss"), ({"r1_every": 0}, "r1_every"),
                                            ({"r1_gamma": -1.0}, "r1_gamma")])
def test_gan_rejects_bad_loss_settings(kwargs, message):
    with pytest.raises(ValueError, match=f"{message}.*Received"):
        make_gan(**kwargs)


def test_prepare_reals_downscales_and_fades_like_pggan():
    gan = make_gan()
    images = real_images(size=MAX_RES)
    at_8 = gan.prepare_reals(images, level=1, alpha=1.0).numpy()
    np.testing.assert_allclose(at_8, box_downsample(images, 4), rtol=1e-5, atol=1e-6)
    faded = gan.prepare_reals(images, level=1, alpha=0.25).numpy()
    coarse = upsample(box_downsample(at_8))
    np.testing.assert_allclose(faded, 0.75 * coarse + 0.25 * at_8, rtol=1e-5, atol=1e-6)
    as_uint8 = np.round((images + 1) * 127.5).astype("uint8")
    np.testing.assert_allclose(gan.prepare_reals(as_uint8, level=3, alpha=1.0).numpy(), as_uint8 / 127.5 - 1,
                               atol=1e-6)
    with pytest.raises(ValueError, match="Real images"):
        gan.prepare_reals(images[:, :, :, :2], level=1, alpha=1.0)
    with pytest.raises(ValueError, match="Real images"):
        gan.prepare_reals(real_images(size=4), level=1, alpha=1.0)


def test_growing_through_phases_with_fit_and_optimizer_reset():
    gan = make_gan(training_images=8, transition_images=8)
    seen = []
    for _ in range(3):
        phase = gan.sync_phase()
        steps = gan.steps_until_next_phase()
        seen.append((phase.level, phase.in_transition, steps))
        gan.fit(reals_dataset(), steps_per_epoch=steps, epochs=1, verbose=0)
        if phase.in_transition:
            # alpha moves inside the graph from images_shown: 8 images into the 8-image fade-in of level 1
            assert float(gan.generator.alpha.numpy()) == pytest.approx(0.5)
    # level 0 runs while images_shown <= 8 (3 steps of 4 -> 12), the 8x8 fade-in ends at 16, and level 1 stays
    # for steps starting at 16, 20 and 24 (the 16x16 fade-in starts after 24)
    assert seen == [(0, False, 3), (1, True, 1), (1, False, 3)]
    assert int(gan.images_shown.numpy()) == 28
    assert gan.sync_phase().level == 2 and gan.level == 2
    assert int(gan.g_optimizer.iterations.numpy()) == 0   # Adam state reset as the 16x16 fade-in starts
    assert gan(latents()).shape == (BATCH, 16, 16, 3)


def test_checkpoint_restores_images_shown_and_thus_phase_and_alpha(tmp_path):
    gan = make_gan(training_images=8, transition_images=16)
    gan.sync_phase()
    gan.fit(reals_dataset(), steps_per_epoch=gan.steps_until_next_phase(), epochs=1, verbose=0)
    gan.sync_phase()
    gan.fit(reals_dataset(), steps_per_epoch=1, epochs=1, verbose=0)
    phase = gan.sync_phase()
    assert phase.in_transition and 0 < phase.alpha < 1
    path = tf.train.Checkpoint(gan=gan).save(str(tmp_path / "ckpt"))

    restored = make_gan(training_images=8, transition_images=16)
    assert int(restored.images_shown.numpy()) == 0
    tf.train.Checkpoint(gan=restored).restore(path).assert_existing_objects_matched()
    assert int(restored.images_shown.numpy()) == int(gan.images_shown.numpy())
    restored_phase = restored.sync_phase()
    assert restored_phase == phase
    for net in ("generator", "discriminator", "generator_ema"):
        assert float(getattr(restored, net).alpha.numpy()) == pytest.approx(phase.alpha)
        for a, b in zip(getattr(restored, net).weights, getattr(gan, net).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(restored.d_optimizer.iterations.numpy()) == int(gan.d_optimizer.iterations.numpy())
    np.testing.assert_array_equal(restored.rng_state.numpy(), gan.rng_state.numpy())
    np.testing.assert_array_equal(restored(latents()).numpy(), gan(latents()).numpy())


def test_gan_config_round_trip():
    gan = make_gan(n_critic=2, ema_beta=None, gp_weight=5.0, loss="logistic_r1", r1_gamma=2.0, r1_every=4)
    clone = ProgressiveGAN.from_config(gan.get_config())
    assert clone.get_config() == gan.get_config()
    assert (clone.loss_name, clone.r1_gamma, clone.r1_every) == ("logistic_r1", 2.0, 4)
    assert clone.generator_ema is None and clone.n_critic == 2
    assert clone.schedule.get_config() == gan.schedule.get_config()


def test_gan_rejects_mismatched_networks():
    with pytest.raises(ValueError, match="max_resolution"):
        ProgressiveGAN(make_generator(), make_discriminator(max_resolution=16), GrowthSchedule(MAX_RES))
    with pytest.raises(ValueError, match="n_critic"):
        ProgressiveGAN(make_generator(), make_discriminator(), GrowthSchedule(MAX_RES), n_critic=0)


def test_to_uint8_clips_linear_outputs():
    out = ProgressiveGenerator.to_uint8(np.array([-1.5, -1.0, 0.0, 1.0, 2.0], "float32")).numpy()
    np.testing.assert_array_equal(out, [0, 0, 128, 255, 255])
