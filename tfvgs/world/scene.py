"""Scene records in CLEVR's scene-JSON format, plus the camera and lights needed to re-render them exactly.

A scene is a plain JSON-serialisable dict, so it can travel through Beam, TFRecords and `scenes_<split>.json` files:

    {"image_index", "image_filename", "split", "image_size",
     "objects": [{"shape", "color", "material", "size", "3d_coords": [x, y, z], "rotation", "pixel_coords"}],
     "relationships": {"behind" | "front" | "left" | "right": [[j, ...] for each object i]},
     "directions": {"behind" | "front" | "left" | "right" | "above" | "below": [dx, dy, dz]},
     "camera": {"location", "look_at", "up", "fov_degrees"},
     "lights": [{"name", "position", "intensity"}, ...]}

`relationships[rel][i]` lists the objects j that are `rel` of object i, computed from camera-plane direction vectors
exactly as CLEVR's `compute_all_relationships` does. `pixel_coords` is CLEVR's `[px, py, depth]` of the projected
object centre at `image_size` pixels (the size the scene was sampled at; `render` may render at any size).
`camera`, `lights` and `image_size` are ours: real CLEVR files lack them and get the canonical values.

Conventions, as CLEVR's generator made them: `rotation` is an angle about z in *radians* (CLEVR drew 360 * U[0, 1)
and passed that number to Blender's rotation_euler, which takes radians; we draw and read it the same way), and
`3d_coords` z is the object's centre height when it rests on the ground, r for spheres and cylinders and r / sqrt(2)
for cubes (CLEVR scales the cube by r / sqrt(2) and lifts it by the same amount); on reading it is recomputed
from shape and size, which matches CLEVR's value up to float noise.
"""
from __future__ import annotations

import copy
import json
import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from tfvgs.world.vocabulary import ATTRIBUTES, footprint_radius, object_half_height

# The default Blender camera that CLEVR's base scene uses, aimed at the origin. The square field of view frames the
# [-3, 3]^2 object area tighter than CLEVR's 480x320 frame so that small objects keep enough pixels at 64 px.
CANONICAL_CAMERA: Dict[str, Any] = {
    "location": [7.358891487121582, -6.925790786743164, 4.958309173583984],
    "look_at": [0.0, 0.0, 0.0],
    "up": [0.0, 0.0, 1.0],
    "fov_degrees": 38.0,
}

# Key light right of the camera and higher than CLEVR's (6.4, -2.9, 4.3), so that its shadows fall visibly
# back-left instead of hiding behind the objects; a weak fill from CLEVR's fill-lamp position on the left.
CANONICAL_LIGHTS: List[Dict[str, Any]] = [
    {"name": "key", "position": [5.5, -1.5, 7.0], "intensity": 0.9},
    {"name": "fill", "position": [-4.67112, -4.0136, 3.01122], "intensity": 0.22},
]

DEFAULT_IMAGE_SIZE = 128          # pixel_coords size for scenes that do not say (the paper's image size)
RELATION_EPS = 0.2                # CLEVR's `compute_all_relationships` eps
RELATIONS = ("behind", "front", "left", "right")


# ----------------------------------------------------------------------------------------------------------------
# Camera geometry


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _unit(v):
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    return (v[0] / n, v[1] / n, v[2] / n)


def camera_basis(camera: Dict[str, Any]):
    """Returns (location, forward, right, up) as float64 arrays (unit axes) for a right-handed z-up world."""
    location = [float(c) for c in camera["location"]]
    forward = _unit([float(a) - b for a, b in zip(camera["look_at"], location)])
    right = _unit(_cross(forward, [float(c) for c in camera["up"]]))
    up = _cross(right, forward)
    return tuple(np.array(v, dtype=np.float64) for v in (location, forward, right, up))


def project_points(camera: Dict[str, Any], points, image_size: int, basis=None):
    """Projects world points [..., 3] to continuous pixel coordinates (x right, y down, pixel centres at +0.5).

    Returns (x, y, depth) where depth is the distance along the viewing axis (CLEVR's camera-view z).
    `basis` may pass a precomputed `camera_basis(camera)`.
    """
    location, forward, right, up = camera_basis(camera) if basis is None else basis
    v = np.asarray(points, dtype=np.float64) - location
    depth = v @ forward
    tan_half = math.tan(math.radians(float(camera["fov_degrees"])) / 2.0)
    ndc_x = (v @ right) / (depth * tan_half)
    ndc_y = (v @ up) / (depth * tan_half)
    return (ndc_x + 1.0) * 0.5 * image_size, (1.0 - ndc_y) * 0.5 * image_size, depth


