"""Tests of the segmenter-based GAN quality report (tfvgs.evaluation.gan_quality)."""
import json
import os

import numpy as np
import pytest

from tfvgs.evaluation import gan_quality
from tfvgs.world.vocabulary import ATTRIBUTES


def _obj(shape="cube", color="red", material="rubber", size="small"):
    return {"shape": shape, "color": color, "material": material, "size": size}


# --- distances ---------------------------------------------------------------------------------------------------

def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((200, 8))
    assert gan_quality.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    small = gan_quality.frechet_distance(features, features + 0.5)
    large = gan_quality.frechet_distance(features, features + 2.0)
    assert small == pytest.approx(8 * 0.5 ** 2, rel=1e-3)      # a pure mean shift: ||delta||^2
    assert large > small > 0.0
    scaled = gan_quality.frechet_distance(features, features * 3.0)
    assert scaled > 1.0                                        # covariance differences count too


def test_frechet_distance_with_fewer_samples_than_dimensions_is_finite():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 16)), rng.standard_normal((5, 16))
    assert np.isfinite(gan_quality.frechet_distance(a, b))


def test_kernel_distance_is_near_zero_for_one_distribution_and_larger_for_a_shift():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((300, 8)), rng.standard_normal((300, 8))
    same = gan_quality.kernel_distance(a, b, num_subsets=20, subset_size=100, seed=0)
    shifted = gan_quality.kernel_distance(a, b + 1.0, num_subsets=20, subset_size=100, seed=0)
    assert abs(same["kid"]) < 3 * same["kid_std"] + 1e-3
    assert shifted["kid"] > 10 * max(abs(same["kid"]), same["kid_std"])


def test_mmd2_unbiased_matches_a_direct_double_sum():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((5, 3))
    k = lambda u, v: (u @ v / 3 + 1.0) ** 3   # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(6) for j in range(6) if i != j) / 30
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(x[i], y[j]) for i in range(6) for j in range(5)) / 30
    assert gan_quality.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy)


def test_distances_reject_mismatched_features():
    with pytest.raises(ValueError, match="Feature sizes differ"):
        gan_quality.frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="features_a"):
        gan_quality.kernel_distance(np.zeros((1, 3)), np.zeros((4, 3)))


# --- description statistics --------------------------------------------------------------------------------------

def test_attribute_distribution_and_total_variation_on_hand_built_descriptions():
    generated = [{"objects": [_obj(), _obj(color="blue")], "confident": True},
                 {"objects": [_obj(shape="sphere", color="blue")], "confident": False},
                 {"objects": [], "confident": False}]
    real = [{"objects": [_obj(shape="sphere"), _obj(shape="sphere")], "confident": True}]
    p, q = gan_quality.attribute_distribution(generated), gan_quality.attribute_distribution(real)
    assert set(p) == set(gan_quality.ATTRIBUTE_FAMILIES)
    assert set(p["color"]) == set(ATTRIBUTES["color"])
    assert p["shape"]["cube"] == pytest.approx(2 / 3) and p["shape"]["sphere"] == pytest.approx(1 / 3)
    assert p["color"]["blue"] == pytest.approx(2 / 3) and p["color"]["gray"] == 0.0
    assert q["shape"]["sphere"] == 1.0
    assert gan_quality.total_variation(p["shape"], q["shape"]) == pytest.approx(2 / 3)
    assert gan_quality.total_variation(p["color"], q["color"]) == pytest.approx(2 / 3)
    assert gan_quality.total_variation(p["material"], q["material"]) == pytest.approx(0.0)
    assert gan_quality.total_variation(p["shape"], gan_quality.attribute_distribution([])["shape"]) is None
    assert [gan_quality.well_formed(d) for d in generated] == [True, False, False]
    assert gan_quality.object_count_distribution(generated) == {"0": pytest.approx(1 / 3), "1": pytest.approx(1 / 3),
                                                                 "2": pytest.approx(1 / 3)}


