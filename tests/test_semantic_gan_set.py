"""The semantic test set drawn from a GAN (`semantic_test_set --source gan`): pool, pairing and accounting.

The models are the untrained tiny generator and segmenter of test_audio_clevrgan. With min_confidence 0 every sample
in which the segmenter finds an object is described, so the test computes the pool itself and knows which pairs
each value can have and which it must reject.
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from beam_pipelines import audio_clevrgan, common, semantic_test_set
from tfvgs import data, schema, world
from tfvgs.evaluation import semantic_eval
from tfvgs.config import get_config
from tfvgs.seeding import stable_seed
from tests.test_audio_clevrgan import expected_samples, save_untrained_models

NUM_SAMPLES, PAIRS_PER_VALUE, VOICES = 24, 3, 1
FLAGS = ["--config", "tiny", "--set", "data.num_shards=1", "--set", "segmenter.min_confidence=0.0"]


def expected_pool(workdir, config):
    """{sample index: (latent seed, uint8 image, description)} of the confidently described samples, computed
    without Beam."""
    expected = expected_samples(workdir, config, NUM_SAMPLES, semantic_test_set.GAN_LATENT_NAMESPACE)
    return {i: (expected["seeds"][i], expected["images"][i], d) for i, d in enumerate(expected["descriptions"])
            if d["confident"]}


@pytest.fixture(scope="module")
def gan_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("semantic_gan")
    workdir, output_dir = str(root / "w"), str(root / "semantic")
    config = get_config("tiny")
    save_untrained_models(workdir, config)
    summary = semantic_test_set.run(["--source", "gan", "--workdir", workdir, "--num_samples", str(NUM_SAMPLES),
                                     "--output_dir", output_dir, "--pairs_per_value", str(PAIRS_PER_VALUE),
                                     "--voices_per_word", str(VOICES), "--batch_size", "5", *FLAGS])
    pairs = [tf.train.Example.FromString(r.numpy()).features.feature
             for r in tf.data.TFRecordDataset(data.list_shards(output_dir, schema.PAIRS))]
    return {"summary": summary, "pairs": pairs, "pool": expected_pool(workdir, config), "output_dir": output_dir,
            "rejected": common.read_jsonl(os.path.join(output_dir, "rejected.jsonl"))}


def attributes(obj):
    """An object's words and place (confidences differ in the last digits between tf.function and eager)."""
    return {k: obj[k] for k in (*world.ATTRIBUTES, "pixel_coords")}


def text(feature, key):
    return feature[key].bytes_list.value[0].decode()


def test_pairs_come_from_the_pool_and_counts_add_up(gan_set):
    s, pool = gan_set["summary"], gan_set["pool"]
    assert pool, "the planted segmenter describes no sample: nothing below would be tested"
    assert s["balanced"] and s["source"] == "gan" and s["num_samples"] == NUM_SAMPLES
    assert s["counters"][audio_clevrgan.SAMPLES_DRAWN] == NUM_SAMPLES
    assert s["counters"].get(audio_clevrgan.SAMPLES_UNDESCRIBED, 0) == NUM_SAMPLES - len(pool)
    expected_written, expected_rejected = {}, 0
    for family, values in world.ATTRIBUTES.items():
        expected_written[family] = 0
        for value in values:
            matched = 0
            for count in {len(d["objects"]) for _, _, d in pool.values()}:
                with_value = [any(o[family] == value for o in d["objects"]) for _, _, d in pool.values()
                              if len(d["objects"]) == count]
                matched += min(sum(with_value), len(with_value) - sum(with_value))
            possible = min(PAIRS_PER_VALUE, matched)
            expected_written[family] += possible
            expected_rejected += PAIRS_PER_VALUE - possible
    assert s["pairs_written"] == expected_written
    assert s["rejected"] == expected_rejected == len(gan_set["rejected"])
    assert sum(expected_written.values()) == len(gan_set["pairs"]) > 0
    assert s["read"] == sum(s["pairs_planned"].values()) + s["words_planned"]


def test_each_pair_is_a_positive_and_a_negative_gan_image_by_the_segmenter(gan_set):
    pool = gan_set["pool"]
    used = {}
    for p in gan_set["pairs"]:
        family, value = text(p, schema.FAMILY), text(p, schema.VALUE)
        counts = [len(json.loads(text(p, k))["objects"]) for k in (schema.POSITIVE_SCENE,
                                                                     schema.NEGATIVE_SCENE)]
        assert counts[0] == counts[1], "a pair's images must hold as many objects"
        for role, png_key, scene_key, wanted in (("positive", schema.POSITIVE_PNG,
                                                  schema.POSITIVE_SCENE, True),
                                                 ("negative", schema.NEGATIVE_PNG,
                                                  schema.NEGATIVE_SCENE, False)):
            scene = json.loads(text(p, scene_key))
            assert scene["source"] == "gan" and scene["split"] == "test"
            seed, image, description = pool[scene["image_index"]]
            assert scene["latent_seed"] == seed
            assert [attributes(o) for o in scene["objects"]] == [attributes(o) for o in description["objects"]]
            assert any(o[family] == value for o in description["objects"]) is wanted, (role, family, value)
            stored = schema.decode_png(p[png_key].bytes_list.value[0]).astype(int)
            assert np.abs(stored - image.astype(int)).max() <= 1   # batched tf.function vs eager: +-1 in uint8
            key = (family, value, role)
            assert scene["image_index"] not in used.setdefault(key, set()), "an image used twice for one value"
            used[key].add(scene["image_index"])


