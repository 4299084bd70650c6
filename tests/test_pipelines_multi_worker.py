"""Every Beam pipeline writes the same records and counts on 2 worker processes as on one (issue 18).

A Dataflow job runs a pipeline's steps on many workers at once; the DirectRunner's multi-processing mode
(`--direct_num_workers 2 --direct_running_mode multi_processing`) does the same on one machine. An earlier
measurement here saw a multi-threaded DirectRunner return 994 of 1000 records; this test compares, pipeline by
pipeline, the records of every output kind (as sorted lists of serialized records: which shard a record lands in
and its place there are the runner's choice), the dead letters and the read / written / rejected counts.

Slow (2 x 8 pipeline runs, worker processes start TensorFlow): `make test-all`.
"""
import json
import os

import numpy as np
import pytest
import scipy.io.wavfile
import tensorflow as tf

from beam_pipelines import (audio_clevrgan, common, import_manifest, import_words, render_scenes, semantic_test_set,
                            spoken_captions, transfer_test_set)
from tfvgs import data, speech
from tfvgs.config import get_config
from tests.test_audio_clevrgan import save_untrained_models

pytestmark = pytest.mark.slow

MULTI = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
TINY = ["--config", "tiny", "--set", "data.num_shards=2"]


def outputs(output_dir, kinds):
    """{kind: sorted serialized records} plus the sorted dead letters and the counts of summary.json."""
    found = {kind: sorted(r.numpy() for r in tf.data.TFRecordDataset(data.list_shards(output_dir, kind)))
             for kind in kinds}
    found["rejected"] = sorted(json.dumps(r, sort_keys=True)
                               for r in common.read_jsonl(os.path.join(output_dir, "rejected.jsonl")))
    with open(os.path.join(output_dir, "summary.json")) as f:
        summary = json.load(f)
    found["counts"] = {k: summary[k] for k in (common.READ, common.WRITTEN, common.REJECTED)}
    for name in sorted(os.listdir(output_dir)):     # render_scenes' CLEVR scene files, joined from worker blocks
        if name.startswith("scenes_") and name.endswith(".json"):
            with open(os.path.join(output_dir, name), "rb") as f:
                found[name] = f.read()
    return found


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """What the pipelines read: rendered scenes, a trained-shape (untrained) GAN + segmenter, a manifest, words."""
    root = tmp_path_factory.mktemp("multi_worker_inputs")
    scenes = str(root / "scenes")
    render_scenes.run(["--output_dir", scenes, "--num_scenes", "10", *TINY])
    workdir = str(root / "w")
    save_untrained_models(workdir, get_config("tiny"))
    media = root / "media"
    media.mkdir()
    word = speech.synthesize("red", "en-us+f2")
    scipy.io.wavfile.write(media / "alice_1_red.wav", 16000, (word * 32767).astype(np.int16))
    scipy.io.wavfile.write(media / "bob_2_cube.wav", 16000, (speech.synthesize("cube", "en-us+m3") * 32767)
                           .astype(np.int16))
    (media / "alice_3_banana.wav").write_bytes(b"")
    from PIL import Image
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(media / "image.png")
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps({"image_base_path": str(media), "audio_base_path": str(media), "data": [
        {"image": "image.png", "wav": "alice_1_red.wav", "uttid": "a"},
        {"image": "image.png", "wav": "bob_2_cube.wav", "uttid": "b"},
        {"image": "missing.png", "wav": "bob_2_cube.wav", "uttid": "c"}]}))
    return {"scenes": scenes, "workdir": workdir, "words_dir": str(media), "manifest": str(manifest)}


PIPELINES = {
    "render_scenes": (render_scenes.run, lambda i: ["--num_scenes", "10"], ("train", "val", "test")),
    "spoken_captions": (spoken_captions.run, lambda i: ["--scenes_dir", i["scenes"]], ("train", "val", "test")),
    "import_manifest": (import_manifest.run, lambda i: ["--manifest", i["manifest"]], ("train",)),
    "import_words": (import_words.run, lambda i: ["--words_dir", i["words_dir"]], ("words",)),
    "transfer_test_set": (transfer_test_set.run, lambda i: ["--num_scenes", "4"], ("test",)),
    "semantic_test_set": (semantic_test_set.run, lambda i: ["--pairs_per_value", "1", "--voices_per_word", "1"],
                          ("words", "pairs")),
    "semantic_test_set_gan": (semantic_test_set.run, lambda i: [
        "--source", "gan", "--workdir", i["workdir"], "--num_samples", "12", "--pairs_per_value", "2",
        "--voices_per_word", "1", "--set", "segmenter.min_confidence=0.0"], ("words", "pairs")),
    "audio_clevrgan": (audio_clevrgan.run, lambda i: [
        "--workdir", i["workdir"], "--num_samples", "8", "--set", "segmenter.min_confidence=0.0"],
        ("train", "val", "test")),
}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_two_worker_processes_write_what_one_writes(inputs, tmp_path, name):
    run, flags, kinds = PIPELINES[name]
    results = {}
    for mode, extra in (("one", []), ("two", MULTI)):
        out = str(tmp_path / mode)
        run([*flags(inputs), "--output_dir", out, *TINY, *extra])
        results[mode] = outputs(out, kinds)
    one, two = results["one"], results["two"]
    assert sum(len(one[k]) for k in kinds) > 0, f"{name} wrote nothing: the comparison would be vacuous"
    assert two["counts"] == one["counts"]
    assert one["counts"]["read"] == one["counts"]["written"] + one["counts"]["rejected"]
    scene_files = sorted(k for k in one if k.startswith("scenes_"))
    assert sorted(k for k in two if k.startswith("scenes_")) == scene_files
    for key in (*kinds, "rejected", *scene_files):
        assert two[key] == one[key], f"{name}: {key} differ ({len(two[key])} vs {len(one[key])} items)"
