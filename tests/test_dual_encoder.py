"""DualEncoder: forward contract, serialisation, the negative-source seam, and that training learns."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvgs import similarity as sim
from tfvgs.models import DualEncoder, NegativeSource, build_audio_encoder, build_image_encoder

D = 16
LOG_FLOOR = float(np.log(1e-6))


def make_model(init_seed=0, **kwargs):
    keras.utils.set_random_seed(init_seed)
    return DualEncoder(build_image_encoder("small", embedding_dim=D, width_multiplier=0.25),
                       build_audio_encoder("davenet", embedding_dim=D, width_multiplier=0.125), **kwargs)


def make_batch(rng, batch=6, frames=64, classes=None):
    """Random batch; with `classes`, image colour and a mel band both encode the class (a learnable pairing)."""
    nframes = rng.integers(16, frames + 1, batch).astype("int32")
    image = rng.uniform(-1, 1, (batch, 32, 32, 3)).astype("float32") * 0.3
    logmel = rng.normal(size=(batch, frames, 40)).astype("float32")
    if classes is not None:
        palette = np.array([[(c >> k) & 1 for k in range(3)] for c in range(8)], "float32") * 2 - 1  # cube corners
        image[:, 8:24, 8:24] += palette[classes][:, None, None] * 0.7
        for b, c in enumerate(classes):
            logmel[b, :, 5 * c:5 * c + 5] += 3.0
    for b, n in enumerate(nframes):
        logmel[b, n:] = LOG_FLOOR
    return {"image": image, "logmel": logmel, "nframes": nframes}


class MirrorNegatives(NegativeSource):
    """Edited negatives stand-in: the horizontally mirrored image, valid where `valid` says."""

    def __init__(self, valid):
        self.valid = valid
        self.calls = 0

    def negatives(self, batch, image_feats, audio_feats, audio_frames):
        self.calls += 1
        valid = tf.constant(self.valid)[:tf.shape(batch["image"])[0]]
        return tf.reverse(batch["image"], axis=[2]), valid


def test_call_returns_feature_maps_and_valid_frames():
    model = make_model()
    batch = make_batch(np.random.default_rng(0))
    batch["nframes"][0] = 64
    batch["nframes"][1] = 17
    image_feats, audio_feats, frames = model(batch)
    assert image_feats.shape == (6, 4, 4, D) and audio_feats.shape == (6, 4, D)
    assert frames.dtype == tf.int32 and list(frames.numpy()[:2]) == [4, 1]   # floor(n / 16), as DAVEnet


def test_config_round_trip_and_saved_model_file_give_same_outputs(tmp_path):
    model = make_model(similarity="misa", loss="hardest", margin=0.5, seed=3)
    batch = make_batch(np.random.default_rng(1))
    model(batch, training=True)
    restored = DualEncoder.from_config(model.get_config())
    assert (restored.similarity, restored.loss_kind, restored.margin, restored.seed) == ("misa", "hardest", 0.5, 3)
    restored(batch)
    restored.set_weights(model.get_weights())
    for a, b in zip(model(batch), restored(batch)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)

    path = str(tmp_path / "dual.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, DualEncoder)
    for key in ("similarity", "loss", "margin", "seed"):
        assert loaded.get_config()[key] == model.get_config()[key]
    for key in ("image_encoder", "audio_encoder"):
        assert loaded.get_config()[key]["config"] == model.get_config()[key]["config"]
    for a, b in zip(model(batch), loaded(batch)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)


def test_constructor_and_batch_are_validated():
    with pytest.raises(ValueError, match="similarity|kind"):
        make_model(similarity="cosine")
    with pytest.raises(ValueError, match="loss='triplet'"):
        make_model(loss="triplet")
    model = make_model()
    with pytest.raises(ValueError, match="negatives"):
        model.negative_source = object()
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="'nframes'"):
        model.train_step({"image": tf.zeros([2, 32, 32, 3]), "logmel": tf.zeros([2, 64, 40])})


def _image_gradients(model, batch):
    with tf.GradientTape() as tape:
        loss, _, stats = model.training_loss(batch, step=0, tape=tape)
    grads = tape.gradient(loss, model.image_encoder.trainable_weights)
    return float(loss), [g.numpy() for g in grads], stats


def test_edited_negative_enters_the_loss_and_the_image_gradient():
    batch = make_batch(np.random.default_rng(2), batch=4)
    model = make_model(loss="hardest")
    model(batch)
    base_loss, base_grads, _ = _image_gradients(model, batch)

    # Invalid edits change nothing (same BatchNorm batch for the positives: they are encoded separately).
    model.negative_source = MirrorNegatives([False] * 4)
    loss, grads, stats = _image_gradients(model, batch)
    assert loss == pytest.approx(base_loss, rel=1e-6) and float(stats["edit_valid_fraction"]) == 0
    for g, g0 in zip(grads, base_grads):
        np.testing.assert_allclose(g, g0, rtol=1e-5, atol=1e-7)

    # A mirrored image scores almost like the original, so it is the hardest negative for most captions.
    model.negative_source = MirrorNegatives([True] * 4)
    loss, grads, stats = _image_gradients(model, batch)
    assert float(stats["edit_harder_fraction"]) > 0
    assert loss > base_loss
    assert any(not np.allclose(g, g0, rtol=1e-3, atol=1e-6) for g, g0 in zip(grads, base_grads))


def test_negative_source_weights_are_not_model_weights_and_setting_it_retraces():
    class GanLikeSource(keras.layers.Layer, NegativeSource):
        def build(self, _):
            self.gain = self.add_weight(shape=(), initializer="ones", name="gain")

        def call(self, images):
            return images * self.gain

        def negatives(self, batch, image_feats, audio_feats, audio_frames):
            return self(tf.reverse(batch["image"], axis=[1])), tf.ones([tf.shape(batch["image"])[0]], tf.bool)

    rng = np.random.default_rng(3)
    batch = make_batch(rng, batch=4)
    model = make_model(loss="sampled")
    model(batch)
    count = len(model.weights)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    logs = model.train_on_batch(batch, return_dict=True)
    assert "edit_valid_fraction" not in logs

    source = GanLikeSource()
    source.build(None)
    model.negative_source = source
    assert model.negative_source is source and len(model.weights) == count
    logs = model.train_on_batch(batch, return_dict=True)
    assert float(logs["edit_valid_fraction"]) == 1.0 and "edit_harder_fraction" in logs
    assert len(model.weights) == count and all(w is not source.gain for w in model.trainable_weights)


def test_non_finite_loss_is_reported_in_the_logs():
    batch = make_batch(np.random.default_rng(4), batch=4)
    batch["image"][0, 0, 0, 0] = np.nan
    model = make_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    logs = model.train_on_batch(batch, return_dict=True)
    assert not np.isfinite(logs["loss"])


def _with_crops(batch, rng, width=48):
    crop = rng.normal(size=(len(batch["nframes"]), width, 40)).astype("float32")
    crop_nframes = rng.integers(5, 33, len(batch["nframes"])).astype("int32")
    for b, n in enumerate(crop_nframes):
        crop[b, n:] = LOG_FLOOR
    return dict(batch, crop_logmel=crop, crop_nframes=crop_nframes)


def test_crop_views_add_their_weighted_loss_and_reach_the_audio_gradient():
    rng = np.random.default_rng(11)
    batch = make_batch(rng)
    cropped = _with_crops(batch, rng)
    off, on = make_model(loss="hardest"), make_model(loss="hardest", crop_weight=0.5)
    loss_plain, _, stats_plain = off.training_loss(batch, step=0)
    loss_ignored, _, _ = off.training_loss(cropped, step=0)    # crop_weight 0: the crops are not even encoded
    assert float(loss_ignored) == pytest.approx(float(loss_plain), rel=1e-6) and "crop_loss" not in stats_plain
    on(batch)
    before = on.get_weights()        # BatchNorm statistics move in every training-mode call
    with tf.GradientTape() as tape:
        loss, terms, stats = on.training_loss(cropped, step=0, tape=tape)
    # the crops' own loss: the same hinge with the crops as the captions (inference-mode BatchNorm, as in training)
    on.set_weights(before)
    image_feats, _, _ = on(batch, training=True)
    crop_feats = on.audio_encoder(cropped["crop_logmel"], training=False)
    crop_frames = on.audio_encoder.output_frames(cropped["crop_nframes"])
    crop_terms, _ = on.loss_terms(image_feats, crop_feats, crop_frames, 0, 2000)
    assert float(stats["crop_loss"]) == pytest.approx(float(tf.add_n(list(crop_terms.values()))), rel=1e-5)
    assert float(loss) == pytest.approx(float(terms["hardest"]) + 0.5 * float(stats["crop_loss"]), rel=1e-5)
    assert float(stats["crop_loss"]) > 0
    grads = tape.gradient(loss, on.audio_encoder.trainable_weights)
    with tf.GradientTape() as tape:
        plain, _, _ = on.training_loss(batch, step=0, tape=tape)
    plain_grads = tape.gradient(plain, on.audio_encoder.trainable_weights)
    assert any(not np.allclose(g.numpy(), p.numpy()) for g, p in zip(grads, plain_grads) if g is not None)
    with pytest.raises(ValueError, match="crop_weight"):
        make_model(crop_weight=-1)


def test_crop_views_are_logged_and_serialised(tmp_path):
    rng = np.random.default_rng(12)
    model = make_model(crop_weight=0.25)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    logs = model.fit(tf.data.Dataset.from_tensors(_with_crops(make_batch(rng), rng)).repeat(2), verbose=0).history
    assert "crop_loss" in logs and np.isfinite(logs["crop_loss"][-1])
    assert DualEncoder.from_config(model.get_config()).crop_weight == 0.25


def test_evaluate_reports_every_loss_term():
    batch = make_batch(np.random.default_rng(5), batch=4)
    model = make_model(loss="semi_hard")
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    logs = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    assert set(logs) == {"loss", "sampled_loss", "semi_hard_loss"}
    assert logs["loss"] == pytest.approx(logs["sampled_loss"] + logs["semi_hard_loss"], rel=1e-5)


def expected_triplet_loss(scores, margin=1.0):
    """Mean hinge over *every* impostor of both directions: the expectation of the sampled loss over its draws.

    The training loss itself is a poor yardstick here: "sampled" (and semi-hard's fallback) score one random impostor
    per anchor, so two runs whose weights differ by rounding draw the same impostors but land on different sides of
    a single noisy draw (issue 15: 1.05 vs 0.71 at step 30 on AVX2 vs AVX-512 kernels). This quantity is
    deterministic given the weights.
    """
    positive, off = np.diag(scores), ~np.eye(len(scores), dtype=bool)
    image_anchor = np.maximum(0.0, margin - positive[:, None] + scores)[off].mean()
    caption_anchor = np.maximum(0.0, margin - positive[None, :] + scores)[off].mean()
    return image_anchor + caption_anchor


# (Not "hardest" from scratch: it collapses to all-zero ReLU features, which is why paper 000 starts its hard-negative
# models from a trained DAVEnet and paper 001 blends semi-hard with sampled negatives.)
@pytest.mark.parametrize("similarity,loss", [("sisa", "semi_hard"), ("misa", "sampled")])
def test_training_learns_a_tiny_pairing_problem(similarity, loss):
    """80 steps on one batch of 8 pairs (one per class: no false negatives) must more than halve the expected loss.

    Margin: over 4 initial seeds x 3 kernel paths (oneDNN AVX-512, oneDNN capped at AVX2, oneDNN off) the ratio
    after 80 steps was 0.00-0.24 (median ~0.1), and at most 0.25 anywhere in steps 60-80, so the 0.5 bar has a 2x
    margin on every CPU we know of; a model that does not learn stays near 1 (the ratio at step 10 is 0.73-0.94).
    """
    data = make_batch(np.random.default_rng(6), batch=8, classes=np.arange(8))
    model = make_model(similarity=similarity, loss=loss)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))

    def scores():
        image_feats, audio_feats, frames = model(data, training=False)
        return sim.similarity_matrix(image_feats, audio_feats, frames, similarity).numpy()   # [images, captions]

    before = expected_triplet_loss(scores())
    model.fit(tf.data.Dataset.from_tensors(data).repeat(80), epochs=1, verbose=0)
    after = expected_triplet_loss(scores())
    assert after < 0.5 * before, (before, after)

    # Matched pairs now score higher than mismatched ones.
    final = scores()
    assert np.diag(final).mean() > final[~np.eye(8, dtype=bool)].mean()
