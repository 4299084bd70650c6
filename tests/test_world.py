"""Tests of the built-in CLEVR-style world (tfvgs.world): sampling, rendering, scene JSON and edits.

All renders are 32 px with supersample 2 so the whole file runs in seconds.
"""
import copy
import json
import math

import numpy as np
import pytest
from PIL import Image

from tfvgs.world import (ATTRIBUTES, COLORS, SHAPES, SIZES, attribute_id, attribute_value, compute_relationships,
                         edit_scene, load_scenes_json, make_contact_sheet, object_pixel_counts, random_edit, render,
                         render_instance_mask, sample_and_render, sample_scene, save_png, validate_scene,
                         write_scenes_json)
from tfvgs.world.sampler import MIN_DISTANCE

SIZE, SS, MIN_PIXELS = 32, 2, 3
SAMPLING = dict(image_size=SIZE, supersample=SS, min_objects=2, max_objects=5, min_object_pixels=MIN_PIXELS)


def _sample(seed, **overrides):
    return sample_and_render(seed, **dict(SAMPLING, **overrides))


def _dilate(mask, steps=1):
    out = mask.copy()
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def _changed(a, b):
    return np.any(a.image != b.image, axis=-1)


def _without(scene, index):
    objects = [o for i, o in enumerate(scene["objects"]) if i != index]
    return validate_scene(dict(scene, objects=objects))


def _clevr_object(shape="sphere", color="red", material="rubber", size="large", xy=(0.0, 0.0), rotation=0.0):
    radius = SIZES[size] / (math.sqrt(2) if shape == "cube" else 1.0)
    return {"shape": shape, "color": color, "material": material, "size": size,
            "3d_coords": [xy[0], xy[1], radius], "rotation": rotation, "pixel_coords": [240, 160, 11.2]}


# ----------------------------------------------------------------------------------------------------------------
# Vocabulary


def test_attribute_ids_follow_the_fixed_order_and_invert():
    assert tuple(ATTRIBUTES) == ("shape", "color", "material", "size")
    assert ATTRIBUTES["color"] == tuple(COLORS) and ATTRIBUTES["shape"] == SHAPES
    for name, values in ATTRIBUTES.items():
        assert [attribute_id(name, v) for v in values] == list(range(1, len(values) + 1))
        assert [attribute_value(name, i + 1) for i in range(len(values))] == list(values)
    with pytest.raises(ValueError, match="Received: 'pink'"):
        attribute_id("color", "pink")


# ----------------------------------------------------------------------------------------------------------------
# Sampling


def test_sampling_is_deterministic_per_seed():
    scene_a, rendering_a = _sample(11)
    scene_b, rendering_b = _sample(11)
    scene_c, rendering_c = _sample(12)
    assert scene_a == scene_b
    assert np.array_equal(rendering_a.image, rendering_b.image)
    assert scene_a != scene_c and not np.array_equal(rendering_a.image, rendering_c.image)
    assert sample_scene(11, **SAMPLING) == scene_a          # the dict-only sampler draws the same scene


def test_sampled_scenes_respect_counts_spacing_and_ground_contact():
    for seed in range(6):
        scene, _ = _sample(seed, min_objects=3, max_objects=4)
        objects = scene["objects"]
        assert 3 <= len(objects) <= 4
        for i, a in enumerate(objects):
            x, y, z = a["3d_coords"]
            assert -3 <= x <= 3 and -3 <= y <= 3
            expected_z = SIZES[a["size"]] / (math.sqrt(2) if a["shape"] == "cube" else 1.0)
            assert z == pytest.approx(expected_z)
            for b in objects[i + 1:]:
                gap = math.hypot(x - b["3d_coords"][0], y - b["3d_coords"][1])
                assert gap - SIZES[a["size"]] - SIZES[b["size"]] >= MIN_DISTANCE


def test_impossible_visibility_gives_up_with_a_clear_error():
    with pytest.raises(ValueError, match=r"min_object_pixels=500 .*in 3 tries"):
        sample_scene(0, **dict(SAMPLING, min_object_pixels=500, max_tries=3))