def test_kept_statistics_count_only_well_formed_images_and_expose_a_collapse():
    # Every confident sample is gray: well-formed is high, but the kept colours are not the rendered ones.
    generated = [{"objects": [_obj(color="gray")], "confident": True},
                 {"objects": [_obj(color="gray"), _obj(color="gray")], "confident": True},
                 {"objects": [_obj(color="red")], "confident": False}]
    real = [{"objects": [_obj(color="red")], "confident": True},
            {"objects": [_obj(color="blue"), _obj(color="gray")], "confident": True},
            {"objects": [_obj(color="gray")], "confident": False}]
    kept = gan_quality.kept_statistics(generated, real)
    assert (kept["num_generated"], kept["num_real"]) == (2, 2)
    assert kept["attributes"]["generated"]["color"]["gray"] == 1.0      # the unconfident red sample is left out
    assert kept["attributes"]["real"]["color"] == pytest.approx(
        dict(dict.fromkeys(ATTRIBUTES["color"], 0.0), red=1 / 3, blue=1 / 3, gray=1 / 3))
    assert kept["attributes"]["total_variation"]["color"] == pytest.approx(2 / 3)
    assert kept["attributes"]["total_variation"]["shape"] == pytest.approx(0.0)
    assert kept["mean_objects_generated"] == pytest.approx(1.5) and kept["mean_objects_real"] == pytest.approx(1.5)
    # Nothing kept on one side: no TV and no mean, rather than a misleading 0.
    none_kept = gan_quality.kept_statistics(generated[2:], real)
    assert none_kept["num_generated"] == 0 and none_kept["mean_objects_generated"] is None
    assert all(tv is None for tv in none_kept["attributes"]["total_variation"].values())


def _scored(shape=0.9, color=0.9, material=0.9, size=0.9):
    return dict(_obj(), attribute_confidence={"shape": shape, "color": color, "material": material, "size": size})


def test_rejection_statistics_name_the_weakest_family_of_the_least_confident_object():
    descriptions = [{"objects": [_scored()], "confident": True},
                    {"objects": [], "confident": False},
                    # the least confident object is the second (0.4 < 0.5); its weakest family is colour
                    {"objects": [_scored(shape=0.5), _scored(color=0.4, material=0.45)], "confident": False},
                    {"objects": [_scored(size=0.55)], "confident": False},
                    {"objects": [_scored(shape=0.3)], "confident": False}]
    stats = gan_quality.rejection_statistics(descriptions)
    assert stats == {"num_images": 5, "kept": 1, "no_object": 1,
                     "weakest_family": {"shape": 1, "color": 1, "material": 0, "size": 1}}
    assert stats["kept"] + stats["no_object"] + sum(stats["weakest_family"].values()) == stats["num_images"]


def test_attribute_distribution_rejects_unknown_values():
    with pytest.raises(ValueError, match="Unknown color"):
        gan_quality.attribute_distribution([{"objects": [_obj(color="mauve")]}])


def test_families_match_the_segmenter():
    from tfvgs.models.attribute_segmenter import ATTRIBUTE_FAMILIES
    assert gan_quality.ATTRIBUTE_FAMILIES == ATTRIBUTE_FAMILIES


# --- end to end on tiny untrained models -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_models():
    import keras

    from tfvgs.config import get_config
    from tfvgs.gan import ProgressiveGenerator
    from tfvgs.models.attribute_segmenter import AttributeSegmenter
    config = get_config("tiny")
    keras.utils.set_random_seed(0)
    g = config.gan
    generator = ProgressiveGenerator(latent_dim=g.latent_dim, max_resolution=config.world.image_size,
                                     fmap_base=g.fmap_base, fmap_max=g.fmap_max)
    generator(np.zeros([1, g.latent_dim], np.float32))
    segmenter = AttributeSegmenter(width=config.segmenter.width, depth=config.segmenter.depth, seed=0)
    size = config.world.image_size
    segmenter(np.zeros([1, size, size, 3], np.float32))
    # Untrained, the segmenter sees no foreground; a high foreground bias makes it describe one object per image,
    # so the attribute statistics and plots get numbers to work on.
    bias = segmenter.heads["foreground"].bias
    bias.assign(np.full(bias.shape, 5.0, np.float32))
    return config, generator, segmenter


def test_segmenter_features_are_pooled_bottleneck_activations(tiny_models):
    config, _, segmenter = tiny_models
    images = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    features = gan_quality.segmenter_features(segmenter, images)
    assert features.shape == (3, segmenter.width * 2 ** segmenter.depth)
    assert np.all(features >= 0.0)                           # after the bottleneck's ReLU
    np.testing.assert_allclose(gan_quality.segmenter_features(segmenter, images[:1]), features[:1], atol=1e-5)
    with pytest.raises(ValueError, match="AttributeSegmenter"):
        gan_quality.segmenter_features(lambda x: x, images)


