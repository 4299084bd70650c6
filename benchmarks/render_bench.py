"""Scenes sampled and rendered per second by the built-in world, single process, one JSON line per setting.

    OMP_NUM_THREADS=1 python benchmarks/render_bench.py [--scenes 100] [--sizes 64 128]

Each measurement runs `sample_and_render` (layout sampling, visibility rejection, full shading) over consecutive
seeds, after one warm-up scene. Object counts follow the presets: 2-4 (cpu) and 3-10 (paper/CLEVR).
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")   # numpy must not spread over cores: we measure one process

import argparse
import json
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from tfvgs.world import object_pixel_counts, sample_and_render  # noqa: E402

# Visibility thresholds scaled with image area (about 40% of a small unoccluded object's median area).
MIN_PIXELS = {32: 2, 64: 10, 128: 40, 256: 160}


def measure(image_size: int, min_objects: int, max_objects: int, supersample: int, scenes: int) -> dict:
    kwargs = dict(image_size=image_size, min_objects=min_objects, max_objects=max_objects, supersample=supersample,
                  min_object_pixels=MIN_PIXELS.get(image_size, max(1, image_size * image_size // 400)))
    sample_and_render(10_000_000, **kwargs)   # warm-up (imports, caches)
    objects, least_visible = 0, []
    start = time.perf_counter()
    for seed in range(scenes):
        scene, rendering = sample_and_render(seed, **kwargs)
        objects += len(scene["objects"])
        least_visible.append(int(object_pixel_counts(rendering.instance_mask, len(scene["objects"])).min()))
    seconds = time.perf_counter() - start
    return {"benchmark": "world_sample_and_render", "image_size": image_size, "supersample": supersample,
            "min_objects": min_objects, "max_objects": max_objects,
            "min_object_pixels": kwargs["min_object_pixels"], "scenes": scenes, "seconds": round(seconds, 3),
            "scenes_per_second": round(scenes / seconds, 1), "mean_objects": round(objects / scenes, 2),
            "median_least_visible_pixels": float(np.median(least_visible)),
            "numpy": np.__version__, "python": platform.python_version()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--supersample", type=int, default=3)
    args = parser.parse_args(argv)
    for size in args.sizes:
        for min_objects, max_objects in ((2, 4), (3, 10)):
            print(json.dumps(measure(size, min_objects, max_objects, args.supersample, args.scenes)), flush=True)


if __name__ == "__main__":
    main()
