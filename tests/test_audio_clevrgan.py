"""The Audio CLEVRGAN pipeline on an untrained tiny generator and segmenter saved where the stages put them.

Untrained, the segmenter's foreground prior (-1.5 logit) finds no object anywhere; with a 0 foreground bias it finds
1-4 blobs per GAN image and is unsure of their attributes (weakest class probability ~0.15-0.2, colour has 8
classes). The tests therefore compute each sample's description themselves from the saved models and pick
`segmenter.min_confidence` between two samples' confidences, so one run both writes and rejects samples, and which
ones is known in advance.
"""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines import audio_clevrgan, common
from beam_pipelines.render_scenes import split_for_index
from beam_pipelines.spoken_captions import voice_split
from tfvgs import data, describe, gan_io, schema, speech, workdir as layout
from tfvgs.config import get_config
from tfvgs.seeding import stable_seed

NUM_SAMPLES, CAPTIONS_PER_IMAGE = 10, 2     # tiny fractions 0.8/0.1/0.1: samples 0-7 train, 8 val, 9 test
TEST_INDEX = 9
FLAGS = ["--config", "tiny", "--set", "data.num_shards=1"]
FRACTIONS = get_config("tiny").data.split_fractions
TRAIN_INDICES = {i for i in range(NUM_SAMPLES) if split_for_index(i, NUM_SAMPLES, FRACTIONS) == "train"}


def save_untrained_models(workdir, config, fully_grown=True):
    from tfvgs.gan import ProgressiveGenerator
    from tfvgs.stages.segmenter import build_segmenter
    keras.utils.set_random_seed(config.seed)
    generator = ProgressiveGenerator(latent_dim=config.gan.latent_dim, max_resolution=config.world.image_size,
                                     fmap_base=config.gan.fmap_base, fmap_max=config.gan.fmap_max, name="generator")
    os.makedirs(os.path.join(workdir, "gan"), exist_ok=True)
    info = {"fully_grown": fully_grown, "resolution": config.world.image_size}
    gan_io.save_generator(generator, os.path.join(workdir, "gan"), info)
    segmenter = build_segmenter(config)
    segmenter.heads["foreground"].bias.assign([0.0])
    os.makedirs(os.path.dirname(layout.model_path(workdir, "segmenter")), exist_ok=True)
    segmenter.save(layout.model_path(workdir, "segmenter"))


def expected_samples(workdir, config, num_samples, namespace="audio_clevrgan"):
    """What the pipeline should draw and see, computed here without Beam: latents, uint8 images, descriptions.
    `namespace`: of the latent seeds (another pipeline drawing GAN images passes its own)."""
    generator = gan_io.load_generator(workdir)
    segmenter = keras.models.load_model(layout.model_path(workdir, "segmenter"), compile=False)
    seeds = [stable_seed(config.seed, namespace, i) for i in range(num_samples)]
    latents = gan_io.latents_for_seeds(seeds, generator.latent_dim)
    images = np.asarray(generator.to_uint8(generator.generate(latents)))
    descriptions = describe.describe_images(segmenter, images.astype(np.float32) / 127.5 - 1.0,
                                            min_object_pixels=config.segmenter.min_object_pixels, min_confidence=0.0)
    weakest = [min((o["confidence"] for o in d["objects"]), default=-1.0) for d in descriptions]
    return {"seeds": seeds, "latents": latents, "images": images, "descriptions": descriptions, "weakest": weakest}


def read_records(output_dir):
    return [schema.read_pair_record(r.numpy())
            for split in data.SPLITS for r in tf.data.TFRecordDataset(data.list_shards(output_dir, split))]


def index_of(pair_id):
    return int(pair_id.split("/")[1])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("acg") / "w")
    save_untrained_models(path, get_config("tiny"))
    return path


