"""Concept clusters, GAN unit ranking and edit success (tfvgs.edits): numpy-only pieces on planted data."""
import json
import os

import numpy as np
import pytest

from tfvgs.edits.concept_clusters import (ConceptClusters, binarize, cluster_probabilities, cluster_scores,
                                          cluster_segmentation, cluster_units, cooccurrence, dendrogram_figure,
                                          unit_thresholds)
from tfvgs.edits.edit_success import (attribute_value_maps, changed_attributes, edit_changed_caption,
                                      edit_succeeded, label_by_effect, label_clusters, success_rate,
                                      target_object)
from tfvgs.edits.unit_ranking import interpolation_matrix, rank_units, resize_maps

GROUPS = [np.array([1, 4, 7, 10, 13]), np.array([2, 5, 8, 11, 14]), np.array([3, 6, 9, 12, 15])]
NOISE_UNITS = np.array([0, 16, 17])
DEAD_UNITS = np.array([18, 19])


def planted_activations(rows=6000, seed=0):
    """[rows, 20]: three groups of five units sharing events on 1% of the rows each, three independent noise
    units, two dead (always zero) units."""
    rng = np.random.default_rng(seed)
    activations = rng.normal(size=(rows, 20))
    for group in GROUPS:
        events = rng.choice(rows, rows // 100, replace=False)
        activations[np.ix_(events, group)] += 6.0 + 0.1 * rng.normal(size=(len(events), len(group)))
    activations[:, DEAD_UNITS] = 0.0
    return activations


def as_sets(clusters):
    return sorted(sorted(int(u) for u in members) for members in clusters)


# ----------------------------------------------------------------------------------------------------------------
# Concept clusters


def test_thresholds_binarize_and_cooccurrence_agree_with_direct_counts():
    activations = planted_activations(rows=3000)
    thresholds = unit_thresholds(activations, 0.99)
    np.testing.assert_allclose(thresholds, np.quantile(activations, 0.99, axis=0))
    binary = binarize(activations, thresholds)
    assert binary.dtype == np.bool_
    live = np.setdiff1d(np.arange(20), DEAD_UNITS)
    np.testing.assert_array_equal(binary[:, live].sum(axis=0), 30)     # exactly the top 1% of 3000 rows
    assert not binary[:, DEAD_UNITS].any()
    expected = binary.astype(np.int64).T @ binary.astype(np.int64)
    counts = cooccurrence(binary, chunk_rows=700)                         # chunks that do not divide the rows
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, expected)
    halves = cooccurrence(binary[:1000]) + cooccurrence(binary[1000:])
    np.testing.assert_array_equal(halves, expected)


def test_cluster_units_recovers_planted_groups_and_lists_dead_units():
    activations = planted_activations()
    counts = cooccurrence(binarize(activations, unit_thresholds(activations, 0.99)))
    clusters = cluster_units(counts, num_clusters=len(GROUPS) + len(NOISE_UNITS))
    assert as_sets(clusters.clusters) == as_sets([*GROUPS, *[[u] for u in NOISE_UNITS]])
    assert [len(c) for c in clusters.clusters] == [5, 5, 5, 1, 1, 1]
    assert [int(c[0]) for c in clusters.clusters] == [1, 2, 3, 0, 16, 17]   # by size, then first unit
    np.testing.assert_array_equal(clusters.dead_units, DEAD_UNITS)
    np.testing.assert_array_equal(clusters.units, np.setdiff1d(np.arange(20), DEAD_UNITS))
    assert clusters.linkage.shape == (17, 4)
    labels = clusters.labels()
    assert (labels[DEAD_UNITS] == -1).all() and (labels[GROUPS[0]] == labels[GROUPS[0][0]]).all()


def test_cluster_units_with_fewer_clusters_keeps_each_group_whole():
    activations = planted_activations(seed=1)
    counts = cooccurrence(binarize(activations, unit_thresholds(activations)))
    for method in ("average", "complete"):
        clusters = cluster_units(counts, num_clusters=3, method=method, min_count=5)
        labels = clusters.labels()
        for group in GROUPS:
            assert len(set(labels[group].tolist())) == 1, method