def pixel_coords(camera: Dict[str, Any], point: Sequence[float], image_size: int) -> List[float]:
    """CLEVR's `get_camera_coords`: [round(x * w), round(h - y * h), depth] of a world point."""
    x, y, depth = project_points(camera, np.asarray(point, dtype=np.float64)[None], image_size)
    return [int(round(float(x[0]))), int(round(float(y[0]))), float(depth[0])]


def camera_directions(camera: Dict[str, Any]) -> Dict[str, List[float]]:
    """CLEVR's six named directions: camera axes projected onto the ground plane (z up), as unit vectors."""
    _, forward, right, up = camera_basis(camera)
    behind = np.array([forward[0], forward[1], 0.0])
    behind /= np.linalg.norm(behind)
    left = np.array([-right[0], -right[1], 0.0])
    left /= np.linalg.norm(left)
    above = np.array([0.0, 0.0, 1.0 if up[2] >= 0 else -1.0])
    as_list = lambda v: [float(c) + 0.0 for c in v]  # +0.0 turns -0.0 into 0.0
    return {"behind": as_list(behind), "front": as_list(-behind), "left": as_list(left), "right": as_list(-left),
            "above": as_list(above), "below": as_list(-above)}


def compute_relationships(objects: Sequence[Dict[str, Any]], directions: Dict[str, Sequence[float]],
                          eps: float = RELATION_EPS) -> Dict[str, List[List[int]]]:
    """CLEVR's `compute_all_relationships`: j is `rel` of i when (coords_j - coords_i) . direction > eps."""
    coords = np.array([o["3d_coords"] for o in objects], dtype=np.float64).reshape(-1, 3)
    relationships = {}
    for name in RELATIONS:
        dots = (coords[None, :, :] - coords[:, None, :]) @ np.asarray(directions[name], dtype=np.float64)
        relationships[name] = [[j for j in range(len(objects)) if j != i and dots[i, j] > eps]
                               for i in range(len(objects))]
    return relationships


def image_filename(split: str, image_index: int) -> str:
    return f"CLEVR_{split}_{image_index:06d}.png"


def build_scene(objects: Sequence[Dict[str, Any]], camera: Dict[str, Any], lights: Sequence[Dict[str, Any]], *,
                image_size: int, image_index: int = 0, split: str = "train") -> Dict[str, Any]:
    """Assembles a scene record from objects (shape, color, material, size, 3d_coords, rotation), camera and lights,
    computing pixel_coords at `image_size`, directions and relationships."""
    directions = camera_directions(camera)
    objects = [dict(obj, pixel_coords=pixel_coords(camera, obj["3d_coords"], image_size)) for obj in objects]
    return {
        "image_index": int(image_index),
        "image_filename": image_filename(split, int(image_index)),
        "split": split,
        "image_size": int(image_size),
        "objects": objects,
        "relationships": compute_relationships(objects, directions),
        "directions": directions,
        "camera": copy.deepcopy(camera),
        "lights": copy.deepcopy(list(lights)),
    }


# ----------------------------------------------------------------------------------------------------------------
# Validation


def _vector(value, where: str, length: int = 3) -> List[float]:
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise ValueError(f"{where} must be a list of {length} numbers. Received: {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{where} must be a list of {length} finite numbers. Received: {value!r}")
        out.append(float(v))
    return out