@pytest.fixture(scope="module")
def mixed_run(workdir, tmp_path_factory):
    """One run whose min_confidence lies in the widest gap between samples' confidences that still lets the test
    sample and some training sample through and rejects at least one sample."""
    config = get_config("tiny")
    expected = expected_samples(workdir, config, NUM_SAMPLES)
    weakest = expected["weakest"]
    values = sorted(set(weakest))
    candidates = []
    for low, high in zip(values, values[1:]):
        accepted = {i for i, c in enumerate(weakest) if c >= high}
        if TEST_INDEX in accepted and accepted & TRAIN_INDICES and len(accepted) < NUM_SAMPLES:
            candidates.append((high - low, (low + high) / 2.0))
    assert candidates, f"the planted segmenter's confidences allow no mixed run: {weakest}"
    gap, threshold = max(candidates)
    assert gap > 1e-4, f"samples' confidences too close to split robustly: {weakest}"
    output_dir = str(tmp_path_factory.mktemp("acg_out") / "pairs")
    summary = audio_clevrgan.run(["--workdir", workdir, "--output_dir", output_dir, "--num_samples",
                                  str(NUM_SAMPLES), "--captions_per_image", str(CAPTIONS_PER_IMAGE), *FLAGS,
                                  "--set", f"segmenter.min_confidence={threshold}", "--batch_size", "4"])
    accepted = {i for i, c in enumerate(weakest) if c >= threshold}
    return {"summary": summary, "output_dir": output_dir, "expected": expected, "threshold": threshold,
            "accepted": accepted, "records": read_records(output_dir),
            "rejected": common.read_jsonl(os.path.join(output_dir, "rejected.jsonl"))}


def test_counts_add_up_and_match_the_records(mixed_run):
    summary, records, rejected = mixed_run["summary"], mixed_run["records"], mixed_run["rejected"]
    accepted = mixed_run["accepted"]
    assert 0 < len(accepted) < NUM_SAMPLES
    assert summary["read"] == NUM_SAMPLES * CAPTIONS_PER_IMAGE
    assert summary["written"] == len(records) == CAPTIONS_PER_IMAGE * len(accepted)
    assert summary["rejected"] == len(rejected) == CAPTIONS_PER_IMAGE * (NUM_SAMPLES - len(accepted))
    assert summary["balanced"] and summary["rejected_by_step"] == {"describe": len(rejected)}
    assert summary["counters"]["samples_drawn"] == NUM_SAMPLES
    assert summary["counters"]["samples_undescribed"] == NUM_SAMPLES - len(accepted)
    on_disk = json.load(open(os.path.join(mixed_run["output_dir"], "summary.json")))
    assert on_disk["written"] == summary["written"] and on_disk["num_samples"] == NUM_SAMPLES
    written_ids = sorted(r["pair_id"] for r in records)
    assert written_ids == sorted(audio_clevrgan.pair_id(split_for_index(i, NUM_SAMPLES, FRACTIONS), i, k)
                                 for i in accepted for k in range(CAPTIONS_PER_IMAGE))
    assert len(set(written_ids) | {r["id"] for r in rejected}) == summary["read"]


def test_latents_are_stored_and_regenerate_the_stored_image(mixed_run, workdir):
    expected = mixed_run["expected"]
    generator = gan_io.load_generator(workdir)
    for record in mixed_run["records"]:
        i = index_of(record["pair_id"])
        np.testing.assert_array_equal(record["latent"], expected["latents"][i])
        scene = json.loads(record["scene_json"])
        assert scene["latent_seed"] == expected["seeds"][i] and scene["image_index"] == i
        again = gan_io.latents_for_seeds([scene["latent_seed"]], generator.latent_dim)
        np.testing.assert_array_equal(again[0], record["latent"])
        redrawn = np.asarray(generator.to_uint8(generator.generate(record["latent"][None])))[0]
        assert redrawn.shape == record["image"].shape == (32, 32, 3)
        assert np.abs(redrawn.astype(int) - record["image"].astype(int)).max() <= 1


def test_scene_json_is_the_segmenters_description_and_captions_say_it(mixed_run):
    expected = mixed_run["expected"]
    for record in mixed_run["records"]:
        i = index_of(record["pair_id"])
        scene = json.loads(record["scene_json"])
        assert scene["confident"] and scene["reason"] == ""
        truth = expected["descriptions"][i]
        assert [{k: o[k] for k in speech.ATTRIBUTES} for o in scene["objects"]] == \
               [{k: o[k] for k in speech.ATTRIBUTES} for o in truth["objects"]]
        assert scene["relationships"] == truth["relationships"]
        mentioned = speech.caption_words(record["caption"])
        for obj in scene["objects"]:
            for attribute in speech.ATTRIBUTES:
                assert obj[attribute] in mentioned[attribute], (record["caption"], obj)
        assert record["caption_style"] == "synthetic"
        assert record["logmel"].shape == (record["nframes"], 40)
    captions = {}
    for record in mixed_run["records"]:
        captions.setdefault(index_of(record["pair_id"]), set()).add(record["caption"])
    assert any(len(c) == CAPTIONS_PER_IMAGE for c in captions.values())   # K captions vary in wording


