"""tf.data readers for the TFRecord schema: parse, pad/crop, batch, prefetch.

Parallelism is fixed (config.data.reader_parallelism) and tf.data autotuning is switched off: on 2 cores autotune
competes with the training step for the same cores (measured: 0.51 s/step with autotune vs 0.31 s raw).
Images come out as float32 in [-1, 1], the range the GAN draws in, so generated and rendered images are
interchangeable inputs.
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

import tensorflow as tf

from tfvgs import features, schema
from tfvgs.shards import SPLITS, shard_pattern  # noqa: F401 - re-exported: data.SPLITS, data.shard_pattern
from tfvgs.config import Config
from tfvgs.voice_augmentation import VoiceAugmentation


# Every shard a `records` dataset of this process reads, in first-use order: where `corrupt_shards_named` looks.
_SHARDS_READ: Dict[str, None] = {}


# The kinds of record folder a step reads: the pipelines whose summary.json marks a folder of that kind, and the
# command to point a user at.
RECORD_KINDS: Dict[str, Tuple[Tuple[str, ...], str]] = {
    "pairs": (("spoken_captions", "audio_clevrgan", "import_manifest"),
              "python -m beam_pipelines.spoken_captions (or audio_clevrgan, import_manifest)"),
    "gan_pairs": (("audio_clevrgan",), "python -m beam_pipelines.audio_clevrgan"),
    "scenes": (("render_scenes",), "python -m beam_pipelines.render_scenes"),
    "renderer_edits": (("transfer_test_set",), "python -m beam_pipelines.transfer_test_set"),
}


class WorkerShard(NamedTuple):
    """One worker's part of a training split under FILE sharding (`tfvgs.multi_worker.shards_by_file`): shard files
    index, index + count, ... of the split, in batches of one replica's part of the global batch (a worker with
    several devices feeds `replicas` such batches per step)."""
    index: int
    count: int
    replicas: int = 1


def per_worker(batch_size: int, skip_examples: int, worker: Optional[WorkerShard]) -> Tuple[int, int]:
    """(batch size, records to skip) of this worker's stream for a global batch size and a global skip count: a
    step takes batch_size / count records from each worker (batch_size / (count * replicas) per batch), so resuming
    at step s skips s * batch_size / count of them."""
    if worker is None:
        return int(batch_size), int(skip_examples)
    replicas = worker.count * worker.replicas
    if batch_size % replicas or skip_examples % worker.count:
        raise ValueError(f"Under FILE sharding the global batch size must be a multiple of the {replicas} replicas. "
                         f"Received: batch_size={batch_size}, skip_examples={skip_examples} (set "
                         f"data.worker_sharding=data, or another batch size)")
    return batch_size // replicas, skip_examples // worker.count


class DataDirError(ValueError):
    """A --data_dir that cannot feed a step: missing, empty, or holding another kind of records."""


def check_data_dir(data_dir: str, kinds: Tuple[str, ...], splits: Tuple[str, ...], step: str) -> None:
    """Raises DataDirError, in one sentence naming the folder and the command that makes the right one, unless
    `data_dir` holds complete shards of every split in `splits`, written by a pipeline of one of `kinds` (folders
    without a summary.json, e.g. written by hand, are taken on trust)."""
    import json
    pipelines = tuple(p for kind in kinds for p in RECORD_KINDS[kind][0])
    makers = " or ".join(RECORD_KINDS[kind][1] for kind in kinds)
    wanted = " or ".join(kinds)
    if not tf.io.gfile.isdir(data_dir):
        raise DataDirError(f"--data_dir {data_dir} does not exist: {step} reads {wanted} TFRecords there, as "
                           f"written by {makers}.")
    summary_path = f"{data_dir.rstrip('/')}/summary.json"
    if tf.io.gfile.exists(summary_path):
        with tf.io.gfile.GFile(summary_path) as f:
            pipeline = json.load(f).get("pipeline")
        if pipeline and pipeline not in pipelines:
            kind = next((k for k, (ps, _) in RECORD_KINDS.items() if pipeline in ps), "other")
            raise DataDirError(f"--data_dir {data_dir} holds {kind} records written by {pipeline}, but {step} reads "
                               f"{wanted} records, as written by {makers}.")
    for split in splits:
        if not tf.io.gfile.glob(shard_pattern(data_dir, split)):
            raise DataDirError(f"--data_dir {data_dir} has no {split!r} shards ({split}-SSSSS-of-NNNNN.tfrecord): "
                               f"{step} reads {wanted} TFRecords there, as written by {makers}.")


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
    """Fixed threads, deterministic order, and DATA sharding when a multi-worker strategy distributes the dataset:
    every worker runs the whole pipeline and keeps its part of each global batch, so a step sees exactly the batch
    one process would. (FILE sharding does not come through here: `tfvgs.multi_worker.shards_by_file` builds each
    worker's own pipeline with a `WorkerShard`, where tf.data's FILE policy would leave the resume skip count and
    the per-worker batch to a graph rewrite.)"""
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = max(1, config.data.reader_parallelism)
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def image_to_float(image: tf.Tensor) -> tf.Tensor:
    """uint8 [0,255] -> float32 [-1,1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def image_to_uint8(image: tf.Tensor) -> tf.Tensor:
    """float32 [-1,1] -> uint8 (clipped)."""
    return tf.cast(tf.clip_by_value(tf.round((image + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def records(data_dir: str, split: str, config: Config, training: bool, seed: Optional[int], repeat: bool,
             skip_examples: int, worker: Optional[WorkerShard] = None) -> tf.data.Dataset:
    """Serialized records of a split: shards interleaved, shuffled when training (seeded, so a resumed run sees the
    same order), optionally endless, with the first `skip_examples` skipped before any decoding. With `worker`,
    only that worker's shard files (every count-th, from index)."""
    files = list_shards(data_dir, split)
    if worker is not None:
        mine = files[worker.index::worker.count]
        if not mine:
            raise ValueError(f"FILE sharding needs at least as many shards as workers: split {split!r} of "
                             f"{data_dir} has {len(files)} shard(s) for {worker.count} workers. Received: worker "
                             f"{worker.index} (set data.worker_sharding=data, or write more shards)")
        files = mine
    _SHARDS_READ.update(dict.fromkeys(files))
    seed = config.seed if seed is None else seed
    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    cycle = min(len(files), config.data.reader_parallelism)   # tf.data refuses more parallel calls than cycle
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=cycle, num_parallel_calls=cycle, deterministic=True)
    if training:
        ds = ds.shuffle(config.data.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.skip(skip_examples) if skip_examples else ds


def _prepare_pair(example: Dict[str, tf.Tensor], config: Config, image_size: int,
                  pad_to_max: bool = True) -> Dict[str, tf.Tensor]:
    logmel = tf.ensure_shape(example["logmel"], [None, config.features.num_mel_bins])  # records of another config fail here
    if pad_to_max:
        logmel, nframes = features.pad_or_crop(logmel, config.features.max_frames,
                                               features.padding_value(config.features))
    else:  # cropped only; the batch pads (length buckets)
        logmel = logmel[:config.features.max_frames]
        nframes = tf.shape(logmel, out_type=tf.int32)[0]
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
                  drop_remainder: Optional[bool] = None, skip_examples: int = 0,
                  bucket_frames: int = 0, crop_frames: Optional[Tuple[int, int]] = None,
                  worker: Optional[WorkerShard] = None,
                  voice_augmentation: Optional[VoiceAugmentation] = None) -> tf.data.Dataset:
    """Batches of spoken pairs: image [B,S,S,3] float, logmel [B,max_frames,bins], nframes [B] int32, pair_id,
    caption (strings, for analysis only) and latent [B,z] (zero-width when the images were not GAN-drawn).

    `skip_examples` skips raw records before any decoding (cheap), e.g. to resume an endless training stream.
    `bucket_frames` > 0 batches captions of similar length (`length_bucketed_batches`): logmel is then
    [B, T, bins] with T the batch's longest caption rounded up to a multiple of `bucket_frames` (at most
    max_frames), and `skip_examples` skips whole batches after grouping, so a resumed stream is the same one.
    `crop_frames` = (lo, hi) adds a random crop of every caption (`caption_crop`): crop_logmel, crop_nframes.
    `worker`: this worker's shard files only, `batch_size` and `skip_examples` being global (`per_worker`).
    `voice_augmentation` changes every caption (and its crop alike) as another speaker would (training only)."""
    if voice_augmentation is not None and not training:
        raise ValueError("voice augmentation changes training captions; an evaluation stream has none. Received: "
                         f"{voice_augmentation} with training=False")
    batch_size, skip_examples = per_worker(batch_size, skip_examples, worker)
    image_size = image_size or config.world.image_size
    bucket_frames = int(bucket_frames)
    if bucket_frames < 0:
        raise ValueError(f"`bucket_frames` must be >= 0 (0 pads every batch to max_frames). "
                         f"Received: bucket_frames={bucket_frames}")
    drop_remainder = training if drop_remainder is None else drop_remainder
    ds = records(data_dir, split, config, training, seed, repeat, 0, worker)
    # each record's position in the stream seeds its crop and voice change, so a resumed stream makes the same views
    ds = tf.data.Dataset.zip((tf.data.Dataset.counter(), ds))
    if skip_examples and not bucket_frames:
        ds = ds.skip(skip_examples)
    view_seed = config.seed if seed is None else seed

    def prepare(index, serialized):
        example = schema.parse_pair(serialized)
        if voice_augmentation is not None:
            draw = voice_augmentation.draw(tf.stack([tf.cast(view_seed, tf.int64), index]))
            example = dict(example, logmel=voice_augmentation.apply(example["logmel"], draw))
        pair = _prepare_pair(example, config, image_size, pad_to_max=not bucket_frames)
        if crop_frames is not None:
            pair.update(caption_crop(example["logmel"], config, crop_frames,
                                     tf.stack([tf.cast(view_seed, tf.int64), index])))
        return pair

    ds = ds.map(prepare, num_parallel_calls=config.data.reader_parallelism, deterministic=True)
    if bucket_frames:
        ds = length_bucketed_batches(ds, config, batch_size, bucket_frames, drop_remainder)
        if skip_examples:
            ds = ds.skip(skip_examples // batch_size)
    else:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.prefetch(config.data.prefetch)
    return ds.with_options(dataset_options(config))


# Silence after a crop: about half the DAVEnet receptive field (265 input frames), so a crop's output frames see
# what a word of the semantic test sees (the word, then silence), not the zeros past the end of the tensor.
CROP_CONTEXT_FRAMES = 144


def crop_width(crop_frames: Tuple[int, int]) -> int:
    """Frames of a crop view: the longest crop plus CROP_CONTEXT_FRAMES of silence, a multiple of 16."""
    return -(-(int(crop_frames[1]) + CROP_CONTEXT_FRAMES) // 16) * 16


def caption_crop(logmel: tf.Tensor, config: Config, crop_frames: Tuple[int, int], seed: tf.Tensor
                 ) -> Dict[str, tf.Tensor]:
    """A random stretch of `lo..hi` frames of a caption (the whole caption if shorter than `lo`), at the start of a
    silence-padded view of `crop_width` frames: {"crop_logmel": [W, bins], "crop_nframes": int32}.

    Length and start are drawn from a stateless generator seeded by `seed` ([2] int64), so crops are reproducible."""
    lo, hi = int(crop_frames[0]), int(crop_frames[1])
    if not 1 <= lo <= hi:
        raise ValueError(f"`crop_frames` must be (lo, hi) with 1 <= lo <= hi. Received: crop_frames={crop_frames}")
    logmel = logmel[:config.features.max_frames]
    n = tf.shape(logmel, out_type=tf.int32)[0]
    u = tf.random.stateless_uniform([2], seed=seed)
    longest = tf.minimum(hi, n)
    shortest = tf.minimum(lo, longest)
    length = shortest + tf.cast(u[0] * tf.cast(longest - shortest + 1, tf.float32), tf.int32)
    length = tf.minimum(length, longest)
    start = tf.minimum(tf.cast(u[1] * tf.cast(n - length + 1, tf.float32), tf.int32), n - length)
    crop = logmel[start:start + length]
    crop, nframes = features.pad_or_crop(crop, crop_width(crop_frames), features.padding_value(config.features))
    return {"crop_logmel": crop, "crop_nframes": nframes}


def length_bucketed_batches(ds: tf.data.Dataset, config: Config, batch_size: int, bucket_frames: int,
                            drop_remainder: bool) -> tf.data.Dataset:
    """Groups unpadded pairs into batches of captions within one `bucket_frames`-wide length bucket and pads each
    batch's logmel (with the silence value) to its longest caption rounded up to a multiple of `bucket_frames`.

    The audio encoder then stops computing on padding (a batch padded to max_frames is mostly padding when captions
    are short), and a few rounded lengths keep tf.function retracing bounded (max_frames / bucket_frames shapes).
    The grouping is deterministic, and no pair is dropped from an endless stream: a bucket's unfinished batch
    waits for more pairs. Captions of a batch have similar lengths, so the length of a caption (how many objects it
    names) no longer tells a positive from its in-batch impostors."""
    max_frames = config.features.max_frames
    boundaries = list(range(bucket_frames, max_frames, bucket_frames))
    pad = features.padding_value(config.features)

    def padding(spec):
        if spec.dtype == tf.string:
            return tf.constant("", tf.string)
        return tf.constant(0, spec.dtype)

    padding_values = {k: padding(spec) for k, spec in ds.element_spec.items()}
    padding_values["logmel"] = tf.constant(pad, ds.element_spec["logmel"].dtype)
    ds = ds.bucket_by_sequence_length(lambda e: e["nframes"], boundaries, [batch_size] * (len(boundaries) + 1),
                                      padding_values=padding_values, drop_remainder=drop_remainder)

    def round_up(batch):
        frames = tf.shape(batch["logmel"])[1]
        target = tf.minimum(-(-frames // bucket_frames) * bucket_frames, max_frames)  # frames <= max_frames
        batch = dict(batch)
        batch["logmel"] = tf.pad(batch["logmel"], [[0, 0], [0, target - frames], [0, 0]], constant_values=pad)
        return batch

    return ds.map(round_up, num_parallel_calls=config.data.reader_parallelism, deterministic=True)


def scenes_dataset(data_dir: str, split: str, config: Config, batch_size: int, *, training: bool = False,
                   seed: Optional[int] = None, repeat: bool = False, skip_examples: int = 0,
                   worker: Optional[WorkerShard] = None) -> tf.data.Dataset:
    """Batches of rendered scenes: image float [-1,1], instance_mask uint8, attributes uint8 [B,S,S,4], scene_json.
    `worker` as in `pairs_dataset`."""
    batch_size, skip_examples = per_worker(batch_size, skip_examples, worker)
    size = config.world.image_size

    def prepare(example):
        return {
            "image": image_to_float(tf.ensure_shape(example["image"], [size, size, 3])),
            "instance_mask": tf.ensure_shape(example["instance_mask"], [size, size]),
            "attributes": tf.ensure_shape(example["attributes"], [size, size, 4]),
            "scene_json": example["scene_json"],
        }

    ds = records(data_dir, split, config, training, seed, repeat, skip_examples, worker)
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


def with_known_length(ds: tf.data.Dataset, data_dir: str, split: str, batch_size: int,
                      limit: Optional[int] = None) -> tf.data.Dataset:
    """The batched, finite `ds` of a split, cut to its first `limit` records (all if None), with its number of
    batches known: Keras then validates on it without first running it dry (and warning "Your input ran out of
    data; interrupting training" at the end of the first epoch)."""
    records = count_records(list_shards(data_dir, split), limit=limit)
    batches = max(1, -(-records // int(batch_size)))
    return ds.take(batches).apply(tf.data.experimental.assert_cardinality(batches))


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


# ---------------------------------------------------------------------------------------------------------------
# The test sets' records (tfvgs.schema): spoken words, semantic image pairs, renderer-edit (transfer) pairs

def _padded_logmel(parsed, config: Config):
    logmel = tf.io.decode_raw(parsed[schema.LOGMEL], tf.float32, little_endian=True)
    logmel = tf.reshape(logmel, tf.cast(parsed[schema.LOGMEL_SHAPE], tf.int32))
    logmel = tf.ensure_shape(logmel, [None, config.features.num_mel_bins])  # records of another config fail here
    return features.pad_or_crop(logmel, config.features.max_frames, features.padding_value(config.features))


def _image(png, config: Config):
    size = config.world.image_size
    return image_to_float(tf.ensure_shape(tf.io.decode_png(png, channels=3), [size, size, 3]))


def _dataset(data_dir: str, kind: str, parse, config: Config, batch_size: int) -> tf.data.Dataset:
    files = list_shards(data_dir, kind)
    ds = tf.data.TFRecordDataset(files)
    ds = ds.map(parse, num_parallel_calls=config.data.reader_parallelism, deterministic=True)
    return ds.batch(batch_size).prefetch(config.data.prefetch).with_options(dataset_options(config))


def words_dataset(semantic_dir: str, config: Config, batch_size: int = 256) -> tf.data.Dataset:
    """Batches of spoken words: logmel [B, max_frames, bins], nframes [B], family, value, text, voice, word_id."""
    def parse(serialized):
        p = tf.io.parse_single_example(serialized, schema.WORD_FEATURES)
        logmel, nframes = _padded_logmel(p, config)
        return {"logmel": logmel, "nframes": nframes, "family": p[schema.FAMILY], "value": p[schema.VALUE],
                "text": p[schema.WORD_TEXT], "voice": p[schema.VOICE], "word_id": p[schema.WORD_ID]}
    return _dataset(semantic_dir, schema.WORDS, parse, config, batch_size)


def semantic_pairs_dataset(semantic_dir: str, config: Config, batch_size: int = 32) -> tf.data.Dataset:
    """Batches of semantic pairs: positive / negative images float [-1, 1], family, value, pair_id."""
    def parse(serialized):
        p = tf.io.parse_single_example(serialized, schema.SEMANTIC_PAIR_FEATURES)
        return {"positive": _image(p[schema.POSITIVE_PNG], config), "negative": _image(p[schema.NEGATIVE_PNG], config),
                "family": p[schema.FAMILY], "value": p[schema.VALUE], "pair_id": p[schema.PAIR_ID]}
    return _dataset(semantic_dir, schema.PAIRS, parse, config, batch_size)


def transfer_dataset(transfer_dir: str, config: Config, split: str = "test", batch_size: int = 32, *,
                     training: bool = False, skip_examples: int = 0, crop_frames: Optional[Tuple[int, int]] = None,
                     worker: Optional[WorkerShard] = None,
                     voice_augmentation: Optional[VoiceAugmentation] = None) -> tf.data.Dataset:
    """Batches of transfer pairs: image (original) and edited float [-1, 1], logmel, nframes, caption, voice,
    edit_attribute, edit (JSON), pair_id. `training`: shuffled (seeded), endless, full batches, the first
    `skip_examples` records skipped (the renderer-edit training set of the `exact_edits` stage), and with
    `crop_frames` a caption crop per pair as in `pairs_dataset` (seeded by stream position); `worker` as in
    `pairs_dataset`, and `voice_augmentation` as there (training only)."""
    def parse(serialized):
        p = tf.io.parse_single_example(serialized, schema.TRANSFER_FEATURES)
        logmel, nframes = _padded_logmel(p, config)
        return {"image": _image(p[schema.IMAGE_PNG], config), "edited": _image(p[schema.EDITED_PNG], config),
                "logmel": logmel, "nframes": nframes, "caption": p[schema.CAPTION], "voice": p[schema.VOICE],
                "edit_attribute": p[schema.EDIT_ATTRIBUTE], "edit": p[schema.EDIT_JSON], "pair_id": p[schema.PAIR_ID]}
    if not training:
        if crop_frames is not None:
            raise ValueError(f"caption crops are training views; an evaluation stream has none. Received: "
                             f"crop_frames={crop_frames} with training=False")
        if voice_augmentation is not None:
            raise ValueError("voice augmentation changes training captions; an evaluation stream has none. "
                             f"Received: {voice_augmentation} with training=False")
        return _dataset(transfer_dir, split, parse, config, batch_size)
    batch_size, skip_examples = per_worker(batch_size, skip_examples, worker)
    ds = records(transfer_dir, split, config, training=True, seed=None, repeat=True, skip_examples=0,
                 worker=worker)
    ds = tf.data.Dataset.zip((tf.data.Dataset.counter(), ds)).skip(skip_examples)

    def prepare(index, serialized):
        pair = parse(serialized)
        seed = tf.stack([tf.cast(config.seed, tf.int64), index])
        if voice_augmentation is not None:
            changed = voice_augmentation.apply(pair["logmel"][:pair["nframes"]], voice_augmentation.draw(seed))
            pair["logmel"] = tf.tensor_scatter_nd_update(
                pair["logmel"], tf.range(pair["nframes"])[:, None], changed)
        if crop_frames is not None:
            logmel = pair["logmel"][:pair["nframes"]]
            pair.update(caption_crop(logmel, config, crop_frames, seed))
        return pair

    ds = ds.map(prepare, num_parallel_calls=config.data.reader_parallelism, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(config.data.prefetch)
    return ds.with_options(dataset_options(config))
