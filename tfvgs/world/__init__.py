"""The built-in CLEVR-style world: vocabulary, scene records, a numpy ray-casting renderer, a seeded sampler and edits.

    scene, rendering = sample_and_render(seed=7, image_size=64, min_objects=2, max_objects=4, min_object_pixels=10)
    rendering.image, rendering.instance_mask, rendering.attributes   # uint8 [64,64,3], [64,64], [64,64,4]
    edited, edit = random_edit(scene, np.random.default_rng(0))       # one attribute of one object changed
    render(edited, 64).image                                          # same camera and lights, exact bytes
"""
from tfvgs.world.contact_sheet import make_contact_sheet, save_png
from tfvgs.world.renderer import Rendering, object_pixel_counts, render, render_instance_mask
from tfvgs.world.sampler import random_edit, sample_and_render, sample_scene, sampling_options
from tfvgs.world.scene import (CANONICAL_CAMERA, CANONICAL_LIGHTS, build_scene, camera_directions,
                               compute_relationships, edit_scene, load_scenes_json, pixel_coords, scenes_json_info,
                               validate_scene, write_scenes_json)
from tfvgs.world.vocabulary import (ATTRIBUTE_NAMES, ATTRIBUTES, COLORS, MATERIALS, SHAPES, SIZES, attribute_id,
                                    attribute_value, object_half_height)

__all__ = [
    "ATTRIBUTES", "ATTRIBUTE_NAMES", "CANONICAL_CAMERA", "CANONICAL_LIGHTS", "COLORS", "MATERIALS", "Rendering",
    "SHAPES", "SIZES", "attribute_id", "attribute_value", "build_scene", "camera_directions", "compute_relationships",
    "edit_scene", "load_scenes_json", "make_contact_sheet", "object_half_height", "object_pixel_counts",
    "pixel_coords", "random_edit", "render", "render_instance_mask", "sample_and_render", "sample_scene",
    "sampling_options", "save_png", "scenes_json_info",
    "validate_scene", "write_scenes_json",
]
