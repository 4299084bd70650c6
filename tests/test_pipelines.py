"""The built-in world's Beam pipelines: outputs, CLEVR scene JSON, determinism and dead-letter accounting."""
import json
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines import common, render_scenes, spoken_captions
from tfvgs import data, schema, speech, world


def records(data_dir, split, reader):
    return [reader(r.numpy()) for r in tf.data.TFRecordDataset(data.list_shards(data_dir, split))]


def test_render_scenes_writes_splits_and_clevr_json(tiny_world):
    summary = json.load(open(os.path.join(tiny_world["scenes"], "summary.json")))
    assert (summary["read"], summary["written"], summary["rejected"]) == (40, 40, 0)
    counts = {}
    for split in data.SPLITS:
        scenes = world.load_scenes_json(os.path.join(tiny_world["scenes"], f"scenes_{split}.json"))
        recs = records(tiny_world["scenes"], split, schema.read_scene_record)
        counts[split] = len(recs)
        assert sorted(s["image_index"] for s in scenes) == sorted(r["scene_index"] for r in recs)
        for r in recs[:3]:
            again = world.render(r["scene"], 32, supersample=2)  # exact re-render from the stored JSON
            np.testing.assert_array_equal(again.image, r["image"])
            np.testing.assert_array_equal(again.instance_mask, r["instance_mask"])
            assert r["split"] == split
    assert counts == {"train": 32, "val": 4, "test": 4}


def test_scene_json_is_joined_from_blocks_into_the_bytes_one_writer_gives(tmp_path, monkeypatch):
    # blocks of 3 scenes: the 10 train scenes come from 4 blocks written by separate workers, joined in order
    monkeypatch.setattr(render_scenes, "SCENE_JSON_BLOCK", 3)
    out = str(tmp_path / "scenes")
    render_scenes.run(["--output_dir", out, "--num_scenes", "13", "--config", "tiny"])
    assert not os.path.exists(render_scenes.scene_json_blocks_dir(out))
    for split in data.SPLITS:
        path = os.path.join(out, f"scenes_{split}.json")
        scenes = world.load_scenes_json(path)
        indices = [s["image_index"] for s in scenes]
        assert indices == sorted(r["scene_index"] for r in records(out, split, schema.read_scene_record))
        assert indices == sorted(indices) and len(indices) > 0
        reference = str(tmp_path / f"reference_{split}.json")
        world.write_scenes_json(reference, scenes, split)
        assert open(path, "rb").read() == open(reference, "rb").read()


def test_a_split_without_scenes_still_gets_its_scene_file(tmp_path):
    render_scenes.write_scene_json_block(str(tmp_path), "train", 0, [{"image_index": 1}, {"image_index": 0}])
    paths = render_scenes.join_scene_json_blocks(str(tmp_path), ("train", "val"))
    assert [s["image_index"] for s in json.load(open(paths[0]))["scenes"]] == [0, 1]
    assert json.load(open(paths[1])) == {"info": world.scenes_json_info("val"), "scenes": []}


def test_spoken_captions_pairs_voices_and_counts(tiny_world):
    summary = json.load(open(os.path.join(tiny_world["pairs"], "summary.json")))
    assert summary["read"] == 40 and summary["written"] + summary["rejected"] == 40 and summary["balanced"]
    train = records(tiny_world["pairs"], "train", schema.read_pair_record)
    test = records(tiny_world["pairs"], "test", schema.read_pair_record)
    for r in train + test:
        scene = json.loads(r["scene_json"])
        mentioned = speech.caption_words(r["caption"])
        for obj in scene["objects"]:
            for attribute in ("shape", "color", "material", "size"):
                assert obj[attribute] in mentioned[attribute], (r["caption"], obj)
        assert r["logmel"].shape == (r["nframes"], 40)
    train_speakers = {speech.Voice.from_spec(r["voice"]).id for r in train}
    test_speakers = {speech.Voice.from_spec(r["voice"]).id for r in test}
    assert test_speakers and not train_speakers & test_speakers


