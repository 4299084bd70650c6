"""The CLEVR vocabulary: shapes, colours, materials and sizes, in one fixed order.

The order matters: the id of a value in the per-pixel attribute maps is its index in `ATTRIBUTES[name]` plus one
(0 means background), so captions, segmentations and evaluation all agree on what "color id 3" is.
Values and radii are those of CLEVR's `properties.json` (Johnson et al., CVPR 2017).
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

SHAPES: Tuple[str, ...] = ("cube", "sphere", "cylinder")

# Ordered name -> sRGB colour of a fully lit matte surface (CLEVR's colour values).
COLORS: Dict[str, Tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}

# rubber is matte; metal is specular and reflective.
MATERIALS: Tuple[str, ...] = ("rubber", "metal")

# Ordered name -> radius in world units. Spheres have this radius, cylinders this radius and half-height, cubes the
# half-side radius / sqrt(2) (CLEVR shrinks cubes so that their footprint diagonal matches the others).
SIZES: Dict[str, float] = {"large": 0.7, "small": 0.35}

ATTRIBUTES: Dict[str, Tuple[str, ...]] = {
    "shape": SHAPES,
    "color": tuple(COLORS),
    "material": MATERIALS,
    "size": tuple(SIZES),
}

# Channel order of `Rendering.attributes`.
ATTRIBUTE_NAMES: Tuple[str, ...] = tuple(ATTRIBUTES)


def attribute_id(attribute: str, value: str) -> int:
    """Id of `value` in the attribute maps: its index in `ATTRIBUTES[attribute]` plus one (0 is background)."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"Unknown attribute. Expected one of {ATTRIBUTE_NAMES}. Received: attribute={attribute!r}")
    values = ATTRIBUTES[attribute]
    if value not in values:
        raise ValueError(f"Unknown {attribute} value. Expected one of {values}. Received: {value!r}")
    return values.index(value) + 1


def attribute_value(attribute: str, value_id: int) -> str:
    """Inverse of `attribute_id`; id 0 (background) has no value and raises."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"Unknown attribute. Expected one of {ATTRIBUTE_NAMES}. Received: attribute={attribute!r}")
    values = ATTRIBUTES[attribute]
    if not 1 <= int(value_id) <= len(values):
        raise ValueError(f"{attribute} id must be in [1, {len(values)}]. Received: {value_id!r}")
    return values[int(value_id) - 1]


def object_half_height(shape: str, size: str) -> float:
    """Half the height of an object resting on the ground, i.e. the z of its centre (CLEVR's `3d_coords[2]`)."""
    radius = SIZES[size]
    return radius / math.sqrt(2.0) if shape == "cube" else radius


def footprint_radius(size: str) -> float:
    """Radius of the object's ground footprint used for spacing, the same for every shape as in CLEVR."""
    return SIZES[size]
