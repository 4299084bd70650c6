"""The `export` package: SavedModels for TF Serving, reloaded with tf.saved_model.load and saved_model_cli.

One tiny untrained workdir (dual encoder at the tiny preset, a 32 px generator, 12 index images) is exported once per
module. Signatures are compared with the Keras models they wrap at ATOL (same weights and ops; graph vs eager
execution may fuse ops differently, so equality is up to float32 rounding).
"""
import contextlib
import io
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from export import serving_config
from export.__main__ import main as export_main
from export.audio_visual import AudioVisualServable, ImageIndex, audio_limits
from export.exporter import STAGE_PREFERENCE, default_stage
from export.image_index import embed_pngs, read_index_images
from tfvgs import data as data_lib
from tfvgs import features, gan_io, schema
from tfvgs import similarity as sim
from tfvgs.config import get_config

ATOL = 1e-5
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
NUM_INDEX_IMAGES = 12


def _write_pairs(path, images, captions_per_image):
    with tf.io.TFRecordWriter(path) as writer:
        for i, (image, k_max) in enumerate(zip(images, captions_per_image)):
            for k in range(k_max):
                writer.write(schema.encode_pair_record(
                    pair_id=f"test/{i:07d}/{k}", image_png=schema.encode_png(image),
                    logmel=np.zeros((5, 40), np.float32), caption="a small red cube", voice="v", split="test"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from tfvgs import evaluate
    from tfvgs.gan import ProgressiveGenerator
    from tfvgs.stages.davenet import build_dual_encoder

    root = tmp_path_factory.mktemp("export")
    workdir, output_dir, data_dir = root / "work", root / "serving", root / "pairs"
    config = get_config("tiny")
    (workdir / "davenet").mkdir(parents=True)
    build_dual_encoder(config).save(str(workdir / "davenet" / "model.keras"))
    config.save(str(workdir / "davenet" / "config.json"))
    (workdir / "gan").mkdir()
    generator = ProgressiveGenerator(latent_dim=16, max_resolution=32, fmap_base=128, fmap_max=32)
    gan_io.save_generator(generator, str(workdir / "gan"), {"fully_grown": True})

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (NUM_INDEX_IMAGES, 32, 32, 3), dtype=np.uint8)
    data_dir.mkdir()
    # the first three images have two captions each: the index must hold each image once
    _write_pairs(str(data_dir / "test-00000-of-00001.tfrecord"), images, [2, 2, 2] + [1] * (NUM_INDEX_IMAGES - 3))

    console = io.StringIO()
    with contextlib.redirect_stdout(console):      # the command line itself: python -m export ...
        written = export_main(["--workdir", str(workdir), "--output_dir", str(output_dir),
                               "--index_data_dir", str(data_dir), "--top_k", "5"])
    messages = console.getvalue().splitlines()
    return SimpleNamespace(
        config=config, workdir=workdir, output_dir=output_dir, written=written, messages=messages, images=images,
        model=evaluate.load_stage_model(str(workdir), "davenet", config),
        generator=gan_io.load_generator(str(workdir)),
        audio_visual=tf.saved_model.load(written["audio_visual"]),
        generator_servable=tf.saved_model.load(written["generator"]))


def _keras_audio(model, config, logmel, nframes):
    """The training path: pad each unpadded [frames, F] log-mel with tfvgs.features.pad_or_crop, run the model."""
    padded = [features.pad_or_crop(tf.constant(lm), config.features.max_frames, features.padding_value(config.features))
              for lm in logmel]
    size = config.world.image_size
    _, audio_feats, frames = model({"image": tf.zeros([len(padded), size, size, 3]),
                                    "logmel": tf.stack([p[0] for p in padded]),
                                    "nframes": tf.constant(nframes, tf.int32)}, training=False)
    return audio_feats.numpy(), frames.numpy()


def _waveforms(lengths, seed=1):
    rng = np.random.default_rng(seed)
    batch = np.zeros((len(lengths), max(lengths)), np.float32)
    for row, n in enumerate(lengths):
        batch[row, :n] = 0.3 * np.sin(np.arange(n) * rng.uniform(0.02, 0.2)) + 0.05 * rng.standard_normal(n)
    return batch, np.asarray(lengths, np.int32)


def _logmels_of(waveform, num_samples, config):
    return [features.log_mel(waveform[i, :n], config.features).numpy() for i, n in enumerate(num_samples)]


# --- layout, stage choice, versions ---------------------------------------------------------------------------

def test_export_layout_models_config_and_console(exported):
    for name in ("audio_visual", "generator"):
        assert (exported.output_dir / name / "1" / "saved_model.pb").exists()
    assert not [p for p in (exported.output_dir / "audio_visual").iterdir() if p.name.startswith(".tmp")]
    text = (exported.output_dir / "models.config").read_text()
    for name in ("audio_visual", "generator"):
        assert f'name: "{name}"' in text and f'base_path: "/models/{name}"' in text
    info = json.loads((exported.output_dir / "audio_visual" / "1" / "assets.extra" / "export_info.json").read_text())
    assert info["stage"] == "davenet" and info["index"]["size"] == NUM_INDEX_IMAGES
    assert set(info["signatures"]) == {"embed_audio_waveform", "embed_audio", "embed_image", "embed_image_bytes",
                                       "match", "retrieve"}
    assert set(exported.audio_visual.signatures) == set(info["signatures"]) | {"serving_default"}
    log = "\n".join(exported.messages)
    assert "stage 'davenet'" in log
    assert "docker run" in log and "tensorflow/serving --model_config_file=/models/models.config" in log


def test_default_stage_is_the_most_refined_trained_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="No trained audio-visual model"):
        default_stage(str(tmp_path))
    for stage in ("davenet", "hard_negatives", "random_edits"):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "model.keras").write_bytes(b"")
    assert default_stage(str(tmp_path)) == "random_edits"
    assert STAGE_PREFERENCE[0] == "hn_targeted_edits" and STAGE_PREFERENCE[-1] == "davenet"