def test_cluster_units_edge_cases_and_bad_input():
    counts = np.zeros((4, 4), np.int64)
    counts[2, 2] = 7
    single = cluster_units(counts, num_clusters=3)
    assert as_sets(single.clusters) == [[2]] and single.dead_units.tolist() == [0, 1, 3]
    assert cluster_units(np.zeros((3, 3), np.int64), 2).clusters == []
    with pytest.raises(ValueError, match="symmetric"):
        cluster_units(np.array([[1, 2], [0, 1]]), 2)
    with pytest.raises(ValueError, match="method"):
        cluster_units(np.eye(3, dtype=np.int64), 2, method="ward")
    with pytest.raises(ValueError, match="num_clusters"):
        cluster_units(np.eye(3, dtype=np.int64), 0)


def test_concept_clusters_json_round_trip(tmp_path):
    activations = planted_activations(rows=2000)
    clusters = cluster_units(cooccurrence(binarize(activations, unit_thresholds(activations))), num_clusters=4)
    path = tmp_path / "clusters.json"
    path.write_text(clusters.to_json())
    loaded = ConceptClusters.from_json(path.read_text())
    assert as_sets(loaded.clusters) == as_sets(clusters.clusters)
    assert [c.tolist() for c in loaded.clusters] == [c.tolist() for c in clusters.clusters]
    np.testing.assert_array_equal(loaded.dead_units, clusters.dead_units)
    np.testing.assert_array_equal(loaded.units, clusters.units)
    np.testing.assert_allclose(loaded.linkage, clusters.linkage)
    assert (loaded.num_units, loaded.method) == (20, "average")
    broken = json.loads(clusters.to_json())
    broken["dead_units"] = []
    with pytest.raises(ValueError, match="partition"):
        ConceptClusters.from_json(json.dumps(broken))
    with pytest.raises(ValueError, match="ConceptClusters JSON"):
        ConceptClusters.from_json("{}")