def test_render_scenes_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        render_scenes.run(["--output_dir", str(out), "--num_scenes", "6", "--config", "tiny",
                           "--set", "data.num_shards=1"])
    for split in data.SPLITS:
        ra = sorted(r.numpy() for r in tf.data.TFRecordDataset(data.list_shards(str(a), split)))
        rb = sorted(r.numpy() for r in tf.data.TFRecordDataset(data.list_shards(str(b), split)))
        assert ra == rb


def test_spoken_captions_dead_letters_add_up(tiny_world, tmp_path):
    """Planted bad inputs: a corrupt scene record and speech over the length limit are rejected with reasons."""
    scenes_dir = tmp_path / "scenes"
    scenes_dir.mkdir()
    good = [r.numpy() for r in tf.data.TFRecordDataset(data.list_shards(tiny_world["scenes"], "val"))]
    with tf.io.TFRecordWriter(str(scenes_dir / "val-00000-of-00001.tfrecord")) as w:
        for r in good:
            w.write(r)
        w.write(b"this is not a tf.train.Example")
    out = tmp_path / "pairs"
    # 2 captions per scene; 1.2 s is shorter than most captions and longer than none of the one-object ones
    summary = spoken_captions.run(["--scenes_dir", str(scenes_dir), "--output_dir", str(out), "--config", "tiny",
                                   "--captions_per_image", "2", "--set", "speech.max_seconds=2.5",
                                   "--set", "features.max_frames=150"])
    rejected = common.read_jsonl(str(out / "rejected.jsonl"))
    # kept but longer than the readers' max_frames: counted, never silent
    frames = [schema.read_pair_record(r.numpy())["nframes"]
              for r in tf.data.TFRecordDataset(data.list_shards(str(out), "val"))]
    assert sum(n > 150 for n in frames) > 0
    assert summary["counters"].get(common.LONGER_THAN_MAX_FRAMES, 0) == sum(n > 150 for n in frames)
    assert summary["read"] == 2 * len(good) + 1
    assert summary["written"] + summary["rejected"] == summary["read"]
    assert summary["rejected"] == len(rejected) >= 2
    reasons = {r["id"]: r["reason"] for r in rejected}
    assert "unparseable-scene-record" in reasons
    assert any("outside [0.2, 2.5] s" in reason for reason in reasons.values())
    assert summary["rejected_by_step"]["caption"] == 1


def test_plan_captions_in_test_pipeline(tiny_world, tiny_config):
    raw = [r.numpy() for r in tf.data.TFRecordDataset(data.list_shards(tiny_world["scenes"], "test"))]
    with TestPipeline() as p:
        items = (p | beam.Create(raw)
                 | beam.ParDo(spoken_captions.PlanCaptionsFn(tiny_config, 3, "synthetic")).with_outputs(
                     common.REJECTED_TAG, main="items"))
        ids = items.items | beam.Map(lambda item: item["pair_id"].rsplit("/", 1)[1])
        assert_that(ids, equal_to(["0", "1", "2"] * len(raw)))


@pytest.mark.parametrize("runner,checked", [("DirectRunner", True), ("DataflowRunner", False)])
def test_espeak_is_required_only_where_the_pipeline_speaks(monkeypatch, runner, checked):
    """A Dataflow launch needs no espeak-ng on the launching machine (the workers speak); a local run fails early."""
    from apache_beam.options.pipeline_options import PipelineOptions

    def missing():
        raise RuntimeError("espeak-ng not found")
    monkeypatch.setattr(speech, "check_espeak", missing)
    options = PipelineOptions(["--runner", runner])
    if checked:
        with pytest.raises(RuntimeError, match="espeak-ng"):
            common.check_local_espeak(options)
    else:
        common.check_local_espeak(options)


def test_reject_logs_the_first_few_and_sends_every_rejection_to_the_dead_letter_output(caplog):
    import logging
    reject = common.Reject("describe", log_first=3)
    with caplog.at_level(logging.WARNING):
        outputs = [reject(f"item-{i}", "segmenter: no object found") for i in range(10)]
    assert [o.value["id"] for o in outputs] == [f"item-{i}" for i in range(10)]     # nothing dropped
    assert all(o.tag == common.REJECTED_TAG for o in outputs)
    lines = [r.getMessage() for r in caplog.records if "rejected item-" in r.getMessage()]
    assert len(lines) == 3 and "rejected.jsonl" in lines[-1], lines
