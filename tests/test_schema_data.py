"""TFRecord round trips through the schema and the tf.data readers."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfvgs import data, features, schema


def write_shards(path_prefix, records, num_shards=2):
    paths = []
    for s in range(num_shards):
        path = f"{path_prefix}-{s:05d}-of-{num_shards:05d}.tfrecord"
        with tf.io.TFRecordWriter(path) as w:
            for r in records[s::num_shards]:
                w.write(r)
        paths.append(path)
    return paths


def make_pair(i, frames, size=32, latent=None):
    rng = np.random.default_rng(i)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    logmel = rng.standard_normal((frames, 40)).astype(np.float32)
    record = schema.encode_pair_record(pair_id=f"p{i}", image_png=schema.encode_png(image), logmel=logmel,
                                       caption=f"a small red rubber cube number {i}", voice="en-us+m1",
                                       split="train", caption_style="synthetic", latent=latent)
    return record, image, logmel


def test_pair_record_round_trip_python_and_graph():
    record, image, logmel = make_pair(0, 77, latent=[0.5, -1.25, 2.0])
    py = schema.read_pair_record(record)
    np.testing.assert_array_equal(py["image"], image)
    np.testing.assert_array_equal(py["logmel"], logmel)
    assert py["nframes"] == 77 and py["voice"] == "en-us+m1" and py["pair_id"] == "p0"
    np.testing.assert_array_equal(py["latent"], [0.5, -1.25, 2.0])
    graph = schema.parse_pair(tf.constant(record))
    np.testing.assert_array_equal(graph["image"].numpy(), image)
    np.testing.assert_array_equal(graph["logmel"].numpy(), logmel)
    assert int(graph["nframes"]) == 77
    np.testing.assert_array_equal(graph["latent"].numpy(), [0.5, -1.25, 2.0])


def test_scene_record_round_trip():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mask = rng.integers(0, 4, (16, 16), dtype=np.uint8)
    attrs = rng.integers(0, 9, (16, 16, 4), dtype=np.uint8)
    scene = {"image_index": 5, "objects": [{"shape": "cube"}], "relationships": {}}
    record = schema.encode_scene_record(scene=scene, image=image, instance_mask=mask, attributes=attrs,
                                        split="val")
    py = schema.read_scene_record(record)
    assert py["scene"] == scene and py["split"] == "val" and py["scene_index"] == 5
    np.testing.assert_array_equal(py["attributes"], attrs)
    g = schema.parse_scene(tf.constant(record))
    np.testing.assert_array_equal(g["instance_mask"].numpy(), mask)
    np.testing.assert_array_equal(g["attributes"].numpy(), attrs)
    assert json.loads(g["scene_json"].numpy().decode()) == scene


def test_encode_rejects_bad_shapes():
    with pytest.raises(ValueError, match="logmel must be"):
        schema.encode_pair_record(pair_id="x", image_png=b"", logmel=np.zeros((0, 40)), caption="", voice="",
                                  split="train")
    with pytest.raises(ValueError, match="uint8"):
        schema.encode_png(np.zeros((4, 4), np.float32))


def test_pairs_dataset_pads_crops_and_batches(tmp_path, tiny_config):
    max_frames = tiny_config.features.max_frames
    pairs = [make_pair(i, frames) for i, frames in enumerate([10, max_frames + 40, 300, 1, 64])]
    write_shards(str(tmp_path / "train"), [p[0] for p in pairs])
    ds = data.pairs_dataset(str(tmp_path), "train", tiny_config, batch_size=5)
    batch = next(iter(ds))
    assert batch["image"].shape == (5, 32, 32, 3) and batch["logmel"].shape == (5, max_frames, 40)
    assert batch["image"].dtype == tf.float32
    assert -1.0 <= float(tf.reduce_min(batch["image"])) and float(tf.reduce_max(batch["image"])) <= 1.0
    by_id = {pid.decode(): k for k, pid in enumerate(batch["pair_id"].numpy())}
    pad = features.padding_value(tiny_config.features)
    for i, (_, image, logmel) in enumerate(pairs):
        k = by_id[f"p{i}"]
        n = min(logmel.shape[0], max_frames)
        assert int(batch["nframes"][k]) == n
        np.testing.assert_array_equal(batch["logmel"][k, :n].numpy(), logmel[:n])
        assert np.all(batch["logmel"][k, n:].numpy() == np.float32(pad))
        np.testing.assert_array_equal(data.image_to_uint8(batch["image"][k]).numpy(), image)


def test_training_dataset_is_seeded_and_drops_remainder(tmp_path, tiny_config):
    write_shards(str(tmp_path / "train"), [make_pair(i, 20)[0] for i in range(10)])

    def order(seed):
        ds = data.pairs_dataset(str(tmp_path), "train", tiny_config, 3, training=True, seed=seed)
        return [pid.decode() for b in ds for pid in b["pair_id"].numpy()]

    assert order(1) == order(1)
    assert len(order(1)) == 9  # 10 records, batches of 3, remainder dropped in training
    assert order(1) != order(2)


def test_length_buckets_keep_every_pair_and_pad_to_the_batchs_rounded_longest(tmp_path, tiny_config):
    max_frames = tiny_config.features.max_frames            # 512
    lengths = [5, 70, 130, 600, 40, 250, 64, 1, 512, 200, 90, 33, 480, 129]
    pairs = [make_pair(i, n) for i, n in enumerate(lengths)]
    write_shards(str(tmp_path / "train"), [p[0] for p in pairs])
    pad = np.float32(features.padding_value(tiny_config.features))
    ds = data.pairs_dataset(str(tmp_path), "train", tiny_config, 3, bucket_frames=64, drop_remainder=False)
    seen = []
    for batch in ds:
        frames = batch["logmel"].shape[1]
        nframes = batch["nframes"].numpy()
        assert frames % 64 == 0 or frames == max_frames
        assert frames == min(-(-nframes.max() // 64) * 64, max_frames)   # the batch's longest, rounded up
        assert len({min(int(n) // 64, max_frames // 64 - 1) for n in nframes}) == 1   # one length bucket
        for k, pid in enumerate(batch["pair_id"].numpy()):
            i = int(pid.decode()[1:])
            n = min(lengths[i], max_frames)
            assert nframes[k] == n
            np.testing.assert_array_equal(batch["logmel"][k, :n].numpy(), pairs[i][2][:n])
            assert np.all(batch["logmel"][k, n:].numpy() == pad)
            np.testing.assert_array_equal(data.image_to_uint8(batch["image"][k]).numpy(), pairs[i][1])
            seen.append(i)
    assert sorted(seen) == list(range(len(lengths)))         # every pair, once


def test_length_buckets_change_nothing_when_every_caption_fills_max_frames(tmp_path, tiny_config):
    max_frames = tiny_config.features.max_frames
    write_shards(str(tmp_path / "train"), [make_pair(i, max_frames + 7 * i)[0] for i in range(9)])
    plain = data.pairs_dataset(str(tmp_path), "train", tiny_config, 3, training=True, seed=4)
    bucketed = data.pairs_dataset(str(tmp_path), "train", tiny_config, 3, training=True, seed=4, bucket_frames=64)
    for a, b in zip(plain, bucketed, strict=True):
        for key in ("logmel", "nframes", "image", "pair_id"):
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())


def test_length_buckets_resume_on_the_same_batches(tmp_path, tiny_config):
    """An endless bucketed stream skipped by k batches continues with batch k of the unskipped stream (a resumed
    training run sees the batches it would have seen)."""
    write_shards(str(tmp_path / "train"), [make_pair(i, 20 + 37 * i)[0] for i in range(12)])

    def ids(skip_batches):
        ds = data.pairs_dataset(str(tmp_path), "train", tiny_config, 2, training=True, repeat=True, seed=3,
                                skip_examples=2 * skip_batches, bucket_frames=128)
        return [tuple(b["pair_id"].numpy()) for b in ds.take(6)]

    full = ids(0)
    assert ids(4)[:2] == full[4:6]
    with pytest.raises(ValueError, match="bucket_frames"):
        data.pairs_dataset(str(tmp_path), "train", tiny_config, 2, bucket_frames=-1)


def test_caption_crops_are_stretches_of_the_caption_alone_in_silence(tmp_path, tiny_config):
    lengths = [300, 12, 64, 511]
    pairs = [make_pair(i, n) for i, n in enumerate(lengths)]
    write_shards(str(tmp_path / "train"), [p[0] for p in pairs], num_shards=1)
    pad = np.float32(features.padding_value(tiny_config.features))
    width = data.crop_width((20, 50))
    assert width % 16 == 0 and width >= 50 + data.CROP_CONTEXT_FRAMES

    def crops(skip=0):
        ds = data.pairs_dataset(str(tmp_path), "train", tiny_config, 1, training=True, repeat=True, seed=2,
                                crop_frames=(20, 50), skip_examples=skip)
        return [(b["pair_id"].numpy()[0].decode(), b["crop_logmel"].numpy()[0], int(b["crop_nframes"][0]))
                for b in ds.take(12)]

    seen = crops()
    for pid, crop, n in seen:
        full = pairs[int(pid[1:])][2]
        assert crop.shape == (width, 40)
        assert n == len(full) if len(full) < 20 else 20 <= n <= 50
        starts = [s for s in range(len(full) - n + 1) if np.array_equal(full[s:s + n], crop[:n])]
        assert starts, f"crop of {pid} is not a stretch of its caption"
        assert np.all(crop[n:] == pad)
    assert len({(pid, n) for pid, _, n in seen}) > 4                # crops differ between repetitions
    again = crops(skip=5)                                           # a resumed stream crops the same way
    for (pid_a, crop_a, n_a), (pid_b, crop_b, n_b) in zip(seen[5:], again):
        assert pid_a == pid_b and n_a == n_b
        np.testing.assert_array_equal(crop_a, crop_b)
    with pytest.raises(ValueError, match="crop_frames"):
        next(iter(data.pairs_dataset(str(tmp_path), "train", tiny_config, 1, crop_frames=(50, 20))))


def test_shards_of_two_runs_are_not_mixed(tmp_path, tiny_config):
    write_shards(str(tmp_path / "train"), [make_pair(i, 20)[0] for i in range(4)], num_shards=2)
    write_shards(str(tmp_path / "train"), [make_pair(i, 20)[0] for i in range(4)], num_shards=3)
    with pytest.raises(ValueError, match="do not form one complete set"):
        data.list_shards(str(tmp_path), "train")


def test_missing_shards_and_corrupt_shard_are_named(tmp_path, tiny_config):
    with pytest.raises(FileNotFoundError, match="No TFRecord shards for split 'val'"):
        data.list_shards(str(tmp_path), "val")
    paths = write_shards(str(tmp_path / "train"), [make_pair(i, 20)[0] for i in range(6)])
    with open(paths[1], "r+b") as f:
        f.seek(30)
        f.write(b"\xff\xff\xff\xff")
    with pytest.raises(tf.errors.DataLossError, match=os.path.basename(paths[1])):
        data.count_records(paths)
    assert data.count_records(paths[:1]) == 3