def test_versions_are_numbered_and_never_overwritten(exported):
    assert serving_config.next_version(str(exported.output_dir)) == 2
    with pytest.raises(FileExistsError, match="already exists"):
        serving_config.check_version_free(str(exported.output_dir), "audio_visual", 1)
    assert serving_config.check_version_free(str(exported.output_dir), "audio_visual", 2).endswith("2")


def test_command_line_names_a_missing_stage(exported, tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained model for stage 'hard_negatives'"):
        export_main(["--workdir", str(exported.workdir), "--output_dir", str(tmp_path), "--stage", "hard_negatives"])
    assert not list(tmp_path.iterdir())


# --- signatures against the Keras models ----------------------------------------------------------------------

def test_embed_audio_matches_keras_and_ignores_client_padding(exported):
    rng = np.random.default_rng(2)
    lengths = [37, 120]
    logmels = [rng.normal(-3.0, 2.0, (n, 40)).astype(np.float32) for n in lengths]
    batch = rng.normal(size=(2, 130, 40)).astype(np.float32)   # junk after nframes: must not matter
    for row, lm in enumerate(logmels):
        batch[row, :len(lm)] = lm
    out = exported.audio_visual.signatures["embed_audio"](logmel=tf.constant(batch), nframes=tf.constant(lengths))
    expected_feats, expected_frames = _keras_audio(exported.model, exported.config, logmels, lengths)
    np.testing.assert_array_equal(out["valid_frames"].numpy(), expected_frames)
    np.testing.assert_allclose(out["features"].numpy(), expected_feats, atol=ATOL)
    np.testing.assert_allclose(out["embedding"].numpy(),
                               sim.pool_audio(expected_feats, expected_frames).numpy(), atol=ATOL)


def test_embed_audio_waveform_uses_the_training_log_mel(exported):
    waveform, num_samples = _waveforms([4000, 9000])
    out = exported.audio_visual.signatures["embed_audio_waveform"](waveform=tf.constant(waveform),
                                                                   num_samples=tf.constant(num_samples))
    logmels = _logmels_of(waveform, num_samples, exported.config)
    expected_feats, expected_frames = _keras_audio(exported.model, exported.config, logmels,
                                                   [len(lm) for lm in logmels])
    np.testing.assert_array_equal(out["valid_frames"].numpy(), expected_frames)
    np.testing.assert_allclose(out["features"].numpy(), expected_feats, atol=ATOL)


def test_embed_image_float_png_and_jpeg_match_keras(exported):
    from PIL import Image
    images = exported.images[:3]
    expected = exported.model.image_encoder(data_lib.image_to_float(images), training=False).numpy()
    out = exported.audio_visual.signatures["embed_image"](image=data_lib.image_to_float(images))
    np.testing.assert_allclose(out["features"].numpy(), expected, atol=ATOL)
    np.testing.assert_allclose(out["embedding"].numpy(), expected.mean(axis=(1, 2)), atol=ATOL)

    pngs = [schema.encode_png(image) for image in images]
    out = exported.audio_visual.signatures["embed_image_bytes"](image_bytes=tf.constant(pngs))
    np.testing.assert_allclose(out["features"].numpy(), expected, atol=ATOL)

    buffer = io.BytesIO()
    Image.fromarray(images[0]).save(buffer, format="JPEG", quality=90)
    jpeg = buffer.getvalue()
    decoded = tf.io.decode_jpeg(jpeg, channels=3)[None]
    out = exported.audio_visual.signatures["embed_image_bytes"](image_bytes=tf.constant([jpeg]))
    np.testing.assert_allclose(out["features"].numpy(), exported.model.image_encoder(
        data_lib.image_to_float(decoded), training=False).numpy(), atol=ATOL)


def test_match_gives_the_matchmap_and_its_three_scores(exported):
    waveform, num_samples = _waveforms([3000, 7000], seed=3)
    images = data_lib.image_to_float(exported.images[3:5])
    out = exported.audio_visual.signatures["match"](image=images, waveform=tf.constant(waveform),
                                                    num_samples=tf.constant(num_samples))
    logmels = _logmels_of(waveform, num_samples, exported.config)
    audio_feats, frames = _keras_audio(exported.model, exported.config, logmels, [len(lm) for lm in logmels])
    image_feats = exported.model.image_encoder(images, training=False)
    matchmap = sim.matchmap(image_feats, audio_feats).numpy()
    np.testing.assert_allclose(out["matchmap"].numpy(), matchmap, atol=ATOL)
    for kind in sim.SIMILARITY_KINDS:
        np.testing.assert_allclose(out[kind].numpy(), sim.matchmap_similarity(matchmap, kind, frames).numpy(),
                                   atol=ATOL)


def test_retrieve_ranks_the_index_like_a_numpy_misa(exported):
    ids, pngs = read_index_images(str(exported.output_dir.parent / "pairs"), "test")
    assert len(ids) == NUM_INDEX_IMAGES and ids[:2] == ["test/0000000/0", "test/0000001/0"]
    index_images = data_lib.image_to_float(np.stack([schema.decode_png(p) for p in pngs]))
    image_feats = exported.model.image_encoder(index_images, training=False).numpy()
    image_feats = image_feats.reshape(NUM_INDEX_IMAGES, -1, image_feats.shape[-1])          # [N, R, D]

    waveform, num_samples = _waveforms([5000, 12000], seed=4)
    out = exported.audio_visual.signatures["retrieve"](waveform=tf.constant(waveform),
                                                       num_samples=tf.constant(num_samples))
    logmels = _logmels_of(waveform, num_samples, exported.config)
    audio_feats, frames = _keras_audio(exported.model, exported.config, logmels, [len(lm) for lm in logmels])
    for q in range(2):
        audio = audio_feats[q, :frames[q]]                                                  # [T', D]
        misa = np.einsum("nrd,td->nrt", image_feats, audio).max(axis=1).mean(axis=1)         # [N]
        order = np.argsort(-misa, kind="stable")[:5]
        assert [i.decode() for i in out["image_ids"].numpy()[q]] == [ids[i] for i in order]
        np.testing.assert_array_equal(out["indices"].numpy()[q], order)
        np.testing.assert_allclose(out["scores"].numpy()[q], misa[order], atol=ATOL)


def _random_map_index(exported, n, seed):
    size = exported.config.world.image_size
    shape = exported.model.image_encoder(tf.zeros([1, size, size, 3]), training=False).shape[1:]
    features = np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)
    return ImageIndex([f"image-{i}" for i in range(n)], features)


