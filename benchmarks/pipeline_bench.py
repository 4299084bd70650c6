"""End-to-end Beam pipeline throughput on the built-in world, against the TTS-only bound.

Renders `--num_scenes` scenes with render_scenes, speaks them with spoken_captions, then synthesises the very same
captions with `synthesize_many` alone (2 threads, no Beam, no log-mel, no I/O) as the bound the pipeline can at best
reach. Prints JSON lines:
  {"measure": "render_scenes", "scenes_per_s": ...}
  {"measure": "spoken_captions", "pairs_per_s": ...}
  {"measure": "tts_only_bound", "captions_per_s": ..., "workers": 2}
  {"measure": "spoken_captions_vs_bound", "fraction": ...}

    python benchmarks/pipeline_bench.py --config cpu --num_scenes 300
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="cpu")
    parser.add_argument("--num_scenes", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import tensorflow as tf
    from beam_pipelines import render_scenes, spoken_captions
    from tfvgs import data, schema, speech
    with tempfile.TemporaryDirectory() as tmp:
        scenes, pairs = os.path.join(tmp, "scenes"), os.path.join(tmp, "pairs")
        start = time.perf_counter()
        render_scenes.run(["--output_dir", scenes, "--num_scenes", str(args.num_scenes), "--config", args.config])
        seconds = time.perf_counter() - start
        print(json.dumps({"measure": "render_scenes", "config": args.config, "scenes": args.num_scenes,
                          "seconds": round(seconds, 2), "scenes_per_s": round(args.num_scenes / seconds, 2)}))
        start = time.perf_counter()
        summary = spoken_captions.run(["--scenes_dir", scenes, "--output_dir", pairs, "--config", args.config,
                                       "--tts_workers", str(args.workers)])
        seconds = time.perf_counter() - start
        pipeline_rate = summary["written"] / seconds
        print(json.dumps({"measure": "spoken_captions", "config": args.config, "pairs": summary["written"],
                          "seconds": round(seconds, 2), "pairs_per_s": round(pipeline_rate, 2),
                          "tts_workers": args.workers}))
        items = []
        for split in data.SPLITS:
            for raw in tf.data.TFRecordDataset(data.list_shards(pairs, split)):
                r = schema.read_pair_record(raw.numpy())
                items.append((r["caption"], speech.Voice.from_spec(r["voice"])))
        start = time.perf_counter()
        waves = speech.synthesize_many(items, workers=args.workers)
        seconds = time.perf_counter() - start
        bound = len(items) / seconds
        print(json.dumps({"measure": "tts_only_bound", "captions": len(items), "seconds": round(seconds, 2),
                          "captions_per_s": round(bound, 2), "workers": args.workers,
                          "mean_audio_s": round(sum(w.size for w in waves) / 16000 / len(waves), 2)}))
        print(json.dumps({"measure": "spoken_captions_vs_bound", "fraction": round(pipeline_rate / bound, 3)}))


if __name__ == "__main__":
    main()
