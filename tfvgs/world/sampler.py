"""Seeded random scenes and random single-attribute edits, following CLEVR's `render_images.py` sampling rules.

Every draw comes from `numpy.random.default_rng(seed)`, never global state, so a seed names a scene: Beam workers
can regenerate any scene from its index, and tests can rely on it.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from tfvgs.world.renderer import Rendering, _finish, _trace, object_pixel_counts, render_instance_mask
from tfvgs.world.scene import CANONICAL_CAMERA, CANONICAL_LIGHTS, build_scene, camera_directions, edit_scene, \
    footprints_overlap
from tfvgs.world.vocabulary import ATTRIBUTES, COLORS, MATERIALS, SHAPES, SIZES, object_half_height

OBJECT_AREA = 3.0               # object centres are drawn uniformly from [-3, 3]^2 (CLEVR)
MIN_DISTANCE = 0.25             # CLEVR --min_dist: gap between footprints
MARGIN = 0.4                    # CLEVR --margin: objects differ by more than this along the left and front axes
MAX_PLACEMENT_TRIES = 50        # CLEVR --max_retries: tries to place one object before restarting the layout

SeedLike = Union[int, Sequence[int], np.random.SeedSequence]


def _jitter(point, amount: float, rng: np.random.Generator):
    point = np.asarray(point, dtype=np.float64)
    if amount > 0:
        point = point + rng.uniform(-amount, amount, size=3)
    return [float(v) for v in point]


def _place_objects(num_objects: int, directions: Dict[str, Any], rng: np.random.Generator,
                   object_area: float = OBJECT_AREA):
    """One CLEVR layout: sizes, positions with spacing and margins, then shape, colour, material and rotation.

    Returns None when an object could not be placed in MAX_PLACEMENT_TRIES (the caller starts over, as CLEVR does).
    """
    axes = [np.asarray(directions[name][:2]) for name in ("left", "right", "front", "behind")]
    placed = []
    for _ in range(num_objects):
        size = str(rng.choice(list(SIZES)))
        radius = SIZES[size]
        for _ in range(MAX_PLACEMENT_TRIES):
            x, y = (float(v) for v in rng.uniform(-object_area, object_area, size=2))
            good = True
            for other in placed:
                dx, dy = x - other["3d_coords"][0], y - other["3d_coords"][1]
                if math.hypot(dx, dy) - radius - SIZES[other["size"]] < MIN_DISTANCE or \
                        any(0 < dx * axis[0] + dy * axis[1] < MARGIN for axis in axes):
                    good = False
                    break
            if good:
                break
        else:
            return None
        shape = str(rng.choice(SHAPES))
        placed.append({
            "shape": shape,
            "color": str(rng.choice(list(COLORS))),
            "material": str(rng.choice(MATERIALS)),
            "size": size,
            "3d_coords": [x, y, object_half_height(shape, size)],
            "rotation": float(360.0 * rng.random()),   # CLEVR's draw; read as radians (renderer)
        })
    return placed


def _check_ranges(image_size, min_objects, max_objects, min_object_pixels, camera_jitter, light_jitter, max_tries,
                  fov_degrees=38.0, object_area=OBJECT_AREA):
    if not (isinstance(min_objects, int) and isinstance(max_objects, int) and 1 <= min_objects <= max_objects <= 254):
        raise ValueError(f"Need ints 1 <= min_objects <= max_objects <= 254. "
                         f"Received: min_objects={min_objects!r}, max_objects={max_objects!r}")
    if not isinstance(min_object_pixels, int) or min_object_pixels < 0:
        raise ValueError(f"min_object_pixels must be a non-negative int. Received: {min_object_pixels!r}")
    if min_object_pixels > image_size * image_size:
        raise ValueError(f"min_object_pixels cannot exceed the {image_size}x{image_size} image. "
                         f"Received: {min_object_pixels}")
    for name, value in (("camera_jitter", camera_jitter), ("light_jitter", light_jitter)):
        if not isinstance(value, (int, float)) or not 0 <= value <= 5:
            raise ValueError(f"{name} must be a number in [0, 5]. Received: {value!r}")
    if not isinstance(max_tries, int) or max_tries < 1:
        raise ValueError(f"max_tries must be a positive int. Received: {max_tries!r}")
    if not isinstance(fov_degrees, (int, float)) or not 5 <= fov_degrees <= 120:
        raise ValueError(f"fov_degrees must be a number in [5, 120]. Received: {fov_degrees!r}")
    if not isinstance(object_area, (int, float)) or not 0.5 <= object_area <= 10:
        raise ValueError(f"object_area must be a number in [0.5, 10]. Received: {object_area!r}")


def _sample(seed, image_size, min_objects, max_objects, min_object_pixels, camera_jitter, light_jitter, supersample,
            image_index, split, max_tries, fov_degrees=38.0, object_area=OBJECT_AREA):
    _check_ranges(image_size, min_objects, max_objects, min_object_pixels, camera_jitter, light_jitter, max_tries,
                  fov_degrees, object_area)
    rng = np.random.default_rng(seed)
    camera = copy.deepcopy(CANONICAL_CAMERA)
    camera["fov_degrees"] = float(fov_degrees)
    camera["location"] = _jitter(camera["location"], camera_jitter, rng)
    lights = [dict(light, position=_jitter(light["position"], light_jitter, rng)) for light in CANONICAL_LIGHTS]
    directions = camera_directions(camera)
    # The count is drawn once, as in CLEVR: redrawing it after a rejected layout would favour fewer objects.
    num_objects = int(rng.integers(min_objects, max_objects + 1))
    best = None
    for _ in range(max_tries):
        objects = _place_objects(num_objects, directions, rng, object_area)
        if objects is None:
            continue
        scene = build_scene(objects, camera, lights, image_size=image_size, image_index=image_index, split=split)
        traced = _trace(scene, image_size, supersample)
        fewest = int(object_pixel_counts(traced.mask, num_objects).min())
        if fewest >= min_object_pixels:
            return scene, traced
        best = fewest if best is None else max(best, fewest)
    raise ValueError(f"Could not sample a scene with {num_objects} objects each covering at least "
                     f"min_object_pixels={min_object_pixels} of {image_size}x{image_size} pixels in {max_tries} tries "
                     f"(seed {seed!r}; the best try's least visible object had {best} pixels). Lower "
                     f"min_object_pixels or max_objects, or raise image_size. Received: "
                     f"min_object_pixels={min_object_pixels}")


def sample_scene(seed: SeedLike, *, image_size: int = 128, min_objects: int = 3, max_objects: int = 10,
                 min_object_pixels: int = 40, camera_jitter: float = 0.5, light_jitter: float = 1.0,
                 supersample: int = 3, image_index: int = 0, split: str = "train",
                 max_tries: int = 200, fov_degrees: float = 38.0, object_area: float = OBJECT_AREA) -> Dict[str, Any]:
    """A random CLEVR-style scene record, the same for the same seed.

    Like CLEVR: the camera and lights are jittered by up to +-`camera_jitter` / `light_jitter` world units per axis;
    objects are placed in [-object_area, object_area]^2 (CLEVR: 3) at least MIN_DISTANCE apart and MARGIN apart along
    the left/front axes; the camera sees `fov_degrees` (CLEVR: 38; less zooms in, so that objects cover more pixels
    of a small image); a layout
    in which any object covers fewer than `min_object_pixels` pixels of the instance mask (rendered at `image_size`
    with `supersample`) is thrown away and another drawn, up to `max_tries` times before a ValueError.
    """
    scene, _ = _sample(seed, image_size, min_objects, max_objects, min_object_pixels, camera_jitter, light_jitter,
                       supersample, image_index, split, max_tries, fov_degrees, object_area)
    return scene


def sample_and_render(seed: SeedLike, *, image_size: int = 128, min_objects: int = 3, max_objects: int = 10,
                      min_object_pixels: int = 40, camera_jitter: float = 0.5, light_jitter: float = 1.0,
                      supersample: int = 3, image_index: int = 0, split: str = "train",
                      max_tries: int = 200, fov_degrees: float = 38.0,
                      object_area: float = OBJECT_AREA) -> Tuple[Dict[str, Any], Rendering]:
    """`sample_scene` plus its rendering, reusing the primary rays traced for the visibility check (cheaper than
    `render(sample_scene(...))`, with identical bytes)."""
    scene, traced = _sample(seed, image_size, min_objects, max_objects, min_object_pixels, camera_jitter,
                            light_jitter, supersample, image_index, split, max_tries, fov_degrees, object_area)
    return scene, _finish(traced)


def sampling_options(world_config) -> Dict[str, Any]:
    """The keyword arguments of `sample_scene` / `sample_and_render` that a config's `world` section sets (the one
    place where WorldConfig fields become sampler arguments)."""
    w = world_config
    return dict(image_size=w.image_size, min_objects=w.min_objects, max_objects=w.max_objects,
                min_object_pixels=w.min_object_pixels, camera_jitter=w.camera_jitter, light_jitter=w.light_jitter,
                supersample=w.supersample, fov_degrees=w.fov_degrees, object_area=w.object_area)


def random_edit(scene: Dict[str, Any], rng: Union[np.random.Generator, SeedLike], *,
                image_size: Optional[int] = None, min_object_pixels: int = 1, supersample: int = 3,
                attributes: Sequence[str] = tuple(ATTRIBUTES), max_tries: int = 50
                ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Changes one random attribute of one random object to a different random value.

    Edits that make footprints overlap (a size increase) or leave any object with fewer than `min_object_pixels`
    pixels at `image_size` (default: the scene's) are refused and another is drawn, up to `max_tries` times.
    Returns (edited scene, {"object_index", "attribute", "old_value", "new_value"}).
    """
    if not isinstance(scene, dict) or not isinstance(scene.get("objects"), list) or not scene["objects"]:
        raise ValueError(f"scene must be a scene dict with a non-empty 'objects' list. Received: {scene!r:.200}")
    unknown = [a for a in attributes if a not in ATTRIBUTES]
    if unknown or not attributes:
        raise ValueError(f"attributes must be a non-empty subset of {tuple(ATTRIBUTES)}. Received: {attributes!r}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    image_size = int(scene.get("image_size", 128)) if image_size is None else image_size
    objects = scene["objects"]
    for _ in range(max_tries):
        index = int(rng.integers(len(objects)))
        attribute = str(rng.choice(list(attributes)))
        old_value = objects[index][attribute]
        new_value = str(rng.choice([v for v in ATTRIBUTES[attribute] if v != old_value]))
        edited = edit_scene(scene, index, attribute, new_value)
        if attribute in ("size", "shape"):   # only these move surfaces, so only these can collide or hide objects
            if footprints_overlap(edited["objects"], index):
                continue
            counts = object_pixel_counts(render_instance_mask(edited, image_size, supersample), len(objects))
            if counts.min() < min_object_pixels:
                continue
        return edited, {"object_index": index, "attribute": attribute, "old_value": old_value,
                        "new_value": new_value}
    raise ValueError(f"No valid edit found in {max_tries} tries (every edit tried made objects overlap or cover fewer "
                     f"than min_object_pixels={min_object_pixels} pixels). Received: scene with "
                     f"{len(objects)} objects, attributes={tuple(attributes)}")