@pytest.mark.parametrize("kind", ["misa", "sima"])
def test_a_shortlist_of_the_whole_index_is_the_full_ranking(exported, kind):
    index = _random_map_index(exported, 40, seed=7)
    waveform, num_samples = _waveforms([5000, 12000], seed=8)
    args = (tf.constant(waveform), tf.constant(num_samples))
    full = AudioVisualServable(exported.model, exported.config, index, similarity=kind, top_k=6).retrieve(*args)
    two_stage = AudioVisualServable(exported.model, exported.config, index, similarity=kind, top_k=6,
                                    shortlist=1000)                     # capped at the 40 images
    assert two_stage.shortlist == 40 and two_stage.describe()["index"]["shortlist"] == 40
    out = two_stage.retrieve(*args)
    np.testing.assert_array_equal(out["indices"].numpy(), full["indices"].numpy())
    np.testing.assert_array_equal(out["image_ids"].numpy(), full["image_ids"].numpy())
    np.testing.assert_allclose(out["scores"].numpy(), full["scores"].numpy(), atol=ATOL)


def test_a_short_shortlist_re_ranks_the_pooled_best_with_misa(exported):
    """The candidates are each query's S best by the pooled score; among them the order is MISA's."""
    index = _random_map_index(exported, 30, seed=9)
    waveform, num_samples = _waveforms([7000], seed=10)
    servable = AudioVisualServable(exported.model, exported.config, index, similarity="misa", top_k=3, shortlist=5)
    out = servable.retrieve(tf.constant(waveform), tf.constant(num_samples))
    audio = servable.embed_audio_waveform(tf.constant(waveform), tf.constant(num_samples))
    frames = int(audio["valid_frames"].numpy()[0])
    pooled = index.features.mean(axis=(1, 2)) @ audio["embedding"].numpy()[0]
    candidates = np.argsort(-pooled, kind="stable")[:5]
    feats = audio["features"].numpy()[0, :frames]
    misa = np.einsum("nrcd,td->nrct", index.features[candidates], feats).max(axis=(1, 2)).mean(axis=1)
    expected = candidates[np.argsort(-misa, kind="stable")[:3]]
    np.testing.assert_array_equal(out["indices"].numpy()[0], expected)
    np.testing.assert_allclose(out["scores"].numpy()[0], np.sort(misa)[::-1][:3], atol=ATOL)