def _number(value, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{where} must be a number in [{low}, {high}]. Received: {value!r}")
    return float(value)


def validate_object(obj: Any, source: str, index: int) -> Dict[str, Any]:
    """Normalises one object dict (without pixel_coords); errors name the source, object index and field."""
    where = f"{source}: object {index}"
    if not isinstance(obj, dict):
        raise ValueError(f"{where} must be a dict. Received: {obj!r}")
    out: Dict[str, Any] = {}
    for field in ("shape", "color", "material", "size"):
        if field not in obj:
            raise ValueError(f"{where} is missing field {field!r}. Received: object with fields {sorted(obj)}")
        value = obj[field]
        if value not in ATTRIBUTES[field]:
            raise ValueError(f"{where} field {field!r} has unknown value; expected one of {ATTRIBUTES[field]}. "
                             f"Received: {value!r}")
        out[field] = value
    if "3d_coords" not in obj:
        raise ValueError(f"{where} is missing field '3d_coords'. Received: object with fields {sorted(obj)}")
    x, y, _ = _vector(obj["3d_coords"], f"{where} field '3d_coords'")
    # Objects rest on the ground: z is the centre height implied by shape and size (see the module docstring).
    out["3d_coords"] = [x, y, object_half_height(out["shape"], out["size"])]
    out["rotation"] = _number(obj.get("rotation", 0.0), f"{where} field 'rotation'")
    return out


def validate_camera(camera: Any, source: str) -> Dict[str, Any]:
    where = f"{source}: camera"
    if not isinstance(camera, dict):
        raise ValueError(f"{where} must be a dict. Received: {camera!r}")
    for field in ("location", "look_at", "fov_degrees"):
        if field not in camera:
            raise ValueError(f"{where} is missing field {field!r}. Received: camera with fields {sorted(camera)}")
    out = {
        "location": _vector(camera["location"], f"{where} field 'location'"),
        "look_at": _vector(camera["look_at"], f"{where} field 'look_at'"),
        "up": _vector(camera.get("up", [0.0, 0.0, 1.0]), f"{where} field 'up'"),
        "fov_degrees": _number(camera["fov_degrees"], f"{where} field 'fov_degrees'", 1.0, 170.0),
    }
    forward = np.subtract(out["look_at"], out["location"])
    if np.linalg.norm(forward) < 1e-9 or np.linalg.norm(np.cross(forward, out["up"])) < 1e-9:
        raise ValueError(f"{where} must look somewhere other than its location and not along its up vector. "
                         f"Received: {camera!r}")
    return out


def validate_lights(lights: Any, source: str) -> List[Dict[str, Any]]:
    where = f"{source}: lights"
    if not isinstance(lights, list) or not lights:
        raise ValueError(f"{where} must be a non-empty list of light dicts. Received: {lights!r}")
    out = []
    for i, light in enumerate(lights):
        if not isinstance(light, dict) or "position" not in light or "intensity" not in light:
            raise ValueError(f"{where}[{i}] must be a dict with 'position' and 'intensity'. Received: {light!r}")
        out.append({"name": str(light.get("name", f"light{i}")),
                    "position": _vector(light["position"], f"{where}[{i}] field 'position'"),
                    "intensity": _number(light["intensity"], f"{where}[{i}] field 'intensity'", 0.0, 100.0)})
    return out


def validate_scene(scene: Any, source: str = "scene", *, image_size: Optional[int] = None) -> Dict[str, Any]:
    """Normalises a scene dict (ours or real CLEVR) into the record `render` and `edit_scene` expect.

    Fields we cannot use are dropped; a missing camera or lights get the canonical unjittered ones; z is set from
    shape and size; directions and relationships are recomputed from the camera. `pixel_coords` are recomputed at
    `image_size` when given, or when the scene has no camera (CLEVR's refer to Blender's 480x320 frame), or when
    missing; otherwise kept. Bad objects raise ValueError naming `source`, the object index, field and value.
    """
    if not isinstance(scene, dict):
        raise ValueError(f"{source}: a scene must be a dict. Received: {type(scene).__name__}")
    if "objects" not in scene or not isinstance(scene["objects"], list):
        raise ValueError(f"{source}: a scene must have an 'objects' list. Received: fields {sorted(scene)}")
    if len(scene["objects"]) > 254:
        raise ValueError(f"{source}: at most 254 objects fit in a uint8 instance mask. "
                         f"Received: {len(scene['objects'])} objects")
    has_camera = scene.get("camera") is not None
    camera = validate_camera(scene["camera"], source) if has_camera else copy.deepcopy(CANONICAL_CAMERA)
    lights = (validate_lights(scene["lights"], source) if scene.get("lights") is not None
              else copy.deepcopy(CANONICAL_LIGHTS))
    if image_size is None:
        image_size = scene.get("image_size", DEFAULT_IMAGE_SIZE)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"{source}: image_size must be a positive int. Received: {image_size!r}")
    recompute_pixels = not has_camera or "image_size" not in scene or scene["image_size"] != image_size
    objects = []
    for i, raw in enumerate(scene["objects"]):
        obj = validate_object(raw, source, i)
        kept = raw.get("pixel_coords")
        if recompute_pixels or not (isinstance(kept, (list, tuple)) and len(kept) == 3):
            obj["pixel_coords"] = pixel_coords(camera, obj["3d_coords"], image_size)
        else:
            obj["pixel_coords"] = [int(kept[0]), int(kept[1]), float(kept[2])]
        objects.append(obj)
    split = str(scene.get("split", "train"))
    index = scene.get("image_index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"{source}: image_index must be a non-negative int. Received: {index!r}")
    directions = camera_directions(camera)
    return {
        "image_index": index,
        "image_filename": str(scene.get("image_filename", image_filename(split, index))),
        "split": split,
        "image_size": image_size,
        "objects": objects,
        "relationships": compute_relationships(objects, directions),
        "directions": directions,
        "camera": camera,
        "lights": lights,
    }


# ----------------------------------------------------------------------------------------------------------------
# Files


def _open(path: str, mode: str):
    """Local files with `open`; URLs (gs://...) through tf.io.gfile, imported only then (the world needs no TF)."""
    if "://" in path:
        import tensorflow as tf
        return tf.io.gfile.GFile(path, mode)
    return open(path, mode)


def load_scenes_json(path: str) -> List[Dict[str, Any]]:
    """Reads a CLEVR `scenes_<split>.json` ({"info": ..., "scenes": [...]}) and validates every scene."""
    with _open(path, "r") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}). Received: a file of {f.tell()} bytes") from None
    if not isinstance(data, dict) or not isinstance(data.get("scenes"), list):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} must hold a dict with a 'scenes' list (CLEVR scenes_<split>.json). Received: {got}")
    return [validate_scene(scene, source=f"{path} scene {k}") for k, scene in enumerate(data["scenes"])]


