"""tf.data readers for the TFRecord schema: parse, pad/crop, batch, prefetch.

Parallelism is fixed (config.data.reader_parallelism) and tf.data autotuning is switched off: on 2 cores autotune
competes with the training step for the same cores (measured: 0.51 s/step with autotune vs 0.31 s raw).
Images come out as float32 in [-1, 1], the range the GAN draws in, so generated and rendered images are
interchangeable inputs.
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Optional

import tensorflow as tf

from tfvgs import features, schema
from tfvgs.config import Config

SPLITS = ("train", "val", "test")

# Every shard a `records` dataset of this process reads, in first-use order: where `corrupt_shards_named` looks.
_SHARDS_READ: Dict[str, None] = {}


def shard_pattern(data_dir: str, split: str) -> str:
    """Where a split's shards live: `<data_dir>/<split>-SSSSS-of-NNNNN.tfrecord` (Beam's shard naming)."""
    return f"{data_dir.rstrip('/')}/{split}-?????-of-?????.tfrecord"


def list_shards(data_dir: str, split: str) -> List[str]:
    pattern = shard_pattern(data_dir, split)
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No TFRecord shards for split {split!r}: nothing matches {pattern}")
    totals = {int(f.rsplit("-of-", 1)[1].split(".")[0]) for f in files}
    if len(totals) != 1:
        raise ValueError(f"Shards of split {split!r} in {data_dir} do not form one complete set (found {len(files)} "
                         f"files of totals {sorted(totals)}): remove stale shards from an earlier run")
    total = totals.pop()
    expected = {f"{split}-{i:05d}-of-{total:05d}.tfrecord" for i in range(total)}
    present = {f.rsplit("/", 1)[-1] for f in files}
    if present != expected:
        raise ValueError(f"Shards of split {split!r} in {data_dir} do not form one complete set of {total}: missing "
                         f"{sorted(expected - present)}, unexpected {sorted(present - expected)}. Rewrite the "
                         f"split (rerun the pipeline that wrote it)")
    return files


def dataset_options(config: Config) -> tf.data.Options:
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = max(1, config.data.reader_parallelism)
    options.deterministic = True
    return options


def image_to_float(image: tf.Tensor) -> tf.Tensor:
    """uint8 [0,255] -> float32 [-1,1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def image_to_uint8(image: tf.Tensor) -> tf.Tensor:
    """float32 [-1,1] -> uint8 (clipped)."""
    return tf.cast(tf.clip_by_value(tf.round((image + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def records(data_dir: str, split: str, config: Config, training: bool, seed: Optional[int], repeat: bool,
             skip_examples: int) -> tf.data.Dataset:
    """Serialized records of a split: shards interleaved, shuffled when training (seeded, so a resumed run sees the
    same order), optionally endless, with the first `skip_examples` skipped before any decoding."""
    files = list_shards(data_dir, split)
    _SHARDS_READ.update(dict.fromkeys(files))
    seed = config.seed if seed is None else seed
    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), config.data.reader_parallelism),
                       num_parallel_calls=config.data.reader_parallelism, deterministic=True)
    if training:
        ds = ds.shuffle(config.data.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.skip(skip_examples) if skip_examples else ds


def _prepare_pair(example: Dict[str, tf.Tensor], config: Config, image_size: int) -> Dict[str, tf.Tensor]:
    logmel = tf.ensure_shape(example["logmel"], [None, config.features.num_mel_bins])  # records of another config fail here
    logmel, nframes = features.pad_or_crop(logmel, config.features.max_frames,
                                           features.padding_value(config.features))
    image = tf.ensure_shape(example["image"], [image_size, image_size, 3])
    return {
        "image": image_to_float(image),
        "logmel": logmel,
        "nframes": nframes,
        "pair_id": example["pair_id"],
        "caption": example["caption"],
        "voice": example["voice"],
        "latent": example["latent"],
    }


def pairs_dataset(data_dir: str, split: str, config: Config, batch_size: int, *, training: bool = False,
                  seed: Optional[int] = None, repeat: bool = False, image_size: Optional[int] = None,
                  drop_remainder: Optional[bool] = None, skip_examples: int = 0) -> tf.data.Dataset:
    """Batches of spoken pairs: image [B,S,S,3] float, logmel [B,max_frames,bins], nframes [B] int32, pair_id,
    caption (strings, for analysis only) and latent [B,z] (zero-width when the images were not GAN-drawn).

    `skip_examples` skips raw records before any decoding (cheap), e.g. to resume an endless training stream."""
    image_size = image_size or config.world.image_size
    ds = records(data_dir, split, config, training, seed, repeat, skip_examples)
    ds = ds.map(lambda s: _prepare_pair(schema.parse_pair(s), config, image_size),
                num_parallel_calls=config.data.reader_parallelism, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=training if drop_remainder is None else drop_remainder)
    ds = ds.prefetch(config.data.prefetch)
    return ds.with_options(dataset_options(config))


def scenes_dataset(data_dir: str, split: str, config: Config, batch_size: int, *, training: bool = False,
                   seed: Optional[int] = None, repeat: bool = False, skip_examples: int = 0) -> tf.data.Dataset:
    """Batches of rendered scenes: image float [-1,1], instance_mask uint8, attributes uint8 [B,S,S,4], scene_json."""
    size = config.world.image_size

    def prepare(example):
        return {
            "image": image_to_float(tf.ensure_shape(example["image"], [size, size, 3])),
            "instance_mask": tf.ensure_shape(example["instance_mask"], [size, size]),
            "attributes": tf.ensure_shape(example["attributes"], [size, size, 4]),
            "scene_json": example["scene_json"],
        }

    ds = records(data_dir, split, config, training, seed, repeat, skip_examples)
    ds = ds.map(lambda s: prepare(schema.parse_scene(s)), num_parallel_calls=config.data.reader_parallelism,
                deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=training).prefetch(config.data.prefetch)
    return ds.with_options(dataset_options(config))


def count_records(files: List[str], limit: Optional[int] = None) -> int:
    """Counts records (up to `limit`), naming the shard if one is corrupt (tf.data's own error does not say which)."""
    total = 0
    for path in files:
        if limit is not None and total >= limit:
            return limit
        try:
            total += sum(1 for _ in tf.data.TFRecordDataset(path))
        except tf.errors.DataLossError as e:
            raise tf.errors.DataLossError(None, None, f"Corrupt TFRecord shard {path}: {e.message}") from e
    return total if limit is None else min(total, limit)


@contextlib.contextmanager
def corrupt_shards_named() -> Iterator[None]:
    """Re-raises a DataLossError from inside the block with the corrupt shard's path in its message.

    tf.data's reader error says only "corrupted record at <offset>" and surfaces wherever the dataset is iterated
    (inside `fit`, say), far from the file list. So, on that failure path only, the shards this process's
    `pairs_dataset` / `scenes_dataset` read are re-read one by one until the bad one is found: nothing is paid while
    the data is sound. The original error is re-raised as is if no shard turns out corrupt."""
    try:
        yield
    except tf.errors.DataLossError as e:
        if "Corrupt TFRecord shard" in (e.message or ""):
            raise
        for path in list(_SHARDS_READ):
            try:
                count_records([path])
            except tf.errors.DataLossError as named:
                raise named from e
            except tf.errors.OpError:  # e.g. deleted since it was read: not what failed here
                continue
        raise