def test_a_float16_index_scores_its_stored_values_in_float32(exported):
    """Half the memory; the ranking is the float32 one of the float16-rounded maps (rounding is the only change)."""
    index = _random_map_index(exported, 30, seed=11)
    half = ImageIndex(index.ids, index.features.astype(np.float16))
    rounded = ImageIndex(index.ids, half.features.astype(np.float32))
    assert half.features.dtype == np.float16 and half.features.nbytes * 2 == index.features.nbytes
    waveform, num_samples = _waveforms([6000], seed=12)
    args = (tf.constant(waveform), tf.constant(num_samples))
    with pytest.raises(ValueError, match="float16 index of feature maps needs a `shortlist`"):
        AudioVisualServable(exported.model, exported.config, half, "misa", top_k=4)
    for shortlist in (8, 30):
        out = AudioVisualServable(exported.model, exported.config, half, "misa", top_k=4,
                                  shortlist=shortlist).retrieve(*args)
        expected = AudioVisualServable(exported.model, exported.config, rounded, "misa", top_k=4,
                                       shortlist=shortlist).retrieve(*args)
        np.testing.assert_array_equal(out["indices"].numpy(), expected["indices"].numpy())
        np.testing.assert_allclose(out["scores"].numpy(), expected["scores"].numpy(), atol=ATOL)


@pytest.mark.parametrize("kwargs, message", [(dict(similarity="misa", top_k=10, shortlist=5), "integer >= top_k"),
                                             (dict(similarity="misa", top_k=2, shortlist=5), "this servable has none"),
                                             (dict(similarity="sisa", top_k=2, shortlist=5), "already the whole")])