def test_splits_by_index_and_test_voices_never_train(mixed_run):
    records = mixed_run["records"]
    for record in records:
        i = index_of(record["pair_id"])
        assert record["split"] == split_for_index(i, NUM_SAMPLES, FRACTIONS)
        assert record["pair_id"].startswith(record["split"] + "/")
        assert speech.Voice.from_spec(record["voice"]).split == voice_split(record["split"])
    train = {speech.Voice.from_spec(r["voice"]).id for r in records if r["split"] == "train"}
    test = {speech.Voice.from_spec(r["voice"]).id for r in records if r["split"] == "test"}
    assert train and test and not train & test
    assert {r["split"] for r in records if index_of(r["pair_id"]) == TEST_INDEX} == {"test"}


def test_rejections_carry_the_segmenters_reason_and_latent_seed(mixed_run):
    expected, threshold = mixed_run["expected"], mixed_run["threshold"]
    rejected = mixed_run["rejected"]
    assert rejected
    for r in rejected:
        i = index_of(r["id"])
        assert i not in mixed_run["accepted"]
        assert r["step"] == "describe"
        assert r["reason"].startswith("segmenter: ") and f"< min_confidence {threshold:g}" in r["reason"]
        assert r["source"] == f"latent_seed={expected['seeds'][i]}"


def test_default_confidence_rejects_every_undescribable_sample(workdir, tmp_path):
    """At the demo/cpu/paper presets' min_confidence 0.6 the untrained segmenter describes nothing: all
    dead-lettered, none lost."""
    from tfvgs.config import get_config
    assert {get_config(name).segmenter.min_confidence for name in ("demo", "cpu", "paper")} == {0.6}
    out = str(tmp_path / "pairs")
    summary = audio_clevrgan.run(["--workdir", workdir, "--output_dir", out, "--num_samples", "3", *FLAGS,
                                  "--set", "segmenter.min_confidence=0.6"])
    assert (summary["read"], summary["written"], summary["rejected"]) == (3, 0, 3)
    rejected = common.read_jsonl(os.path.join(out, "rejected.jsonl"))
    assert sorted(index_of(r["id"]) for r in rejected) == [0, 1, 2]
    assert all("min_confidence 0.6" in r["reason"] or "no object found" in r["reason"] for r in rejected)
    assert read_records(out) == []


def test_missing_models_are_named_with_the_command_that_trains_them(workdir, tmp_path):
    empty, out = str(tmp_path / "empty"), str(tmp_path / "out")
    with pytest.raises(FileNotFoundError) as error:
        audio_clevrgan.run(["--workdir", empty, "--output_dir", out, "--num_samples", "2", *FLAGS])
    message = str(error.value)
    assert gan_io.generator_path(empty) in message and "--stage gan" in message
    assert layout.model_path(empty, "segmenter") in message and "--stage segmenter" in message
    assert not os.path.exists(out)   # the pipeline never started

    only_gan = str(tmp_path / "only_gan")
    os.makedirs(os.path.join(only_gan, "gan"))
    for name in ("generator.keras", "generator.json"):
        tf.io.gfile.copy(os.path.join(workdir, "gan", name), os.path.join(only_gan, "gan", name))
    with pytest.raises(FileNotFoundError) as error:
        audio_clevrgan.run(["--workdir", only_gan, "--output_dir", out, "--num_samples", "2", *FLAGS])
    assert layout.model_path(only_gan, "segmenter") in str(error.value)
    assert gan_io.generator_path(only_gan) not in str(error.value)


def test_a_generator_that_stopped_growing_is_refused(tmp_path):
    partial = str(tmp_path / "w")
    save_untrained_models(partial, get_config("tiny"), fully_grown=False)
    with pytest.raises(ValueError, match="stopped growing"):
        audio_clevrgan.run(["--workdir", partial, "--output_dir", str(tmp_path / "out"), "--num_samples", "2",
                            *FLAGS])


@pytest.mark.parametrize("flag", ["--num_samples", "--captions_per_image"])
def test_non_positive_counts_are_refused(workdir, tmp_path, flag):
    with pytest.raises(ValueError, match=f"{flag} must be positive"):
        audio_clevrgan.run(["--workdir", workdir, "--output_dir", str(tmp_path / "o"), flag, "0", *FLAGS])
