"""Training pairs/s of the davenet stage on real pair records, with and without length-bucketed batches.

The input pipeline and the model are the stage's own (`tfvgs.data.pairs_dataset`, `build_dual_encoder`); only
`data.bucket_frames` changes. Each setting trains `--warmup` steps first (tracing every bucket shape it meets), then
times `--steps` steps. Prints JSON lines:
  {"measure": "bucketing", "bucket_frames": 0, "pairs_per_s": ..., "mean_batch_frames": ..., "padding_fraction": ...}

    python benchmarks/bucketing_bench.py --data_dir D/pairs --config cpu --bucket_frames 0 64 128 \
        [--set model.audio_width=0.25 ...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def batch_shapes(config, data_dir: str, bucket_frames: int, batches: int) -> dict:
    """Mean padded length of a training batch and the fraction of its frames that are padding."""
    from tfvgs import data
    ds = data.pairs_dataset(data_dir, "train", config, config.train.batch_size, training=True, repeat=True,
                            seed=config.seed, bucket_frames=bucket_frames)
    frames, valid = [], []
    for batch in ds.take(batches):
        frames.append(batch["logmel"].shape[1])
        valid.append(float(np.mean(batch["nframes"].numpy())))
    return {"mean_batch_frames": round(float(np.mean(frames)), 1),
            "padding_fraction": round(1 - float(np.mean(valid)) / float(np.mean(frames)), 3)}


def bench(config, data_dir: str, bucket_frames: int, warmup: int, steps: int) -> dict:
    import dataclasses
    from tfvgs import data
    from tfvgs.stages.davenet import build_dual_encoder
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, bucket_frames=bucket_frames))
    model = build_dual_encoder(config)
    ds = data.pairs_dataset(data_dir, "train", config, config.train.batch_size, training=True, repeat=True,
                            seed=config.seed, bucket_frames=bucket_frames,
                            crop_frames=config.train.crop_frames if config.train.crop_weight else None)
    # Keras 3 `fit` takes the dataset, not an iterator; each call starts it anew (the warm-up fit has traced the
    # step for every bucket length it met, and the timed one meets the same lengths again)
    model.fit(ds, steps_per_epoch=warmup, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = (time.perf_counter() - start) / steps
    return {"measure": "bucketing", "config": config.name, "bucket_frames": bucket_frames,
            "audio_width": config.model.audio_width, "max_frames": config.features.max_frames,
            "batch": config.train.batch_size, "crop_weight": config.train.crop_weight,
            "seconds_per_step": round(seconds, 3), "pairs_per_s": round(config.train.batch_size / seconds, 2),
            **batch_shapes(config, data_dir, bucket_frames, warmup + steps)}


def main() -> None:
    from tfvgs.config import add_config_flags, config_from_args
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True, help="pair TFRecords (a train split)")
    parser.add_argument("--bucket_frames", type=int, nargs="+", default=[0, 64, 128])
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--steps", type=int, default=40)
    add_config_flags(parser)
    args = parser.parse_args()
    config = config_from_args(args)
    for bucket_frames in args.bucket_frames:
        print(json.dumps(bench(config, args.data_dir, bucket_frames, args.warmup, args.steps)), flush=True)


if __name__ == "__main__":
    main()