def test_a_shortlist_must_make_sense(exported, kwargs, message):
    with pytest.raises(ValueError, match=message):
        AudioVisualServable(exported.model, exported.config, **kwargs)


def test_a_planted_index_entry_is_found_by_its_own_caption(exported):
    """Plumbing of ids through a SISA index: the image whose embedding is the query's comes first."""
    waveform, num_samples = _waveforms([6000], seed=5)
    servable = AudioVisualServable(exported.model, exported.config)
    query = servable.embed_audio_waveform(tf.constant(waveform), tf.constant(num_samples))["embedding"].numpy()
    rng = np.random.default_rng(6)
    vectors = rng.normal(size=(50, query.shape[1])).astype(np.float32)
    vectors *= np.linalg.norm(query) / np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[17] = query[0]
    ids = [f"scene-{i}" for i in range(50)]
    servable = AudioVisualServable(exported.model, exported.config, ImageIndex(ids, vectors), similarity="sisa",
                                   top_k=3)
    out = servable.retrieve(tf.constant(waveform), tf.constant(num_samples))
    assert out["image_ids"].numpy()[0, 0].decode() == "scene-17"
    assert "retrieve" not in AudioVisualServable(exported.model, exported.config).signatures()


def test_generate_equals_the_generator_and_zero_ablation_changes_nothing(exported):
    z = gan_io.latents_for_seeds([0, 1, 2], 16)
    sigs = exported.generator_servable.signatures
    out = sigs["generate"](latent=tf.constant(z))
    expected = exported.generator.generate(z).numpy()
    np.testing.assert_allclose(out["image"].numpy(), expected, atol=ATOL)
    np.testing.assert_array_equal(out["image_uint8"].numpy(), exported.generator.to_uint8(expected).numpy())
    channels = exported.generator.h4_channels
    zero = sigs["generate_ablated"](latent=tf.constant(z), ablation=tf.zeros([3, 8, 8, channels]))
    np.testing.assert_array_equal(zero["image"].numpy(), out["image"].numpy())
    mask = np.zeros([1, 8, 8, 1], np.float32)
    mask[:, 2:5, 3:6] = 1.0                                            # broadcast over batch and units
    ablated = sigs["generate_ablated"](latent=tf.constant(z), ablation=tf.constant(mask))
    np.testing.assert_allclose(ablated["image"].numpy(), exported.generator.generate(z, mask).numpy(), atol=ATOL)
    assert not np.allclose(ablated["image"].numpy(), out["image"].numpy())


# --- the TF1 loader TF Serving uses ---------------------------------------------------------------------------

