"""Renders the built-in CLEVR-style world into sharded scene TFRecords plus CLEVR-style scenes_<split>.json.

    python -m beam_pipelines.render_scenes --output_dir D --num_scenes N --config PRESET [--set k=v] [beam flags]

Scene descriptions go through blocks of SCENE_JSON_BLOCK consecutive scenes (one worker each) that the launcher
joins into each split's file after the pipeline, so no worker holds a whole split. Scene i is drawn from a seed derived from (config.seed, i), so any scene can be re-rendered alone and a rerun with
the same flags writes the same records. Scenes are split contiguously by index: the first 80% train, then val, test
(config.data.split_fractions).
"""
from __future__ import annotations

import os
from typing import Iterable, List, Optional, Sequence

import apache_beam as beam

from beam_pipelines import common
from tfvgs import cli, config as config_lib
from tfvgs.shards import SPLITS
from tfvgs.seeding import stable_seed


def split_for_index(index: int, num_scenes: int, fractions: Sequence[float]) -> str:
    """Contiguous split assignment: [0, n_train) train, then val, then test."""
    total = float(sum(fractions))
    n_train = int(round(num_scenes * fractions[0] / total))
    n_val = int(round(num_scenes * fractions[1] / total))
    if index < n_train:
        return "train"
    return "val" if index < n_train + n_val else "test"


class RenderSceneFn(beam.DoFn):
    """Scene index -> (split, serialized scene record); failures go to the dead-letter output."""

    def __init__(self, config: config_lib.Config, num_scenes: int):
        self.config, self.num_scenes = config, num_scenes

    def setup(self):
        self._read = common.counter(common.READ)
        self._reject = common.Reject("render")

    def process(self, index: int) -> Iterable:
        from tfvgs import schema, world
        self._read.inc()
        split = split_for_index(index, self.num_scenes, self.config.data.split_fractions)
        w = self.config.world
        try:
            scene, rendering = world.sample_and_render(stable_seed(self.config.seed, "scene", index),
                                                       **world.sampling_options(w), image_index=index, split=split)
            record = schema.encode_scene_record(scene=scene, image=rendering.image,
                                                instance_mask=rendering.instance_mask,
                                                attributes=rendering.attributes, split=split)
        except Exception as e:  # noqa: BLE001 - every failure is recorded with its reason, never dropped
            yield self._reject(f"scene-{index}", f"{type(e).__name__}: {e}")
            return
        yield split, record, scene


# Scene descriptions are written in blocks of this many consecutive scenes, one worker per block, and joined into
# CLEVR's one scenes_<split>.json after the pipeline, one block in memory at a time: no worker ever holds a split.
SCENE_JSON_BLOCK = 1000


def scene_json_blocks_dir(output_dir: str) -> str:
    return os.path.join(output_dir, "scene_json_blocks")


def write_scene_json_block(output_dir: str, split: str, block: int, scenes: Iterable[dict]) -> str:
    """One block's scenes, sorted by image index, as the text they take inside the split's "scenes" list."""
    import json

    import tensorflow as tf
    tf.io.gfile.makedirs(scene_json_blocks_dir(output_dir))
    path = os.path.join(scene_json_blocks_dir(output_dir), f"{split}-{block:06d}.json")
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(", ".join(json.dumps(scene) for scene in sorted(scenes, key=lambda s: s["image_index"])))
    return path


def join_scene_json_blocks(output_dir: str, splits: Sequence[str]) -> List[str]:
    """scenes_<split>.json for every split from its blocks (the bytes `tfvgs.world.write_scenes_json` writes for
    the same scenes), streamed block by block; then the blocks are removed. A split without scenes gets an empty
    list, so every split's file exists."""
    import json

    import tensorflow as tf
    from tfvgs import world
    blocks_dir = scene_json_blocks_dir(output_dir)
    paths = []
    for split in splits:
        blocks = sorted(tf.io.gfile.glob(os.path.join(blocks_dir, f"{split}-*.json")))
        path = os.path.join(output_dir, f"scenes_{split}.json")
        header = json.dumps({"info": world.scenes_json_info(split), "scenes": []})
        with tf.io.gfile.GFile(path, "w") as out:
            out.write(header[:-2])           # up to the opening bracket of the scenes list
            for i, block in enumerate(blocks):
                with tf.io.gfile.GFile(block) as f:
                    out.write((", " if i else "") + f.read())
            out.write("]}\n")
        paths.append(path)
    if tf.io.gfile.exists(blocks_dir):
        tf.io.gfile.rmtree(blocks_dir)
    return paths


def build_pipeline(p: beam.Pipeline, config: config_lib.Config, output_dir: str, num_scenes: int) -> None:
    rendered = (p
                | "SceneIndices" >> beam.Create(range(num_scenes))
                | "Reshuffle" >> beam.Reshuffle()
                | "RenderScenes" >> beam.ParDo(RenderSceneFn(config, num_scenes)).with_outputs(
                    common.REJECTED_TAG, main="scenes"))
    scenes = rendered.scenes
    _ = (scenes
         | "KeyRecords" >> beam.Map(lambda item: (item[0], item[1]))
         | "WriteRecords" >> common.WriteSplitRecords(output_dir, SPLITS, config.data.num_shards))
    _ = (scenes
         | "KeySceneJsonBlocks" >> beam.Map(
             lambda item: ((item[0], item[2]["image_index"] // SCENE_JSON_BLOCK), item[2]))
         | "GroupSceneJsonBlocks" >> beam.GroupByKey()
         | "WriteSceneJsonBlocks" >> beam.MapTuple(
             lambda key, scenes_: write_scene_json_block(output_dir, key[0], key[1], scenes_)))
    _ = rendered[common.REJECTED_TAG] | "DeadLetter" >> common.WriteRejected(output_dir)


def run(argv: Optional[Sequence[str]] = None) -> dict:
    parser = cli.command_parser("beam_pipelines.render_scenes", __doc__)
    parser.add_argument("--output_dir", required=True, help="where TFRecords and scenes_<split>.json go")
    parser.add_argument("--num_scenes", type=int, default=None, help="default: config.data.num_scenes")
    config_lib.add_config_flags(parser)
    args, options = common.parse_pipeline_args(parser, argv)
    config = config_lib.config_from_args(args)
    num_scenes = config.data.num_scenes if args.num_scenes is None else args.num_scenes
    if num_scenes <= 0:
        raise ValueError(f"--num_scenes must be positive. Received: {num_scenes}")
    common.prepare_output_dir(args.output_dir, SPLITS, config)
    import tensorflow as tf
    if tf.io.gfile.exists(scene_json_blocks_dir(args.output_dir)):   # an interrupted run's blocks
        tf.io.gfile.rmtree(scene_json_blocks_dir(args.output_dir))
    tf.io.gfile.makedirs(scene_json_blocks_dir(args.output_dir))
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, config, args.output_dir, num_scenes)
    join_scene_json_blocks(args.output_dir, SPLITS)
    return common.reconcile(p.result, args.output_dir, "render_scenes", {"num_scenes": num_scenes})


if __name__ == "__main__":
    run()