# ----------------------------------------------------------------------------------------------------------------
# Rendering


def test_render_after_json_round_trip_reproduces_identical_bytes():
    scene, rendering = _sample(5)
    restored = json.loads(json.dumps(scene))
    again = render(restored, SIZE, SS)
    assert again.image.tobytes() == rendering.image.tobytes()
    assert np.array_equal(again.instance_mask, rendering.instance_mask)
    assert np.array_equal(again.attributes, rendering.attributes)
    assert validate_scene(restored) == scene                  # our records are already normal


def test_instance_mask_and_attribute_maps_agree():
    for seed in range(4):
        scene, rendering = _sample(seed)
        assert rendering.image.shape == (SIZE, SIZE, 3) and rendering.image.dtype == np.uint8
        assert rendering.instance_mask.dtype == np.uint8 and rendering.attributes.shape == (SIZE, SIZE, 4)
        objects = scene["objects"]
        counts = object_pixel_counts(rendering.instance_mask, len(objects))
        assert counts.min() >= MIN_PIXELS
        assert rendering.instance_mask.max() <= len(objects)
        background = rendering.instance_mask == 0
        assert background.any() and not rendering.attributes[background].any()
        for i, obj in enumerate(objects):
            expected = [attribute_id(name, obj[name]) for name in ATTRIBUTES]
            assert (rendering.attributes[rendering.instance_mask == i + 1] == expected).all()
        assert np.array_equal(render_instance_mask(scene, SIZE, SS), rendering.instance_mask)


def test_renders_square_images_at_several_sizes():
    scene, _ = _sample(2)
    for size, ss in ((16, 1), (32, 3), (48, 2)):
        rendering = render(scene, size, ss)
        assert rendering.image.shape == (size, size, 3)
        assert rendering.instance_mask.shape == (size, size)
    with pytest.raises(ValueError, match="image_size"):
        render(scene, 0)


def test_projected_centre_matches_rendered_sphere():
    scene = validate_scene({"objects": [_clevr_object(xy=(1.0, -0.5))]}, image_size=64)
    rows, cols = np.nonzero(render_instance_mask(scene, 64, 3))
    px, py, depth = scene["objects"][0]["pixel_coords"]
    assert abs(cols.mean() + 0.5 - px) < 1.0 and abs(rows.mean() + 0.5 - py) < 1.0
    assert depth > 0


def test_cube_rotation_is_in_radians_like_clevr_and_a_quarter_turn_is_invisible():
    """CLEVR's generator passed `rotation` to Blender's rotation_euler (radians), so it is read as radians."""
    base = 0.2
    masks = [render_instance_mask(validate_scene({"objects": [_clevr_object("cube", rotation=r)]}), 48, 2)
             for r in (base, base + math.pi / 2, base + 2 * math.pi, base + math.pi / 4)]
    assert np.array_equal(masks[0], masks[1]) and np.array_equal(masks[0], masks[2])
    assert not np.array_equal(masks[0], masks[3])


def test_metal_and_rubber_render_differently():
    rubber = validate_scene({"objects": [_clevr_object(material="rubber")]})
    metal = validate_scene({"objects": [_clevr_object(material="metal")]})
    a, b = render(rubber, SIZE, SS), render(metal, SIZE, SS)
    inside = a.instance_mask == 1
    assert np.array_equal(a.instance_mask, b.instance_mask)
    assert np.abs(a.image[inside].astype(int) - b.image[inside].astype(int)).mean() > 5
    # The highlight makes metal spheres reach near-white somewhere.
    assert b.image[inside].min(axis=-1).max() > a.image[inside].min(axis=-1).max()


# ----------------------------------------------------------------------------------------------------------------
# Scene JSON


