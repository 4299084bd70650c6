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
