"""Vectorised numpy ray casting of CLEVR-style scenes: image, instance mask and per-pixel attribute ids.

Why our own renderer: CLEVR needs Blender; this one needs only numpy, runs in Beam workers, and knows the exact
segmentation of every image, which the GAN-unit dissection and the semantic test need.

Model: a perspective pinhole camera over an infinite ground plane z = 0; spheres, z-rotated cubes (slab method in the
object frame) and vertical capped cylinders intersected analytically. Point lights with Lambert diffuse, hard cast
shadows (shadow rays against all objects) and Blinn-Phong highlights. Metal has a darker diffuse term, a strong
highlight and one reflection bounce (ground, objects, sky gradient) tinted by its colour; rubber is matte.
Shading is done in linear RGB and encoded with gamma 2.2.

Anti-aliasing: `supersample`^2 rays per pixel on a regular grid (with odd `supersample` the middle ray is the pixel
centre). Colours are averaged; `instance_mask` and `attributes` take the label covering the most rays of the pixel
(majority vote; ties go to the lowest label, i.e. background before object 0 before object 1 ...).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Dict, List, NamedTuple, Tuple

import numpy as np

from tfvgs.world.scene import CANONICAL_CAMERA, CANONICAL_LIGHTS, camera_basis, project_points, validate_camera, \
    validate_lights, validate_object
from tfvgs.world.vocabulary import ATTRIBUTE_NAMES, COLORS, attribute_id

_CUBE, _SPHERE, _CYLINDER = 0, 1, 2
_SHAPE_CODES = {"cube": _CUBE, "sphere": _SPHERE, "cylinder": _CYLINDER}
_GROUND, _SKY = -1, -2          # primary-hit ids that are not objects (they also index the albedo table from the end)

AMBIENT = 0.28                  # uniform light added to every lit surface
GROUND_ALBEDO = 0.30            # linear grey of the floor (sRGB ~150 when lit)
SKY_HORIZON, SKY_ZENITH = 0.08, 2.00   # linear grey of the environment seen in reflections (a bright studio top)
RUBBER_SPECULAR, RUBBER_SHININESS = 0.06, 10.0
METAL_DIFFUSE, METAL_REFLECTION, METAL_SPECULAR, METAL_SHININESS = 0.05, 0.8, 1.4, 40.0
METAL_SHEEN, METAL_SHEEN_SHININESS = 0.35, 8.0   # a broad second lobe so flat metal faces catch some light
SURFACE_OFFSET = 1e-3           # secondary rays start this far off the surface to avoid self-hits
MAX_IMAGE_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class Rendering:
    """One rendered scene. `attributes[..., c]` is the id of attribute `ATTRIBUTE_NAMES[c]` (0 = background)."""
    image: np.ndarray           # uint8 [H, W, 3]
    instance_mask: np.ndarray   # uint8 [H, W]: 0 background, i + 1 for object i
    attributes: np.ndarray      # uint8 [H, W, 4]: shape, color, material, size ids of the visible object


class _Objects:
    """Per-object geometry and material as plain Python floats (numpy scalars would upcast float32 arrays)."""

    def __init__(self, objects: List[Dict[str, Any]]):
        self.count = len(objects)
        self.kind, self.center, self.half, self.cos, self.sin, self.extent, self.bound = [], [], [], [], [], [], []
        albedo, metal, ids = [], [], []
        for obj in objects:
            kind = _SHAPE_CODES[obj["shape"]]
            x, y, half = obj["3d_coords"]
            # radians about z, as in CLEVR: its generator stored theta = 360 * U[0, 1) and handed that number to
            # Blender's rotation_euler, which is in radians, so real CLEVR scenes render as they were drawn
            theta = float(obj["rotation"])
            self.kind.append(kind)
            self.center.append((float(x), float(y), float(half)))
            self.half.append(float(half))
            self.cos.append(math.cos(theta))
            self.sin.append(math.sin(theta))
            # Half-width of the ground footprint's bounding square and radius of the bounding sphere.
            self.extent.append(half * math.sqrt(2.0) if kind == _CUBE else half)
            self.bound.append(half * (math.sqrt(3.0) if kind == _CUBE else math.sqrt(2.0) if kind == _CYLINDER
                                      else 1.0))
            albedo.append(_srgb_to_linear(np.asarray(COLORS[obj["color"]], dtype=np.float64) / 255.0))
            metal.append(obj["material"] == "metal")
            ids.append([attribute_id(name, obj[name]) for name in ATTRIBUTE_NAMES])
        # Rows: objects, then sky (index -2), then ground (index -1), so hit ids index it directly.
        self.albedo_table = np.array(albedo + [[0.0] * 3, [GROUND_ALBEDO] * 3], dtype=np.float32).reshape(-1, 3)
        self.metal_table = np.array(metal + [False, False], dtype=bool)
        self.attribute_table = np.array([[0] * 4] + ids, dtype=np.uint8).reshape(-1, 4)


def _srgb_to_linear(x):
    return np.power(x, 2.2)


def _linear_to_srgb8(x):
    return np.round(np.power(np.clip(x, 0.0, 1.0), 1.0 / 2.2) * 255.0).astype(np.uint8)


def _intersect(objs: _Objects, k: int, ox, oy, oz, dx, dy, dz):
    """Distance to the nearest hit in front of the origin of rays with object k, inf where they miss.

    Origins may be scalars (primary rays) or arrays; directions need not be normalised for the sphere and cube but
    are unit vectors everywhere in this module.
    """
    cx, cy, cz = objs.center[k]
    h = objs.half[k]
    ox, oy, oz = ox - cx, oy - cy, oz - cz
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if objs.kind[k] == _SPHERE:
            b = dx * ox + dy * oy + dz * oz
            disc = b * b - (ox * ox + oy * oy + oz * oz - h * h)
            t = -b - np.sqrt(disc)
            return np.where((disc > 0) & (t > 0), t, np.inf)
        if objs.kind[k] == _CUBE:
            co, si = objs.cos[k], objs.sin[k]
            tnear, tfar = -np.inf, np.inf
            for o, d in ((co * ox + si * oy, co * dx + si * dy), (co * oy - si * ox, co * dy - si * dx), (oz, dz)):
                inv = 1.0 / d
                t1, t2 = (-h - o) * inv, (h - o) * inv
                tnear = np.maximum(tnear, np.minimum(t1, t2))
                tfar = np.minimum(tfar, np.maximum(t1, t2))
            return np.where((tnear <= tfar) & (tnear > 0), tnear, np.inf)
        # Vertical cylinder of radius h between z = cz - h and cz + h; the bottom cap lies on the ground, unseen.
        a = dx * dx + dy * dy
        b = dx * ox + dy * oy
        disc = b * b - a * (ox * ox + oy * oy - h * h)
        ts = (-b - np.sqrt(disc)) / a
        side = (disc > 0) & (ts > 0) & (np.abs(oz + ts * dz) <= h)
        tc = (h - oz) / dz
        xc, yc = ox + tc * dx, oy + tc * dy
        cap = (tc > 0) & (xc * xc + yc * yc <= h * h)
        t = np.where(side, ts, np.inf)
        return np.where(cap, np.minimum(t, tc), t)


def _normals(objs: _Objects, k: int, px, py, pz):
    """Outward unit normals of object k at surface points (arrays)."""
    cx, cy, cz = objs.center[k]
    h = objs.half[k]
    x, y, z = px - cx, py - cy, pz - cz
    if objs.kind[k] == _SPHERE:
        return x / h, y / h, z / h
    if objs.kind[k] == _CUBE:
        co, si = objs.cos[k], objs.sin[k]
        lx, ly = co * x + si * y, co * y - si * x
        ax, ay, az = np.abs(lx), np.abs(ly), np.abs(z)
        on_x = (ax >= ay) & (ax >= az)
        on_y = ~on_x & (ay >= az)
        on_z = ~on_x & ~on_y
        nlx = np.where(on_x, np.sign(lx), 0.0).astype(np.float32)
        nly = np.where(on_y, np.sign(ly), 0.0).astype(np.float32)
        return co * nlx - si * nly, si * nlx + co * nly, np.where(on_z, np.sign(z), 0.0).astype(np.float32)
    cap = z >= h * (1.0 - 1e-3)
    r = np.maximum(np.sqrt(x * x + y * y), 1e-12)
    zero = np.zeros_like(x)
    return np.where(cap, zero, x / r), np.where(cap, zero, y / r), np.where(cap, 1.0, zero).astype(np.float32)


def _scene_parts(scene: Dict[str, Any]):
    """Camera, lights and objects of a scene dict; a missing camera or lights get the canonical ones."""
    if not isinstance(scene, dict) or not isinstance(scene.get("objects"), list):
        raise ValueError(f"scene must be a dict with an 'objects' list. Received: {type(scene).__name__}")
    if len(scene["objects"]) > 254:
        raise ValueError(f"At most 254 objects fit in a uint8 instance mask. Received: {len(scene['objects'])}")
    camera = validate_camera(scene["camera"], "scene") if scene.get("camera") is not None else CANONICAL_CAMERA
    lights = validate_lights(scene["lights"], "scene") if scene.get("lights") is not None else CANONICAL_LIGHTS
    objects = [validate_object(obj, "scene", i) for i, obj in enumerate(scene["objects"])]
    return camera, lights, _Objects(objects)


def _check_sizes(image_size, supersample):
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) \
            or not 1 <= image_size <= MAX_IMAGE_SIZE:
        raise ValueError(f"image_size must be an int in [1, {MAX_IMAGE_SIZE}]. Received: {image_size!r}")
    if isinstance(supersample, bool) or not isinstance(supersample, (int, np.integer)) or not 1 <= supersample <= 8:
        raise ValueError(f"supersample must be an int in [1, 8]. Received: {supersample!r}")


def _trace_primary(camera, objs: _Objects, image_size: int, supersample: int):
    """Casts the supersampled camera rays. Returns (origin, (dx, dy, dz), t, hit_id), all [n, n] with n = size * ss."""
    n = image_size * supersample
    basis = camera_basis(camera)
    location, forward, right, up = basis
    coords = ((np.arange(n, dtype=np.float64) + 0.5) / n * 2.0 - 1.0) * math.tan(
        math.radians(camera["fov_degrees"]) / 2.0)
    across, down = coords[None, :], -coords[:, None]
    d = [forward[i] + across * right[i] + down * up[i] for i in range(3)]
    norm = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    dx, dy, dz = (np.ascontiguousarray(c / norm, dtype=np.float32) for c in d)
    ox, oy, oz = (float(c) for c in location)

    with np.errstate(divide="ignore"):
        t = np.where(dz < 0, -oz / dz, np.inf).astype(np.float32)
    hit = np.where(dz < 0, _GROUND, _SKY).astype(np.int16)
    for k in range(objs.count):
        # Screen window of the object's bounding box: projection of a convex set lies in the hull of the corners'.
        cx, cy, _ = objs.center[k]
        e = objs.extent[k]
        corners = np.array([[cx + sx * e, cy + sy * e, z] for sx in (-1, 1) for sy in (-1, 1)
                            for z in (0.0, 2.0 * objs.half[k])])
        px, py, depth = project_points(camera, corners, n, basis)
        if np.any(depth <= 1e-6):
            r0, r1, c0, c1 = 0, n, 0, n
        else:
            c0, c1 = max(int(math.floor(px.min())) - 1, 0), min(int(math.ceil(px.max())) + 1, n)
            r0, r1 = max(int(math.floor(py.min())) - 1, 0), min(int(math.ceil(py.max())) + 1, n)
        if c0 >= c1 or r0 >= r1:
            continue
        window = (slice(r0, r1), slice(c0, c1))
        tk = _intersect(objs, k, ox, oy, oz, dx[window], dy[window], dz[window])
        closer = tk < t[window]
        t[window][closer] = tk[closer]
        hit[window][closer] = k
    return (ox, oy, oz), (dx, dy, dz), t, hit


@functools.lru_cache(maxsize=8)
def _sample_to_pixel(image_size: int, supersample: int) -> np.ndarray:
    """[n, n] index of the output pixel each supersampled ray belongs to (read-only, cached)."""
    pixel = np.arange(image_size * image_size).reshape(image_size, image_size)
    pixel = np.repeat(np.repeat(pixel, supersample, axis=0), supersample, axis=1)
    pixel.setflags(write=False)
    return pixel


def _majority_labels(hit: np.ndarray, image_size: int, supersample: int, num_objects: int) -> np.ndarray:
    """uint8 [size, size] label (0 background, i + 1 object i) covering most rays of each pixel."""
    labels = np.where(hit >= 0, hit + 1, 0).astype(np.intp)
    if supersample == 1:
        return labels.astype(np.uint8)
    num_labels = num_objects + 1
    pixel = _sample_to_pixel(image_size, supersample)
    counts = np.bincount((pixel * num_labels + labels).reshape(-1), minlength=image_size * image_size * num_labels)
    return np.argmax(counts.reshape(image_size, image_size, num_labels), axis=-1).astype(np.uint8)


def _shade(camera, lights, objs: _Objects, origin, dirs, t, hit) -> np.ndarray:
    """Linear RGB [n*n, 3] of the primary hits."""
    ox, oy, oz = origin
    dx, dy, dz = (d.reshape(-1) for d in dirs)
    t, hit = t.reshape(-1), hit.reshape(-1)
    sky = hit == _SKY
    tt = np.where(sky, 0.0, t).astype(np.float32)
    px, py, pz = ox + tt * dx, oy + tt * dy, oz + tt * dz
    nx, ny, nz = np.zeros_like(px), np.zeros_like(px), np.ones_like(px)
    members = [np.flatnonzero(hit == k) for k in range(objs.count)]
    for k, idx in enumerate(members):
        if idx.size:
            nx[idx], ny[idx], nz[idx] = _normals(objs, k, px[idx], py[idx], pz[idx])

    diffuse = np.zeros_like(px)
    specular = np.zeros_like(px)
    on_object = hit >= 0
    is_metal = objs.metal_table[hit]
    for light in lights:
        lx, ly, lz = (float(c) for c in light["position"])
        intensity = float(light["intensity"])
        vx, vy, vz = lx - px, ly - py, lz - pz
        dist = np.sqrt(vx * vx + vy * vy + vz * vz)
        vx, vy, vz = vx / dist, vy / dist, vz / dist
        ndl = nx * vx + ny * vy + nz * vz
        lit = np.flatnonzero((ndl > 0) & ~sky)
        # Shadow rays from the lit points towards the light, tested only against objects whose bounding sphere's
        # cone (seen from the light) contains the point; an object cannot shadow itself (all shapes are convex).
        sx = px[lit] + nx[lit] * SURFACE_OFFSET
        sy = py[lit] + ny[lit] * SURFACE_OFFSET
        sz = pz[lit] + nz[lit] * SURFACE_OFFSET
        lvx, lvy, lvz, ldist, lhit = vx[lit], vy[lit], vz[lit], dist[lit], hit[lit]
        shadowed = np.zeros(lit.size, dtype=bool)
        for k in range(objs.count):
            cx, cy, cz = objs.center[k]
            ux, uy, uz = cx - lx, cy - ly, cz - lz
            dc = math.sqrt(ux * ux + uy * uy + uz * uz)
            rb = objs.bound[k]
            if dc <= rb:
                candidates = np.arange(lit.size)
            else:
                cos_cone = math.sqrt(1.0 - (rb / dc) ** 2) * dc
                candidates = np.flatnonzero(lvx * ux + lvy * uy + lvz * uz < -cos_cone)
            candidates = candidates[lhit[candidates] != k]
            if candidates.size:
                tk = _intersect(objs, k, sx[candidates], sy[candidates], sz[candidates],
                                lvx[candidates], lvy[candidates], lvz[candidates])
                shadowed[candidates[tk < ldist[candidates]]] = True
        visible = lit[~shadowed]
        diffuse[visible] += intensity * ndl[visible]
        # Blinn-Phong highlight on objects only (the floor is matte).
        glossy = visible[on_object[visible]]
        if glossy.size:
            hx, hy, hz = vx[glossy] - dx[glossy], vy[glossy] - dy[glossy], vz[glossy] - dz[glossy]
            hn = np.sqrt(hx * hx + hy * hy + hz * hz)
            ndh = np.maximum((nx[glossy] * hx + ny[glossy] * hy + nz[glossy] * hz) / hn, 0.0)
            shiny = is_metal[glossy]
            specular[glossy] += intensity * np.where(
                shiny, METAL_SPECULAR * ndh ** METAL_SHININESS + METAL_SHEEN * ndh ** METAL_SHEEN_SHININESS,
                RUBBER_SPECULAR * ndh ** RUBBER_SHININESS)

    albedo = objs.albedo_table[hit]
    light_sum = (AMBIENT + diffuse)[:, None]
    color = albedo * light_sum
    color += specular[:, None]
    metal = np.flatnonzero(is_metal)
    if metal.size:
        reflected = _reflection(lights, objs, px[metal], py[metal], pz[metal], nx[metal], ny[metal], nz[metal],
                                dx[metal], dy[metal], dz[metal], hit[metal])
        # Coloured metal: a dark diffuse body, a mirror reflection tinted by the albedo's hue (brightness scaled by
        # the square root of its strongest channel, so grey metal stays darker than yellow) and a white highlight.
        body = albedo[metal]
        tint = body / np.sqrt(np.maximum(body.max(axis=1, keepdims=True), 1e-4))
        color[metal] = (body * METAL_DIFFUSE * light_sum[metal] + METAL_REFLECTION * tint * reflected
                        + specular[metal, None])
    if sky.any():
        color[sky] = _sky(dz[sky])[:, None]
    return color


def _sky(up_component):
    return (SKY_HORIZON + (SKY_ZENITH - SKY_HORIZON) * np.clip(up_component, 0.0, 1.0)).astype(np.float32)


def _reflection(lights, objs: _Objects, px, py, pz, nx, ny, nz, dx, dy, dz, self_id):
    """Linear RGB seen along the mirror direction: one bounce against objects, floor and sky, unshadowed."""
    dn = dx * nx + dy * ny + dz * nz
    rx, ry, rz = dx - 2 * dn * nx, dy - 2 * dn * ny, dz - 2 * dn * nz
    ox, oy, oz = px + nx * SURFACE_OFFSET, py + ny * SURFACE_OFFSET, pz + nz * SURFACE_OFFSET
    with np.errstate(divide="ignore"):
        t = np.where(rz < 0, -oz / rz, np.inf).astype(np.float32)
    hit = np.where(rz < 0, _GROUND, _SKY).astype(np.int16)
    for k in range(objs.count):
        cx, cy, cz = objs.center[k]
        wx, wy, wz = cx - ox, cy - oy, cz - oz
        along = wx * rx + wy * ry + wz * rz
        rb = objs.bound[k]
        candidates = np.flatnonzero((along > -rb) & (wx * wx + wy * wy + wz * wz - along * along < rb * rb)
                                    & (self_id != k))
        if candidates.size:
            tk = _intersect(objs, k, ox[candidates], oy[candidates], oz[candidates],
                            rx[candidates], ry[candidates], rz[candidates])
            closer = tk < t[candidates]
            t[candidates[closer]] = tk[closer]
            hit[candidates[closer]] = k
    sky = hit == _SKY
    tt = np.where(sky, 0.0, t).astype(np.float32)
    qx, qy, qz = ox + tt * rx, oy + tt * ry, oz + tt * rz
    mx, my, mz = np.zeros_like(qx), np.zeros_like(qx), np.ones_like(qx)
    for k in range(objs.count):
        idx = np.flatnonzero(hit == k)
        if idx.size:
            mx[idx], my[idx], mz[idx] = _normals(objs, k, qx[idx], qy[idx], qz[idx])
    light_sum = np.full(qx.shape, AMBIENT, dtype=np.float32)
    for light in lights:
        lx, ly, lz = (float(c) for c in light["position"])
        vx, vy, vz = lx - qx, ly - qy, lz - qz
        dist = np.sqrt(vx * vx + vy * vy + vz * vz)
        light_sum += float(light["intensity"]) * np.maximum((mx * vx + my * vy + mz * vz) / dist, 0.0)
    color = objs.albedo_table[hit] * light_sum[:, None]
    if sky.any():
        color[sky] = _sky(rz[sky])[:, None]
    return color


class _Traced(NamedTuple):
    camera: Dict[str, Any]
    lights: List[Dict[str, Any]]
    objs: _Objects
    origin: Tuple[float, float, float]
    dirs: Tuple[np.ndarray, np.ndarray, np.ndarray]
    t: np.ndarray
    hit: np.ndarray
    mask: np.ndarray
    image_size: int
    supersample: int


def _trace(scene: Dict[str, Any], image_size: int, supersample: int) -> _Traced:
    """The cheap first half of `render`: primary rays and the instance mask (used alone for visibility checks)."""
    _check_sizes(image_size, supersample)
    camera, lights, objs = _scene_parts(scene)
    origin, dirs, t, hit = _trace_primary(camera, objs, int(image_size), int(supersample))
    mask = _majority_labels(hit, int(image_size), int(supersample), objs.count)
    return _Traced(camera, lights, objs, origin, dirs, t, hit, mask, int(image_size), int(supersample))


def _finish(traced: _Traced) -> Rendering:
    """The second half of `render`: shading, anti-aliasing and attribute maps."""
    color = _shade(traced.camera, traced.lights, traced.objs, traced.origin, traced.dirs, traced.t, traced.hit)
    size, ss = traced.image_size, traced.supersample
    color = color.reshape(size, ss, size, ss, 3).mean(axis=(1, 3))
    return Rendering(image=_linear_to_srgb8(color), instance_mask=traced.mask,
                     attributes=traced.objs.attribute_table[traced.mask])


def render_instance_mask(scene: Dict[str, Any], image_size: int, supersample: int = 3) -> np.ndarray:
    """Only the instance mask of `render` (same rays, same majority vote), several times cheaper: for visibility
    checks while sampling or editing scenes."""
    return _trace(scene, image_size, supersample).mask


def render(scene: Dict[str, Any], image_size: int, supersample: int = 3) -> Rendering:
    """Renders a scene dict (ours or CLEVR's; a missing camera/lights get the canonical ones) as a square image.

    The same scene dict, also after a JSON round trip, always gives the same bytes.
    """
    return _finish(_trace(scene, image_size, supersample))


def object_pixel_counts(instance_mask: np.ndarray, num_objects: int) -> np.ndarray:
    """Pixels of each object in an instance mask: int64 [num_objects]."""
    return np.bincount(instance_mask.reshape(-1), minlength=num_objects + 1)[1:num_objects + 1]
