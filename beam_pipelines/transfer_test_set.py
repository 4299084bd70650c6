"""The transfer test set (paper 000 sec. 6.5): rendered scenes, their one-attribute renderer edits and spoken captions.

    python -m beam_pipelines.transfer_test_set --output_dir D --config PRESET [--num_scenes N] [--split test|val|train]

Scene i is drawn from a seed derived from (config.seed, "transfer", split, i) - a namespace training scenes never
use - and edited by `world.random_edit` (one attribute of one object; edits that collide or hide an object are
redrawn). The synthetic caption of the ORIGINAL is spoken by a held-out test speaker (`--split test`, the test set of
the paper: a model must prefer the original for its caption, chance 50%) or by a training speaker (`--split train`:
the renderer-edit training set of the paper's 89% upper-bound model). `--split val` is the test's twin for choosing a
recipe without touching the test: scenes of their own seed namespace, spoken by held-out speakers (as val pairs are),
read by `python -m tfvgs.evaluate --split val --transfer_dir D`. Records (<D>/<split>-*.tfrecord, format in
`tfvgs.schema`): original PNG, edited PNG, caption, log-mel, voice, both scene JSONs and the edit description.
"""
from __future__ import annotations

import json
from typing import Iterable, Optional, Sequence

import apache_beam as beam
import numpy as np

from beam_pipelines import common
from beam_pipelines.spoken_captions import SpeakFn
from beam_pipelines.spoken_captions import voice_split
from tfvgs import cli, config as config_lib
from tfvgs.seeding import stable_seed

SPLITS = ("test", "val", "train")


class RenderAndEditFn(beam.DoFn):
    """Scene index -> work item (original and edited renderings, caption text, voice); failures to dead letters."""

    def __init__(self, config: config_lib.Config, split: str, style: str):
        self.config, self.split, self.style = config, split, style

    def setup(self):
        self._read = common.counter(common.READ)
        self._reject = common.Reject("render_edit")

    def process(self, index: int) -> Iterable:
        from tfvgs import schema, speech, world
        self._read.inc()
        pair_id = f"transfer/{self.split}/{index:07d}"
        w, seed = self.config.world, self.config.seed
        try:
            scene, original = world.sample_and_render(
                stable_seed(seed, "transfer", self.split, index), **world.sampling_options(w), image_index=index,
                split=self.split)
            edited_scene, edit = world.random_edit(
                scene, np.random.default_rng(stable_seed(seed, "transfer-edit", self.split, index)),
                image_size=w.image_size, min_object_pixels=w.min_object_pixels, supersample=w.supersample)
            edited = world.render(edited_scene, w.image_size, w.supersample)
            if np.array_equal(edited.image, original.image):
                raise ValueError(f"the edit {edit} does not change the image")
            caption = speech.caption_for_scene(scene, seed=stable_seed(seed, "transfer-caption", self.split, index),
                                               style=self.style)
            voice = speech.pick_voice(pair_id, voice_split(self.split), rate_range=self.config.speech.rate_range,
                                      pitch_range=self.config.speech.pitch_range)
        except Exception as e:  # noqa: BLE001 - every failure is recorded with its reason, never dropped
            yield self._reject(pair_id, f"{type(e).__name__}: {e}")
            return
        yield {"id": pair_id, "text": caption, "voice": voice, "split": self.split,
               "image_png": schema.encode_png(original.image), "edited_png": schema.encode_png(edited.image),
               "scene_json": json.dumps(scene, sort_keys=True),
               "edited_scene_json": json.dumps(edited_scene, sort_keys=True), "edit": edit}


def encode_transfer(item: dict, logmel: np.ndarray):
    from tfvgs import schema
    return item["split"], schema.encode_transfer_record(
        pair_id=item["id"], split=item["split"], image_png=item["image_png"], edited_png=item["edited_png"],
        caption=item["text"], logmel=logmel, voice=item["voice"].spec, scene_json=item["scene_json"],
        edited_scene_json=item["edited_scene_json"], edit=item["edit"])


def build_pipeline(p: beam.Pipeline, config: config_lib.Config, output_dir: str, num_scenes: int, split: str,
                   style: str, workers: int) -> None:
    planned = (p
               | "SceneIndices" >> beam.Create(range(num_scenes))
               | "Reshuffle" >> beam.Reshuffle()
               | "RenderAndEdit" >> beam.ParDo(RenderAndEditFn(config, split, style)).with_outputs(
                   common.REJECTED_TAG, main="items"))
    spoken = (planned.items
              | "BatchCaptions" >> beam.BatchElements(min_batch_size=4, max_batch_size=16)
              | "SpeakCaptions" >> beam.ParDo(SpeakFn(config, encode_transfer, workers)).with_outputs(
                  common.REJECTED_TAG, main="records"))
    _ = spoken.records | "WriteRecords" >> common.WriteSplitRecords(output_dir, (split,), config.data.num_shards)
    _ = ((planned[common.REJECTED_TAG], spoken[common.REJECTED_TAG])
         | "MergeRejected" >> beam.Flatten()
         | "DeadLetter" >> common.WriteRejected(output_dir))


def run(argv: Optional[Sequence[str]] = None) -> dict:
    parser = cli.command_parser("beam_pipelines.transfer_test_set", __doc__)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_scenes", type=int, default=None,
                        help="default: the preset's data.transfer_scenes (test, val) or data.renderer_edit_scenes "
                             "(train)")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="test: held-out speakers (the test set); val: the same on scenes of its own, for "
                             "choosing recipes; train: training speakers (edit training set)")
    parser.add_argument("--style", default="synthetic", choices=("synthetic", "natural"))
    parser.add_argument("--tts_workers", type=int, default=2, help="espeak-ng processes at once per Beam worker")
    config_lib.add_config_flags(parser)
    args, options = common.parse_pipeline_args(parser, argv)
    config = config_lib.config_from_args(args)
    if args.num_scenes is None:
        args.num_scenes = config.data.renderer_edit_scenes if args.split == "train" else config.data.transfer_scenes
    if args.num_scenes <= 0:
        raise ValueError(f"--num_scenes must be positive. Received: {args.num_scenes}")
    common.check_local_espeak(options)
    common.prepare_output_dir(args.output_dir, (args.split,), config)
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, config, args.output_dir, args.num_scenes, args.split, args.style, args.tts_workers)
    return common.reconcile(p.result, args.output_dir, "transfer_test_set",
                            {"num_scenes": args.num_scenes, "split": args.split, "style": args.style})


if __name__ == "__main__":
    run()