def sample(index, values):
    return {"index": index, "description": {"objects": [{"color": v} for v in values]}}


def test_pairs_match_object_counts_and_use_each_negative_once():
    positives = [sample(0, ["red"]), sample(1, ["red", "blue"]), sample(2, ["red", "red"]), sample(3, ["red"] * 3)]
    negatives = [sample(10, ["blue", "gray"]), sample(11, ["cyan"]), sample(12, ["blue"]), sample(13, ["gray"] * 2)]
    pairs = semantic_test_set.count_matched_pairs(positives, negatives)
    assert [(p["index"], n["index"]) for p, n in pairs] == [(0, 11), (1, 10), (2, 13)]   # no 3-object negative


def test_keeping_the_first_n_per_role_and_count_gives_the_whole_pools_pairs():
    """GanPairs never holds the pool, yet pairs exactly as count_matched_pairs over the whole pool in seeded order."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to
    config = get_config("tiny")
    rng = np.random.default_rng(3)
    colors, shapes = world.ATTRIBUTES["color"], world.ATTRIBUTES["shape"]
    pool = [{"index": i, "latent_seed": i, "png": b"png-%d" % i,
             "description": {"objects": [{"color": str(rng.choice(colors)), "shape": str(rng.choice(shapes)),
                                          "material": "rubber", "size": "small"}
                                         for _ in range(int(rng.integers(1, 4)))]}} for i in range(60)]
    counts = {family: 4 for family in world.ATTRIBUTES}

    def whole_pool_pairs(family, value):
        order = sorted(pool, key=lambda s: stable_seed(config.seed, "semantic_gan_pairs", family, value, s["index"]))
        pairs = semantic_test_set.count_matched_pairs(
            [s for s in order if semantic_test_set.has_value(s["description"], family, value)],
            [s for s in order if not semantic_test_set.has_value(s["description"], family, value)])
        return [(f"{family}/{value}/{i:05d}", p["index"], n["index"]) for i, (p, n) in enumerate(pairs[:4])]

    expected = [t for family, values in world.ATTRIBUTES.items() for value in values
                for t in whole_pool_pairs(family, value)]
    assert len(expected) < sum(4 * len(v) for v in world.ATTRIBUTES.values()), "some value must run short"

    def ids(record):
        f = tf.train.Example.FromString(record[1]).features.feature
        return (text(f, schema.PAIR_ID), json.loads(text(f, schema.POSITIVE_SCENE))["image_index"],
                json.loads(text(f, schema.NEGATIVE_SCENE))["image_index"])

    with TestPipeline() as p:
        out = p | beam.Create(pool) | semantic_test_set.GanPairs(config, counts, num_samples=60)
        assert_that(out.records | beam.Map(ids), equal_to(expected), label="pairs")
        rejected = out[common.REJECTED_TAG] | "Ids" >> beam.Map(lambda r: r["id"])
        missing = sorted({f"{f}/{v}/{i:05d}" for f, values in world.ATTRIBUTES.items() for v in values
                          for i in range(4)} - {e[0] for e in expected})
        assert_that(rejected, equal_to(missing), label="rejected")


def test_gan_images_are_never_audio_clevrgan_images():
    seed = get_config("tiny").seed
    ours = {stable_seed(seed, semantic_test_set.GAN_LATENT_NAMESPACE, i) for i in range(1000)}
    theirs = {audio_clevrgan.latent_seed(seed, i) for i in range(1000)}
    assert not ours & theirs


def test_short_pools_reject_pairs_with_the_counts(gan_set):
    assert gan_set["rejected"], "the untrained segmenter sees few values, so some pairs must be rejected"
    for r in gan_set["rejected"]:
        assert r["step"] == "pool"
        assert f"confidently described of {NUM_SAMPLES} GAN samples" in r["reason"] and "--num_samples" in r["reason"]


def test_gan_pairs_feed_the_semantic_accuracy(gan_set):
    """The records are the format `semantic_accuracy` reads, with the words written next to them."""
    from tests.test_test_sets import tiny_model
    result = semantic_eval.semantic_accuracy(tiny_model(), gan_set["output_dir"], gan_set["output_dir"],
                                             get_config("tiny"))
    assert result["n"] == gan_set["summary"]["pairs_written"]
    if all(result["n"].values()):
        assert 0.0 <= result["mean"] <= 1.0
    else:                # the untrained GAN's pool may leave a family without pairs: then no mean over families
        assert result["mean"] is None and result["families"] == [f for f, n in result["n"].items() if n]


@pytest.mark.parametrize("argv, needle", [
    (["--source", "gan", "--num_samples", "4"], "--source gan needs --workdir"),
    (["--num_samples", "4"], "--workdir and --num_samples are for --source gan"),
])
def test_gan_flags_are_checked(tmp_path, argv, needle):
    with pytest.raises(ValueError, match=needle.replace("-", r"\-")):
        semantic_test_set.run(["--output_dir", str(tmp_path / "o"), *argv, "--config", "tiny"])


def test_missing_gan_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="generator.keras"):
        semantic_test_set.run(["--source", "gan", "--workdir", str(tmp_path / "none"), "--num_samples", "4",
                               "--output_dir", str(tmp_path / "o"), "--config", "tiny"])