def scenes_json_info(split: str) -> Dict[str, str]:
    """The "info" of a CLEVR-style scenes file (no date, so the same scenes give the same bytes)."""
    return {"split": split, "version": "tfvgs-world-1.0", "license": "Creative Commons Attribution (CC BY 4.0)"}


def write_scenes_json(path: str, scenes: Sequence[Dict[str, Any]], split: str) -> None:
    """Writes scenes as a CLEVR-style `scenes_<split>.json` (no date, so the same scenes give the same bytes)."""
    data = {"info": scenes_json_info(split), "scenes": list(scenes)}
    with _open(path, "w") as f:
        json.dump(data, f)
        f.write("\n")


# ----------------------------------------------------------------------------------------------------------------
# Edits


def footprints_overlap(objects: Sequence[Dict[str, Any]], index: int, min_distance: float = 0.0) -> bool:
    """True when object `index`'s ground footprint comes closer than `min_distance` to another object's."""
    a = objects[index]
    for j, b in enumerate(objects):
        if j == index:
            continue
        gap = math.hypot(a["3d_coords"][0] - b["3d_coords"][0], a["3d_coords"][1] - b["3d_coords"][1])
        if gap - footprint_radius(a["size"]) - footprint_radius(b["size"]) < min_distance:
            return True
    return False


def edit_scene(scene: Dict[str, Any], object_index: int, attribute: str, new_value: str) -> Dict[str, Any]:
    """Returns a deep copy of `scene` with one attribute of one object changed; camera and lights stay the same.

    A shape or size change moves the object's centre height (it keeps resting on the ground) and so its
    `pixel_coords`; relationships are recomputed (they ignore height, so they do not change). Interpenetration and
    visibility are not checked here; `random_edit` does that.
    """
    objects = scene.get("objects") if isinstance(scene, dict) else None
    if not isinstance(objects, list):
        raise ValueError(f"scene must be a scene dict with an 'objects' list. Received: {type(scene).__name__}")
    if isinstance(object_index, bool) or not isinstance(object_index, (int, np.integer)) \
            or not 0 <= object_index < len(objects):
        raise ValueError(f"object_index must be an int in [0, {len(objects)}). Received: {object_index!r}")
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {tuple(ATTRIBUTES)}. Received: {attribute!r}")
    if new_value not in ATTRIBUTES[attribute]:
        raise ValueError(f"new_value for {attribute} must be one of {ATTRIBUTES[attribute]}. Received: {new_value!r}")
    if objects[object_index][attribute] == new_value:
        raise ValueError(f"object {object_index} already has {attribute}={new_value!r}; an edit must change it. "
                         f"Received: new_value={new_value!r}")
    edited = copy.deepcopy(scene)
    obj = edited["objects"][int(object_index)]
    obj[attribute] = new_value
    obj["3d_coords"][2] = object_half_height(obj["shape"], obj["size"])
    camera = edited.get("camera") or CANONICAL_CAMERA
    obj["pixel_coords"] = pixel_coords(camera, obj["3d_coords"], edited.get("image_size", DEFAULT_IMAGE_SIZE))
    edited["relationships"] = compute_relationships(edited["objects"], camera_directions(camera))
    return edited
