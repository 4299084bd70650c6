"""Where a data folder's records live: its splits and the shard file names (Beam's naming). TensorFlow-free, so the
pipelines' command lines (`--help`) load in a second, not the ~4 s TensorFlow takes."""
from __future__ import annotations

SPLITS = ("train", "val", "test")


def shard_pattern(data_dir: str, split: str) -> str:
    """Where a split's shards live: `<data_dir>/<split>-SSSSS-of-NNNNN.tfrecord` (Beam's shard naming)."""
    return f"{data_dir.rstrip('/')}/{split}-?????-of-?????.tfrecord"