def test_relationships_are_mirrored_and_follow_the_directions():
    scene, _ = _sample(3, min_objects=4, max_objects=5)
    relations = scene["relationships"]
    coords = np.array([o["3d_coords"] for o in scene["objects"]])
    for a, b in (("left", "right"), ("front", "behind")):
        for i in range(len(coords)):
            assert i not in relations[a][i]
            for j in relations[a][i]:
                assert i in relations[b][j]
                assert (coords[j] - coords[i]) @ np.array(scene["directions"][a]) > 0.2
    assert relations == compute_relationships(scene["objects"], scene["directions"])
    assert scene["directions"]["left"] == [-v for v in scene["directions"]["right"]]


def test_real_clevr_scene_without_camera_renders():
    clevr = {"image_index": 7, "image_filename": "CLEVR_val_000007.png", "split": "val",
             "objects": [_clevr_object("cylinder", "cyan", "metal", "large", (-1.5, 1.0), 117.0),
                         _clevr_object("cube", "yellow", "rubber", "small", (2.0, -1.0), 33.0)],
             "relationships": {}, "directions": {}}
    scene = validate_scene(clevr, source="scenes_val.json scene 0")
    assert scene["camera"]["look_at"] == [0.0, 0.0, 0.0] and len(scene["lights"]) == 2
    assert scene["image_filename"] == "CLEVR_val_000007.png" and scene["split"] == "val"
    direct, normalised = render(clevr, SIZE, SS), render(scene, SIZE, SS)
    assert np.array_equal(direct.image, normalised.image)
    assert set(np.unique(direct.instance_mask)) == {0, 1, 2}


@pytest.mark.parametrize("mutate, expected", [
    (lambda o: o.pop("color"), r"my.json scene 3: object 1 is missing field 'color'"),
    (lambda o: o.update(shape="pyramid"), r"my.json scene 3: object 1 field 'shape' has unknown value.*'pyramid'"),
    (lambda o: o.update(size="medium"), r"object 1 field 'size' .*Received: 'medium'"),
    (lambda o: o.update({"3d_coords": [1.0, "a", 0.7]}), r"object 1 field '3d_coords' .*Received: \[1.0, 'a', 0.7\]"),
    (lambda o: o.pop("3d_coords"), r"object 1 is missing field '3d_coords'"),
])
def test_validate_scene_errors_name_source_object_field_and_value(mutate, expected):
    scene = {"objects": [_clevr_object(), _clevr_object(xy=(2.0, 2.0))]}
    mutate(scene["objects"][1])
    with pytest.raises(ValueError, match=expected):
        validate_scene(scene, source="my.json scene 3")


def test_validate_scene_rejects_non_scenes():
    with pytest.raises(ValueError, match="'objects' list"):
        validate_scene({"objs": []}, source="x")
    with pytest.raises(ValueError, match="camera is missing field 'fov_degrees'"):
        validate_scene({"objects": [], "camera": {"location": [1, 1, 1], "look_at": [0, 0, 0]}})


def test_scenes_json_file_round_trip(tmp_path):
    scenes = [_sample(seed, image_index=seed, split="val")[0] for seed in range(2)]
    path = str(tmp_path / "scenes_val.json")
    write_scenes_json(path, scenes, "val")
    with open(path) as f:
        data = json.load(f)
    assert data["info"]["split"] == "val" and len(data["scenes"]) == 2
    assert load_scenes_json(path) == scenes
    data["scenes"][1]["objects"][0]["material"] = "glass"
    with open(path, "w") as f:
        json.dump(data, f)
    with pytest.raises(ValueError, match=r"scenes_val.json scene 1: object 0 field 'material'.*'glass'"):
        load_scenes_json(path)


# ----------------------------------------------------------------------------------------------------------------
# Edits