def test_dendrogram_figure_writes_png(tmp_path):
    activations = planted_activations(rows=2000)
    clusters = cluster_units(cooccurrence(binarize(activations, unit_thresholds(activations))), num_clusters=6)
    path = dendrogram_figure(clusters, str(tmp_path / "clusters.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    empty = ConceptClusters([], np.arange(3), np.zeros(0, np.int64), np.zeros((0, 4)), 3)
    assert os.path.getsize(dendrogram_figure(empty, str(tmp_path / "empty.png"))) > 0


def test_cluster_scores_and_probabilities():
    clusters = [[0, 1], [2], [3, 4, 5]]
    embedding = np.array([[2.0, 4.0, -1.0, 3.0, 3.0, 0.0],
                          [-1.0, -1.0, -2.0, 0.0, 0.0, -3.0]])
    scores = cluster_scores(embedding, clusters)
    np.testing.assert_allclose(scores, [[3.0, -1.0, 2.0], [-1.0, -2.0, -1.0]])
    np.testing.assert_allclose(cluster_scores(embedding[0], clusters), scores[0])
    probabilities = cluster_probabilities(scores)
    np.testing.assert_allclose(probabilities, [[0.6, 0.0, 0.4], [1 / 3, 1 / 3, 1 / 3]])
    with pytest.raises(ValueError, match="outside"):
        cluster_scores(embedding, [[6]])


def test_cluster_segmentation_selects_the_top_locations_of_the_cluster_units():
    rng = np.random.default_rng(3)
    feature_map = rng.uniform(0.0, 1.0, size=(10, 8, 8, 6))
    planted = np.zeros((10, 8, 8), bool)
    planted.reshape(-1)[rng.choice(640, 64, replace=False)] = True         # 10% of the locations
    feature_map[planted, 1] += 5.0
    feature_map[planted, 4] += 5.0
    feature_map[~planted, 2] += 50.0                                        # strong, but not a cluster unit
    segmentation = cluster_segmentation(feature_map, [1, 4], quantile=0.9)
    np.testing.assert_array_equal(segmentation, planted)
    default = cluster_segmentation(feature_map, [1, 4])                     # top 20%
    assert default[planted].all() and default.sum() == 128


# ----------------------------------------------------------------------------------------------------------------
# Unit ranking


def planted_units(mask_size, unit_size=8, images=30, units=24, planted=(5, 11, 19), seed=0):
    """Unit maps where `planted` units are high on the mask (upsampled to the unit grid) and the rest are noise;
    unit 0 is high everywhere, unit 1 is high off the mask."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((images, 4, 4)) < 0.3
    masks = resize_maps(coarse, (mask_size, mask_size), "nearest") > 0.5
    on_units = resize_maps(coarse, (unit_size, unit_size), "nearest") > 0.5
    activations = rng.normal(size=(images, unit_size, unit_size, units))
    for unit in planted:
        activations[..., unit] += 4.0 * on_units
    activations[..., 0] += 10.0
    activations[..., 1] += 4.0 * ~on_units
    return activations, masks


@pytest.mark.parametrize("mask_size,method", [(8, "bilinear"), (4, "bilinear"), (4, "nearest"), (14, "bilinear")])
def test_rank_units_finds_planted_units(mask_size, method):
    activations, masks = planted_units(mask_size)
    ranking = rank_units(activations, masks, quantile=0.9, method=method)
    assert sorted(ranking.top(3).tolist()) == [5, 11, 19]
    assert ranking.iou[[5, 11, 19]].min() > 2 * np.delete(ranking.iou, [5, 11, 19]).max()
    assert ranking.order.shape == ranking.iou.shape == ranking.thresholds.shape == (24,)
    assert sorted(ranking.order.tolist()) == list(range(24))


def test_rank_units_thresholds_are_per_unit_quantiles_and_iou_is_pooled():
    activations = np.zeros((2, 2, 2, 2))
    activations[0, 0, 0, 0] = 1.0          # unit 0 on at one location of image 0
    activations[..., 1] = np.arange(8).reshape(2, 2, 2)   # unit 1 on at its top location (image 1, bottom right)
    masks = np.zeros((2, 2, 2), bool)
    masks[0, 0, :] = True
    ranking = rank_units(activations, masks, quantile=0.8)
    np.testing.assert_allclose(ranking.iou, [0.5, 0.0])      # |{(0,0,0)}| / |{(0,0,0), (0,0,1)}|, disjoint
    np.testing.assert_allclose(ranking.thresholds, [np.quantile(activations[..., 0], 0.8),
                                                    np.quantile(activations[..., 1], 0.8)])
    assert ranking.order.tolist() == [0, 1]
    with pytest.raises(ValueError, match="masks"):
        rank_units(activations, masks.astype(np.float32))


def test_bilinear_halving_is_average_pooling_and_resize_keeps_constant_maps():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 8, 8, 2))
    pooled = maps.reshape(3, 4, 2, 4, 2, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(resize_maps(maps, (4, 4)), pooled, atol=1e-5)
    np.testing.assert_allclose(interpolation_matrix(8, 14).sum(axis=1), 1.0)
    np.testing.assert_array_equal(resize_maps(np.ones((1, 8, 8)), (14, 14)), np.ones((1, 14, 14)))
    np.testing.assert_array_equal(resize_maps(maps, (8, 8)), maps.astype(np.float32))


# ----------------------------------------------------------------------------------------------------------------
# Edit success


def obj(shape, color, material, size, x, y):
    return {"shape": shape, "color": color, "material": material, "size": size, "pixel_coords": [x, y, 0]}


ORIGINAL = {"image_size": 64, "objects": [obj("cube", "red", "metal", "large", 10, 12),
                                          obj("sphere", "blue", "rubber", "small", 40, 30),
                                          obj("cylinder", "gray", "rubber", "large", 50, 55)]}


def edited(*changes, drop=None, shift=(0, 0)):
    objects = [dict(o, pixel_coords=[o["pixel_coords"][0] + shift[0], o["pixel_coords"][1] + shift[1], 0])
               for o in ORIGINAL["objects"]]
    for index, family, value in changes:
        objects[index][family] = value
    if drop is not None:
        del objects[drop]
    return {"image_size": 64, "objects": objects[::-1]}      # order must not matter


def test_changed_attributes_on_hand_built_descriptions():
    assert changed_attributes(ORIGINAL, edited()) == set()
    assert changed_attributes(ORIGINAL, edited((1, "color", "yellow"))) == {"color"}
    assert changed_attributes(ORIGINAL, edited(drop=2)) == {"objects"}
    assert changed_attributes(ORIGINAL, edited((0, "shape", "sphere"), (2, "size", "small"))) == {"shape", "size"}
    assert changed_attributes(ORIGINAL, edited((1, "material", "metal"), shift=(3, -2))) == {"material"}
    assert changed_attributes(ORIGINAL, edited(shift=(30, 0))) == {"objects"}        # moved beyond 64 / 8 px
    assert changed_attributes(ORIGINAL, edited(shift=(30, 0)), max_distance=40) == set()


def test_changed_attributes_at_a_location_looks_at_the_edited_object_only():
    both = edited((0, "color", "green"), (1, "shape", "cube"))
    assert changed_attributes(ORIGINAL, both, location=(11, 11)) == {"color"}
    assert changed_attributes(ORIGINAL, both, location=(39, 33)) == {"shape"}
    assert changed_attributes(ORIGINAL, both, location=(25, 60)) == set()            # background
    assert changed_attributes(ORIGINAL, edited(drop=2), location=(10, 12)) == {"objects"}
    with pytest.raises(ValueError, match="max_distance"):
        changed_attributes({"objects": []}, {"objects": []})


def test_edit_succeeded_and_success_rate_arithmetic():
    assert edit_succeeded({"color"}, "color")
    assert not edit_succeeded({"color", "shape"}, "color") and not edit_succeeded(set(), "color")
    assert edit_changed_caption({"objects"}) and not edit_changed_caption(set())
    results = [({"color"}, "color"), ({"color", "size"}, "color"), (set(), "color"), ({"shape"}, "shape"),
               ({"size"}, None), (set(), None)]
    report = success_rate(results)
    assert report["n"] == 6 and report["succeeded"] == 3
    assert report["rate"] == pytest.approx(3 / 6)
    assert report["changed_fraction"] == pytest.approx(4 / 6)
    assert report["single_change_fraction"] == pytest.approx(3 / 6)
    assert report["per_family"] == {"color": {"n": 3, "succeeded": 1, "changed": 2},
                                    "shape": {"n": 1, "succeeded": 1, "changed": 1},
                                    "random": {"n": 2, "succeeded": 1, "changed": 1}}
    assert report["changed_counts"] == {"color": 2, "shape": 1, "size": 2}
    assert success_rate([])["rate"] is None
    json.dumps(report)


def test_label_clusters_on_planted_masks():
    rng = np.random.default_rng(5)
    ids = np.zeros((6, 16, 16, 4), np.int64)
    ids[:, 0:8, 0:8] = [1, 2, 1, 1]            # top-left: cube, red, rubber, large
    ids[:, 0:8, 8:16] = [2, 2, 2, 2]           # top-right: sphere, red, metal, small
    ids[:, 8:16, 8:16] = [2, 8, 2, 1]          # bottom-right: sphere, yellow, metal, large
    ids[:, 8:16, 0:8] = [3, 3, 1, 2]           # bottom-left: cylinder, blue, rubber, small
    maps = attribute_value_maps(ids)
    red = maps[("color", "red")].copy()
    yellow_cells = np.zeros((6, 8, 8), bool)
    yellow_cells[:, 4:8, 4:8] = True           # at half resolution: resized by nearest neighbour
    cube = maps[("shape", "cube")] & (rng.random((6, 16, 16)) < 0.9)
    labels = label_clusters({0: red, 1: yellow_cells, 2: cube, 3: np.zeros((6, 16, 16), bool)}, maps)
    assert labels[0][:2] == ("color", "red") and labels[0].iou == pytest.approx(1.0)
    assert labels[1][:2] == ("color", "yellow") and labels[1].iou == pytest.approx(1.0)
    assert labels[2][:2] == ("shape", "cube") and 0.8 < labels[2].iou < 1.0
    assert labels[3] == (None, None, 0.0)
    by_value = label_clusters({0: red}, {"yellow": maps[("color", "yellow")], "red": red})
    assert by_value[0] == ("color", "red", 1.0)
    with pytest.raises(ValueError, match="keys"):
        label_clusters({0: red}, {"crimson": red})


def _object(x, y, **attributes):
    values = {"shape": "cube", "color": "red", "material": "rubber", "size": "large"}
    values.update(attributes)
    return {"pixel_coords": [x, y, 0.5], **values}


def test_label_by_effect_names_the_family_its_ablations_change_most():
    cyan = _object(10, 10, color="cyan")
    gray = _object(10, 10, color="gray")
    outcomes = ([({"color"}, cyan)] * 3 + [({"color", "size"}, gray)] + [({"size"}, cyan)] * 2
                + [({"objects"}, None)] + [(set(), cyan)] * 3)
    label = label_by_effect(outcomes)
    assert (label.family, label.value, label.n) == ("color", "cyan", 10)
    assert label.share == pytest.approx(0.4) and label.changed_fraction == pytest.approx(0.7)
    # "objects" alone never names a cluster; nothing changed: no label
    assert label_by_effect([({"objects"}, None)] * 4)[:2] == (None, None)
    assert label_by_effect([(set(), cyan)] * 2) == (None, None, 0.0, 0.0, 2)
    # a tie goes to the first family in vocabulary order (shape before color)
    assert label_by_effect([({"color"}, cyan), ({"shape"}, cyan)]).family == "shape"
    with pytest.raises(ValueError, match="pairs"):
        label_by_effect([{"color"}])


def test_target_object_is_the_nearest_within_an_eighth_of_the_image():
    near, far = _object(5, 5, color="blue"), _object(25, 25, color="green")
    description = {"objects": [near, far], "image_size": 32}
    assert target_object(description, (6, 6)) is near
    assert target_object(description, (24, 27)) is far
    assert target_object(description, (15, 15)) is None            # 4 px is the reach at 32 px; both are farther
    assert target_object(description, (15, 15), max_distance=15) is near
    assert target_object({"objects": [], "image_size": 32}, (6, 6)) is None
    with pytest.raises(ValueError, match="location"):
        target_object(description, (6, float("nan")))


def test_edit_picture_has_a_header_naming_its_columns_and_one_row_per_pair(tmp_path):
    from PIL import Image
    from tfvgs.edits import edit_report
    rng = np.random.default_rng(0)
    edits = {"original": rng.uniform(-1, 1, [3, 32, 32, 3]).astype(np.float32),
             "edited": rng.uniform(-1, 1, [3, 32, 32, 3]).astype(np.float32),
             "valid": np.array([True, False, True]), "location": np.zeros([3, 8, 8], np.float32),
             "cluster": np.full([3], -1, np.int32)}
    path = str(tmp_path / "edits.png")
    edit_report.edit_picture(edits, path)
    picture = np.asarray(Image.open(path))
    tile = 32 * 4                                        # 32 px images are enlarged to 128
    assert picture.shape == (12 + 3 * (12 + tile), 3 * tile, 3)
    header = picture[:12]
    for column in range(3):                              # each column has its title written above it
        assert (header[:, column * tile:(column + 1) * tile] < 128).any(), column
    assert len(edit_report.COLUMN_TITLES) == 3