def test_report_runs_end_to_end_and_writes_json_plots_and_history(tiny_models, tmp_path):
    config, generator, segmenter = tiny_models
    reals = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    report = gan_quality.quality_report(generator, segmenter, reals, 7, config, seed=3, batch_size=4,
                                        kid_subsets=3, info={"images_shown": 1000})
    assert report["num_samples"] == 7 and report["num_real"] == 6
    assert np.isfinite(report["fid"]) and report["fid"] >= 0.0 and np.isfinite(report["kid"])
    assert 0.0 <= report["well_formed_fraction"] <= 1.0
    assert report["images_shown"] == 1000
    assert report["attributes"]["num_objects_generated"] >= 7      # every image is foreground: >= 1 object each
    for family in gan_quality.ATTRIBUTE_FAMILIES:
        assert sum(report["attributes"]["generated"][family].values()) == pytest.approx(1.0)
        assert 0.0 <= report["attributes"]["total_variation"][family] <= 1.0
    assert sum(report["object_counts"]["generated"].values()) == pytest.approx(1.0)
    kept = report["kept"]
    assert kept["num_generated"] == round(report["well_formed_fraction"] * 7)
    assert kept["num_real"] == round(report["real_well_formed_fraction"] * 6)
    for side, count in (("generated", 7), ("real", 6)):
        rejected = report["rejected"][side]
        assert rejected["num_images"] == count
        assert rejected["kept"] + rejected["no_object"] + sum(rejected["weakest_family"].values()) == count
    assert report["rejected"]["generated"]["kept"] == kept["num_generated"]

    # The same seeds give the same samples, so the same report.
    again = gan_quality.quality_report(generator, segmenter, reals, 7, config, seed=3, batch_size=5, kid_subsets=3)
    assert again["fid"] == pytest.approx(report["fid"], rel=1e-4, abs=1e-6)

    out = str(tmp_path / "quality")
    paths = gan_quality.write_report(report, out)
    with open(paths["report"]) as f:
        assert json.load(f)["fid"] == pytest.approx(report["fid"])
    for name in ("attributes", "object_counts", "history_plot"):
        with open(paths[name], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    gan_quality.write_report(dict(report, images_shown=2000, fid=report["fid"] / 2), out)
    history = gan_quality.read_history(out)
    assert [r["images_shown"] for r in history] == [1000, 2000]
    gan_quality.write_report(report, out, append_history=False)
    assert len(gan_quality.read_history(out)) == 2


def test_report_at_a_lower_level_upscales_the_samples(tiny_models):
    config, generator, segmenter = tiny_models
    images = gan_quality.generate_images(generator, [0, 1], level=1)
    assert images.shape == (2, 32, 32, 3) and images.min() >= -1.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images[:, ::4, ::4], images[:, 3::4, 3::4])   # 8 px blown up 4x


def test_report_rejects_bad_inputs(tiny_models):
    config, generator, segmenter = tiny_models
    with pytest.raises(ValueError, match="real_images"):
        gan_quality.quality_report(generator, segmenter, np.zeros((4, 16, 16, 3), np.float32), 4, config)
    with pytest.raises(ValueError, match="num_samples"):
        gan_quality.quality_report(generator, segmenter, np.zeros((4, 32, 32, 3), np.float32), 1, config)


def test_command_line_reads_a_workdir_and_rendered_scenes(tiny_models, tmp_path):
    from beam_pipelines import render_scenes

    from tfvgs import gan_io
    config, generator, segmenter = tiny_models
    scenes = str(tmp_path / "scenes")
    render_scenes.run(["--output_dir", scenes, "--num_scenes", "12", "--config", "tiny"])
    workdir = tmp_path / "work"
    os.makedirs(workdir / "gan")
    os.makedirs(workdir / "segmenter")
    gan_io.save_generator(generator, str(workdir / "gan"), {"images_shown": 1600, "fully_grown": True})
    segmenter.save(str(workdir / "segmenter" / "model.keras"))
    config.save(str(workdir / "gan" / "config.json"))
    report = gan_quality.run(gan_quality.parse_args(["--workdir", str(workdir), "--data_dir", scenes,
                                                     "--split", "train", "--num_samples", "4"]))
    assert report["num_real"] == 4 and report["images_shown"] == 1600
    out = workdir / "gan" / "quality"
    assert (out / "quality.json").exists() and (out / "history.png").exists()
    assert len(gan_quality.read_history(str(out))) == 1
