"""The README's main command: the whole pipeline end to end on the built-in world, with progress on the console.

    python -m tfvgs.demo --workdir runs/demo [--config cpu] [--num_scenes 48]

Today it renders scenes, speaks their captions, writes scene and spoken-pair TFRecords, a contact sheet PNG (images
with their caption text) and one WAV. Later stages (GAN, DAVEnet, edits, evaluation, export) join here as they land.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import List, Optional, Sequence

import numpy as np

from tfvgs import config as config_lib


def _step(title: str):
    print(f"\n=== {title}", flush=True)
    return time.perf_counter()


def _done(start: float, what: str) -> None:
    print(f"    done in {time.perf_counter() - start:.1f} s: {what}", flush=True)


def write_contact_sheet_and_wav(pairs_dir: str, out_png: str, out_wav: str, config: config_lib.Config,
                                count: int = 12) -> List[dict]:
    """Contact sheet of the first `count` training pairs and the speech of the first one, re-synthesised from its
    caption and voice (pair records keep log-mels, not waveforms)."""
    import tensorflow as tf
    from tfvgs import audio_io, data, schema, speech, world
    records = []
    for raw in tf.data.TFRecordDataset(data.list_shards(pairs_dir, "train")).take(count):
        records.append(schema.read_pair_record(raw.numpy()))
    if not records:
        raise RuntimeError(f"no training pairs in {pairs_dir}; see {pairs_dir}/rejected.jsonl")
    records.sort(key=lambda r: r["pair_id"])
    sheet = world.make_contact_sheet([r["image"] for r in records], [r["caption"] for r in records])
    sheet.save(out_png)
    first = records[0]
    waveform = speech.synthesize(first["caption"], speech.Voice.from_spec(first["voice"]),
                                 sample_rate=config.speech.sample_rate)
    with open(out_wav, "wb") as f:
        f.write(audio_io.encode_wav(waveform, config.speech.sample_rate))
    return [{"pair_id": r["pair_id"], "caption": r["caption"], "voice": r["voice"], "nframes": r["nframes"]}
            for r in records]


def run(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/demo")
    parser.add_argument("--num_scenes", type=int, default=48)
    config_lib.add_config_flags(parser)
    parser.set_defaults(config="cpu")
    args = parser.parse_args(argv)
    config = config_lib.config_from_args(args)
    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    config_flags = ["--config", args.config] + [x for o in args.overrides for x in ("--set", o)]
    scenes_dir, pairs_dir = os.path.join(workdir, "scenes"), os.path.join(workdir, "pairs")
    summary = {"workdir": workdir, "config": config.name}

    from beam_pipelines import render_scenes, spoken_captions
    t = _step(f"1/3 render {args.num_scenes} scenes ({config.world.image_size} px) -> {scenes_dir}")
    summary["render_scenes"] = render_scenes.run(["--output_dir", scenes_dir, "--num_scenes", str(args.num_scenes)]
                                                 + config_flags)
    _done(t, "scene TFRecords + scenes_<split>.json")

    t = _step(f"2/3 caption and speak them with espeak-ng, log-mel -> {pairs_dir}")
    summary["spoken_captions"] = spoken_captions.run(["--scenes_dir", scenes_dir, "--output_dir", pairs_dir]
                                                     + config_flags)
    _done(t, "spoken-pair TFRecords")

    t = _step("3/3 contact sheet and an example WAV")
    sheet, wav = os.path.join(workdir, "contact_sheet.png"), os.path.join(workdir, "example.wav")
    summary["examples"] = write_contact_sheet_and_wav(pairs_dir, sheet, wav, config)
    _done(t, f"{sheet}, {wav}")

    with open(os.path.join(workdir, "demo_summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
    print(f"\nResults in {workdir}:\n"
          f"  contact_sheet.png   rendered scenes with their spoken captions' text\n"
          f"  example.wav         the first caption, as spoken (16 kHz)\n"
          f"  scenes/             scene TFRecords, scenes_<split>.json (CLEVR format), summary.json\n"
          f"  pairs/              spoken-pair TFRecords (image + log-mel), rejected.jsonl, summary.json\n"
          f"  demo_summary.json   counts and example captions")
    return summary


if __name__ == "__main__":
    run()
