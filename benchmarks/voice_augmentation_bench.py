"""Pairs/s of the davenet stage's training stream alone (no model), with and without voice augmentation.

The stream is the stage's own (`DavenetStage.build_train_dataset`: shuffle, parse, caption crops, length buckets);
only `train.voice_*` changes. The model's step needs ~80 pairs per ~0.23 s at the `cpu` preset (~350 pairs/s), so
the stream must stay well above that for the augmentation to cost no training time. Prints JSON lines:
  {"measure": "voice_augmentation_stream", "voice_warp": ..., "voice_gain": ..., "voice_tilt": ..., "pairs_per_s": ...}

    python benchmarks/voice_augmentation_bench.py --data_dir D/pairs --config cpu [--batches 60]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def bench(config, data_dir: str, batches: int, warmup: int = 5) -> float:
    from tfvgs.stages.davenet import DavenetStage
    stage = DavenetStage(config, "/nonexistent", data_dir)
    it = iter(stage.build_train_dataset(0))
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * config.train.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--config", default="cpu")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--settings", default="0,0,0;0.12,2,2",
                        help="warp,gain,tilt triples separated by ';'")
    args = parser.parse_args()
    from tfvgs import config as config_lib
    for setting in args.settings.split(";"):
        warp, gain, tilt = (float(v) for v in setting.split(","))
        config = config_lib.get_config(args.config)
        config.train = dataclasses.replace(config.train, voice_warp=warp, voice_gain=gain, voice_tilt=tilt)
        print(json.dumps({"measure": "voice_augmentation_stream", "voice_warp": warp, "voice_gain": gain,
                          "voice_tilt": tilt, "pairs_per_s": round(bench(config, args.data_dir, args.batches), 1)}),
              flush=True)


if __name__ == "__main__":
    main()