def _json_differences(a, b, prefix=""):
    """Paths where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in sorted(set(a) | set(b)) for p in _json_differences(a.get(k), b.get(k), f"{prefix}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in _json_differences(x, y, f"{prefix}/{i}")]
    return [] if a == b else [prefix]


def test_edit_scene_changes_exactly_one_attribute_of_one_object():
    scene, _ = _sample(4)
    original = copy.deepcopy(scene)
    obj = scene["objects"][0]
    new_color = next(c for c in COLORS if c != obj["color"])
    assert _json_differences(scene, edit_scene(scene, 0, "color", new_color)) == ["/objects/0/color"]
    new_size = "small" if obj["size"] == "large" else "large"
    resized = edit_scene(scene, 0, "size", new_size)
    differences = set(_json_differences(scene, resized))
    assert {"/objects/0/size", "/objects/0/3d_coords/2", "/objects/0/pixel_coords/2"} <= differences
    assert differences <= {"/objects/0/size", "/objects/0/3d_coords/2", "/objects/0/pixel_coords/0",
                           "/objects/0/pixel_coords/1", "/objects/0/pixel_coords/2"}
    assert resized["objects"][0]["3d_coords"][2] == pytest.approx(obj["3d_coords"][2] * SIZES[new_size]
                                                                  / SIZES[obj["size"]])
    assert scene == original                                         # the input is not modified
    with pytest.raises(ValueError, match="already has"):
        edit_scene(scene, 0, "color", obj["color"])
    with pytest.raises(ValueError, match="object_index"):
        edit_scene(scene, 99, "color", new_color)


def test_colour_and_material_edits_change_only_the_objects_pixels():
    # All rubber: no other object reflects the edited one, so nothing outside its own outline may change.
    objects = [_clevr_object("cube", "red", "rubber", "large", (-1.5, 0.5), 20.0),
               _clevr_object("sphere", "blue", "rubber", "large", (1.0, 1.0)),
               _clevr_object("cylinder", "green", "rubber", "small", (0.5, -1.8))]
    scene = validate_scene({"objects": objects}, image_size=SIZE)
    before = render(scene, SIZE, SS)
    for attribute, value in (("color", "yellow"), ("material", "metal")):
        after = render(edit_scene(scene, 1, attribute, value), SIZE, SS)
        changed = _changed(before, after)
        assert changed.any()
        assert not (changed & ~_dilate(before.instance_mask == 2)).any()
        assert np.array_equal(before.instance_mask, after.instance_mask)


def test_size_and_shape_edits_change_only_where_the_object_or_its_shadow_is():
    scene, before = _sample(8, min_objects=3, max_objects=4)
    for attribute, value in (("size", None), ("shape", None)):
        obj = scene["objects"][1]
        value = ("small" if obj["size"] == "large" else "large") if attribute == "size" else \
            next(s for s in SHAPES if s != obj["shape"])
        edited = edit_scene(scene, 1, attribute, value)
        after = render(edited, SIZE, SS)
        # Where object 1 shows itself, its shadow or its reflections: what removing it changes, before and after.
        empty = render(_without(scene, 1), SIZE, SS)
        footprint = _dilate(_changed(before, empty) | _changed(after, empty))
        changed = _changed(before, after)
        assert changed.any() and not (changed & ~footprint).any()
        others = (before.instance_mask != 2) & (after.instance_mask != 2)
        assert np.array_equal(before.attributes[others & (before.instance_mask == after.instance_mask)],
                              after.attributes[others & (before.instance_mask == after.instance_mask)])


def test_random_edit_is_valid_seeded_and_described():
    scene, _ = _sample(9, min_objects=3, max_objects=5)
    edited, edit = random_edit(scene, np.random.default_rng(1), image_size=SIZE, supersample=SS,
                               min_object_pixels=MIN_PIXELS)
    again, edit_again = random_edit(scene, 1, image_size=SIZE, supersample=SS, min_object_pixels=MIN_PIXELS)
    assert (edited, edit) == (again, edit_again)
    i, attribute = edit["object_index"], edit["attribute"]
    assert edit["old_value"] == scene["objects"][i][attribute] != edit["new_value"]
    assert edited["objects"][i][attribute] == edit["new_value"]
    for j, (a, b) in enumerate(zip(scene["objects"], edited["objects"])):
        changed = [name for name in ATTRIBUTES if a[name] != b[name]]
        assert changed == ([attribute] if j == i else [])
    counts = object_pixel_counts(render_instance_mask(edited, SIZE, SS), len(edited["objects"]))
    assert counts.min() >= MIN_PIXELS


def test_random_edit_refuses_edits_that_collide():
    # Two small objects whose footprints would overlap if either became large: only non-size edits are possible.
    objects = [_clevr_object(size="small", xy=(0.0, 0.0)), _clevr_object(size="small", xy=(0.9, 0.0))]
    scene = validate_scene({"objects": objects}, image_size=SIZE)
    for seed in range(5):
        _, edit = random_edit(scene, seed, image_size=SIZE, supersample=SS)
        assert edit["attribute"] != "size"
    with pytest.raises(ValueError, match="No valid edit"):
        random_edit(scene, 0, attributes=("size",), image_size=SIZE, supersample=SS, max_tries=5)


# ----------------------------------------------------------------------------------------------------------------
# Contact sheets


def test_contact_sheet_lays_out_captioned_images(tmp_path):
    images = [np.full((16, 16, 3), v, dtype=np.uint8) for v in (0, 80, 160, 240, 40)]
    sheet = make_contact_sheet(images, [f"caption number {i} " * 3 for i in range(5)], columns=2, scale=4)
    assert sheet.size[0] > 2 * 64 and sheet.size[1] > 3 * 64          # 3 rows of 64 px tiles plus caption space
    path = str(tmp_path / "sheet.png")
    save_png(path, np.asarray(sheet))
    assert Image.open(path).size == sheet.size
    with pytest.raises(ValueError, match="captions must match"):
        make_contact_sheet(images, ["one"])


def test_a_narrower_view_of_a_smaller_area_makes_objects_cover_more_pixels():
    from tfvgs.world import object_pixel_counts as counts_of
    options = dict(image_size=32, min_objects=2, max_objects=2, min_object_pixels=0, supersample=1)
    clevr, zoomed = [], []
    for seed in range(12):
        _, wide = sample_and_render(seed, **options)
        scene, near = sample_and_render(seed, **options, fov_degrees=26.0, object_area=2.0)
        clevr.append(counts_of(wide.instance_mask, 2).mean())
        zoomed.append(counts_of(near.instance_mask, 2).mean())
        assert scene["camera"]["fov_degrees"] == 26.0            # the record keeps the camera it was rendered with
        assert all(abs(c) <= 2.0 for o in scene["objects"] for c in o["3d_coords"][:2])
    assert np.mean(zoomed) > 1.5 * np.mean(clevr), (np.mean(zoomed), np.mean(clevr))
    for bad in (dict(fov_degrees=1.0), dict(object_area=0.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            sample_scene(0, **options, **bad)


def test_sampling_options_carry_every_world_field_the_sampler_takes():
    import inspect
    from tfvgs.config import WorldConfig
    from tfvgs.world import sampling_options
    world_config = WorldConfig(fov_degrees=30.0, object_area=2.5)
    options = sampling_options(world_config)
    assert options["fov_degrees"] == 30.0 and options["object_area"] == 2.5
    sampler_args = set(inspect.signature(sample_scene).parameters) - {"seed", "image_index", "split", "max_tries"}
    assert set(options) == sampler_args
    import dataclasses
    assert set(options) == {f.name for f in dataclasses.fields(WorldConfig)}


def test_contact_sheet_rows_are_as_tall_as_their_own_captions():
    images = [np.full((16, 16, 3), 100, dtype=np.uint8)] * 4
    long, short = "a long caption that wraps over several lines " * 3, "short"
    one_long_row = make_contact_sheet(images, [long, short, short, short], columns=2, scale=4)
    two_long_rows = make_contact_sheet(images, [long, short, long, short], columns=2, scale=4)
    no_long_row = make_contact_sheet(images, [short] * 4, columns=2, scale=4)
    assert no_long_row.size[1] < one_long_row.size[1] < two_long_rows.size[1]
    # the long row's extra height appears once, not once per row
    assert one_long_row.size[1] - no_long_row.size[1] == two_long_rows.size[1] - one_long_row.size[1]