def test_saved_model_cli_run_matches_and_reports_bad_input(exported, tmp_path):
    rng = np.random.default_rng(7)
    logmel = rng.normal(-3.0, 2.0, (1, 60, 40)).astype(np.float32)
    np.save(tmp_path / "logmel.npy", logmel)
    np.save(tmp_path / "nframes.npy", np.array([60], np.int32))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    directory = exported.written["audio_visual"]
    run = subprocess.run(
        [SAVED_MODEL_CLI, "run", "--dir", directory, "--tag_set", "serve", "--signature_def", "embed_audio",
         "--inputs", f"logmel={tmp_path / 'logmel.npy'};nframes={tmp_path / 'nframes.npy'}",
         "--outdir", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    expected_feats, _ = _keras_audio(exported.model, exported.config, [logmel[0]], [60])
    np.testing.assert_allclose(np.load(tmp_path / "out" / "features.npy"), expected_feats, atol=ATOL)

    np.save(tmp_path / "waveform.npy", np.zeros((1, 1000), np.float32))
    np.save(tmp_path / "num_samples.npy", np.array([0], np.int32))
    bad = subprocess.run(
        [SAVED_MODEL_CLI, "run", "--dir", directory, "--tag_set", "serve", "--signature_def", "embed_audio_waveform",
         "--inputs", f"waveform={tmp_path / 'waveform.npy'};num_samples={tmp_path / 'num_samples.npy'}"],
        capture_output=True, text=True, env=env, timeout=180)
    assert bad.returncode != 0
    assert "InvalidArgumentError" in bad.stderr and "`num_samples` must be at least 400" in bad.stderr


# --- malformed inputs -----------------------------------------------------------------------------------------

def _png(size):
    return schema.encode_png(np.zeros((size, size, 3), np.uint8))


MAX_SAMPLES = audio_limits(get_config("tiny"))["max_samples"]
_W = np.zeros((2, 1000), np.float32)
_N = np.array([1000, 800], np.int32)
_IMG = np.zeros((2, 32, 32, 3), np.float32)

MALFORMED = [
    # (servable, signature, inputs, regex naming the input and showing the received value)
    ("av", "embed_audio_waveform", dict(waveform=_W[0], num_samples=_N), r"`waveform` must have rank 2.*\[1000\]"),
    ("av", "embed_audio_waveform", dict(waveform=_W, num_samples=np.array([1000, 0], np.int32)),
     r"`num_samples` must be at least 400.*empty.*\[1000 0\]"),
    ("av", "embed_audio_waveform", dict(waveform=_W, num_samples=np.array([1001, 500], np.int32)),
     r"`num_samples` must be at most the waveform width.*\[1001 500\] 1000"),
    ("av", "embed_audio_waveform", dict(waveform=np.zeros((1, MAX_SAMPLES + 1), np.float32),
                                        num_samples=np.array([MAX_SAMPLES + 1], np.int32)),
     rf"longer than {MAX_SAMPLES} samples.*not truncated.*\[{MAX_SAMPLES + 1}\]"),
    ("av", "embed_audio_waveform", dict(waveform=_W, num_samples=_N[:1]), r"same batch size.*2 1"),
    ("av", "embed_audio_waveform", dict(waveform=_W[:0], num_samples=_N[:0]),
     r"`waveform` must hold at least one example.*\[0 1000\]"),
    ("av", "embed_audio_waveform", dict(waveform=np.full((2, 1000), np.nan, np.float32), num_samples=_N),
     r"`waveform` must not contain NaN"),
    ("av", "embed_audio_waveform", dict(waveform=np.full((2, 1000), 3000.0, np.float32), num_samples=_N),
     r"`waveform` samples must be float PCM in \[-1, 1\].*3000"),
    ("av", "embed_audio", dict(logmel=np.zeros((20, 40), np.float32), nframes=np.array([20], np.int32)),
     r"`logmel` must have rank 3.*\[20 40\]"),
    ("av", "embed_audio", dict(logmel=np.zeros((1, 20, 39), np.float32), nframes=np.array([20], np.int32)),
     r"`logmel` must have 40 mel bins.*\[1 20 39\]"),
    ("av", "embed_audio", dict(logmel=np.zeros((1, 513, 40), np.float32), nframes=np.array([513], np.int32)),
     r"`logmel` must have at most 512 frames.*\[1 513 40\]"),
    ("av", "embed_audio", dict(logmel=np.zeros((1, 20, 40), np.float32), nframes=np.array([0], np.int32)),
     r"`nframes` must be at least 1.*empty.*\[0\]"),
    ("av", "embed_audio", dict(logmel=np.zeros((1, 20, 40), np.float32), nframes=np.array([21], np.int32)),
     r"`nframes` must be at most.*\[21\] 20"),
    ("av", "embed_image", dict(image=_IMG[0]), r"`image` must have rank 4.*\[32 32 3\]"),
    ("av", "embed_image", dict(image=_IMG[:0]), r"`image` must hold at least one example.*\[0 32 32 3\]"),
    ("av", "embed_image", dict(image=np.zeros((1, 31, 32, 3), np.float32)), r"never resized.*\[1 31 32 3\]"),
    ("av", "embed_image", dict(image=np.zeros((1, 32, 32, 4), np.float32)), r"`image` must be.*\[1 32 32 4\]"),
    ("av", "embed_image", dict(image=np.full((1, 32, 32, 3), 255.0, np.float32)),
     r"`image` values must be in \[-1, 1\].*255"),
    ("av", "embed_image_bytes", dict(image_bytes=np.array(b"x")), r"`image_bytes` must have rank 1"),
    ("av", "embed_image_bytes", dict(image_bytes=np.array([], dtype=bytes)),
     r"`image_bytes` must hold at least one example.*\[0\]"),
    ("av", "embed_image_bytes", dict(image_bytes=np.array([_png(32), b"GIF89a not an image"])),
     r"`image_bytes\[i\]` is neither a PNG nor a JPEG.*Received i: 1"),
    ("av", "embed_image_bytes", dict(image_bytes=np.array([_png(32), _png(64)])),
     r"must decode to 32 x 32 pixels.*shape: 1 \[64 64 3\]"),
    ("av", "match", dict(image=_IMG[:1], waveform=_W, num_samples=_N), r"`image` and `waveform`.*batch.*1 2"),
    ("av", "match", dict(image=np.zeros((2, 16, 16, 3), np.float32), waveform=_W, num_samples=_N),
     r"never resized.*\[2 16 16 3\]"),
    ("av", "retrieve", dict(waveform=_W, num_samples=np.array([0, 0], np.int32)),
     r"retrieve: every `num_samples` must be at least 400"),
    ("gen", "generate", dict(latent=np.zeros((2, 15), np.float32)), r"`latent` must be \[batch, 16\].*\[2 15\]"),
    ("gen", "generate", dict(latent=np.zeros((16,), np.float32)), r"`latent` must have rank 2.*\[16\]"),
    ("gen", "generate_ablated", dict(latent=np.zeros((2, 16), np.float32), ablation=np.zeros((2, 4, 4, 1),
                                                                                               np.float32)),
     r"`ablation` must broadcast to \[batch, 8, 8, 32\].*\[2 4 4 1\]"),
    ("gen", "generate_ablated", dict(latent=np.zeros((2, 16), np.float32),
                                     ablation=np.full((1, 8, 8, 1), 2.0, np.float32)),
     r"`ablation` values must be in \[0, 1\].*2"),
]


@pytest.mark.parametrize("servable, signature, inputs, message", MALFORMED,
                         ids=[f"{m[1]}-{i}" for i, m in enumerate(MALFORMED)])
def test_malformed_inputs_are_rejected_with_a_message(exported, servable, signature, inputs, message):
    loaded = exported.audio_visual if servable == "av" else exported.generator_servable
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})


@pytest.mark.parametrize("signature, inputs", [
    ("embed_audio_waveform", dict(waveform=np.zeros((1, 1000), np.int32), num_samples=np.array([1000], np.int32))),
    ("embed_audio_waveform", dict(waveform=np.zeros((1, 1000), np.float32), num_samples=np.array([1000.0]))),
    ("embed_image", dict(image=np.zeros((1, 32, 32, 3), np.uint8))),
    ("embed_image_bytes", dict(image_bytes=np.zeros((1,), np.float32))),
])
def test_wrong_dtype_is_rejected_by_the_signature_spec(exported, signature, inputs):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected to be a \w+ tensor but is a \w+ tensor"):
        exported.audio_visual.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})


# --- the image index ------------------------------------------------------------------------------------------

def test_index_reads_scene_records_with_scene_ids(tmp_path):
    path = tmp_path / "test-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for index in (4, 9):
            image = np.full((8, 8, 3), index, np.uint8)
            writer.write(schema.encode_scene_record(
                scene={"image_index": index, "objects": []}, image=image, instance_mask=np.zeros((8, 8), np.uint8),
                attributes=np.zeros((8, 8, 4), np.uint8), split="test"))
    ids, pngs = read_index_images(str(tmp_path), "test")
    assert ids == ["test/0000004", "test/0000009"]
    assert schema.decode_png(pngs[1])[0, 0, 0] == 9
    assert read_index_images(str(tmp_path), "test", limit=1)[0] == ["test/0000004"]


def test_index_images_of_the_wrong_size_are_an_error_naming_the_image():
    with pytest.raises(ValueError, match=r"'test/0000003/0' is 16 x 16 pixels; the model takes 32 x 32"):
        embed_pngs(["test/0000003/0"], [_png(16)], lambda images: images, image_size=32)
