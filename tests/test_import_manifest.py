"""import_manifest on a manifest with planted bad entries: nothing is lost, every rejection has its reason."""
import json
import os

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from beam_pipelines import common, import_manifest
from tfvgs import audio_io, data, schema


def tone(seconds, rate, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.fixture
def manifest_dir(tmp_path):
    images, audio = tmp_path / "images", tmp_path / "audio"
    images.mkdir()
    audio.mkdir()
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(images / "wide.png")
    Image.fromarray(np.full((50, 50, 3), 30, np.uint8)).save(images / "square.jpg")
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "outside.wav").write_bytes(audio_io.encode_wav(tone(1, 16000)))
    (audio / "ok16k.wav").write_bytes(audio_io.encode_wav(tone(1.0, 16000)))
    import scipy.io.wavfile
    scipy.io.wavfile.write(audio / "stereo44k.wav", 44100, (tone(1.5, 44100, 2) * 32767).astype(np.int16))
    (audio / "empty.wav").write_bytes(b"")
    (audio / "corrupt.wav").write_bytes(b"RIFF....WAVEjunk")
    (audio / "long.wav").write_bytes(audio_io.encode_wav(tone(25.0, 8000), 8000))
    entries = [
        {"image": "wide.png", "wav": "ok16k.wav", "uttid": "good-1", "speaker": "s1"},
        {"image": "square.jpg", "wav": "stereo44k.wav", "uttid": "good-2", "speaker": "s2"},
        {"image": "corrupt.png", "wav": "ok16k.wav", "uttid": "bad-corrupt-image"},
        {"image": "missing.png", "wav": "ok16k.wav", "uttid": "bad-missing-image"},
        {"image": "wide.png", "wav": "missing.wav", "uttid": "bad-missing-audio"},
        {"image": "wide.png", "wav": "empty.wav", "uttid": "bad-empty-audio"},
        {"image": "wide.png", "wav": "corrupt.wav", "uttid": "bad-corrupt-audio"},
        {"image": "wide.png", "wav": "long.wav", "uttid": "bad-long-audio"},
        {"image": "wide.png", "wav": "../outside.wav", "uttid": "bad-escape"},
        {"image": "wide.png", "uttid": "bad-no-wav"},
        "not an object",
    ]
    manifest = {"image_base_path": str(images), "audio_base_path": str(audio), "data": entries}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


EXPECTED_REASONS = {
    "bad-corrupt-image": "corrupt or unreadable image",
    "bad-missing-image": "missing image file",
    "bad-missing-audio": "missing audio file",
    "bad-empty-audio": "empty file",
    "bad-corrupt-audio": "not a readable WAV",
    "bad-long-audio": "too long",
    "bad-escape": "escapes its base path",
    "bad-no-wav": "missing field 'wav'",
    import_manifest.entry_id('"not an object"', None): "entry must be an object",
}


def test_run_reconciles_counts_and_writes_dead_letters(manifest_dir, tmp_path, tiny_config):
    out = tmp_path / "out"
    summary = import_manifest.run(["--manifest", str(manifest_dir), "--output_dir", str(out), "--config", "tiny"])
    assert (summary["read"], summary["written"], summary["rejected"]) == (11, 2, 9)
    rejected = {r["id"]: r for r in common.read_jsonl(str(out / "rejected.jsonl"))}
    assert set(rejected) == set(EXPECTED_REASONS)
    for item_id, fragment in EXPECTED_REASONS.items():
        assert fragment in rejected[item_id]["reason"], (item_id, rejected[item_id])
    assert json.loads((out / "summary.json").read_text())["balanced"] is True
    records = [schema.read_pair_record(r.numpy()) for r in
               __import__("tensorflow").data.TFRecordDataset(data.list_shards(str(out), "train"))]
    by_id = {r["pair_id"]: r for r in records}
    assert set(by_id) == {"good-1", "good-2"}
    assert by_id["good-1"]["image"].shape == (32, 32, 3)
    # 1.5 s of 44.1 kHz stereo -> 16 kHz mono -> 1 + (24000 - 400) // 160 frames.
    assert by_id["good-2"]["nframes"] == 1 + (24000 - 400) // 160
    assert by_id["good-2"]["voice"] == "s2"


def test_import_fn_in_test_pipeline(manifest_dir, tiny_config):
    manifest = import_manifest.load_manifest(str(manifest_dir))
    fn = import_manifest.ImportEntryFn(tiny_config, manifest["image_base_path"], manifest["audio_base_path"], "val")
    with TestPipeline() as p:
        out = (p | beam.Create([json.dumps(entry) for entry in manifest["data"]] + [""])   # a blank line: no entry
               | beam.ParDo(fn).with_outputs(common.REJECTED_TAG, main="pairs"))
        ids = out.pairs | "Ids" >> beam.Map(lambda kv: (kv[0], schema.read_pair_record(kv[1])["pair_id"]))
        assert_that(ids, equal_to([("val", "good-1"), ("val", "good-2")]), label="pairs")
        reasons = out[common.REJECTED_TAG] | "RejectedIds" >> beam.Map(lambda r: r["id"])
        assert_that(reasons, equal_to(sorted(EXPECTED_REASONS)), label="rejected")


def test_a_json_lines_manifest_is_read_by_the_workers(manifest_dir, tmp_path):
    """The entries of a .jsonl manifest never enter the job graph; a line that is not JSON is rejected like a bad
    entry, and a Places JSON is converted into the same form (<output_dir>/manifest.jsonl)."""
    manifest = json.loads(manifest_dir.read_text())
    lines = [json.dumps(entry) for entry in manifest["data"][:3]] + ["{not json", ""]
    path = tmp_path / "entries.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    summary = import_manifest.run(["--manifest", str(path), "--output_dir", str(out), "--config", "tiny",
                                   "--image_base_path", manifest["image_base_path"],
                                   "--audio_base_path", manifest["audio_base_path"]])
    assert (summary["read"], summary["written"], summary["rejected"]) == (4, 2, 2)
    reasons = {r["id"]: r["reason"] for r in common.read_jsonl(str(out / "rejected.jsonl"))}
    assert "not valid JSON" in reasons[import_manifest.entry_id("{not json", None)] and "bad-corrupt-image" in reasons
    assert import_manifest.entry_id('{"wav": "a.wav"}', {"wav": "a.wav"}) != \
        import_manifest.entry_id('{"image": "b.png", "wav": "a.wav"}', {"image": "b.png", "wav": "a.wav"})
    converted = tmp_path / "converted"
    import_manifest.run(["--manifest", str(manifest_dir), "--output_dir", str(converted), "--config", "tiny"])
    assert [json.loads(line) for line in (converted / "manifest.jsonl").read_text().splitlines()] == manifest["data"]
    before = sorted(os.listdir(converted))
    with pytest.raises(import_manifest.ManifestError, match="names its own base paths"):
        import_manifest.run(["--manifest", str(manifest_dir), "--output_dir", str(converted), "--config", "tiny",
                             "--image_base_path", "/elsewhere"])
    assert sorted(os.listdir(converted)) == before          # a bad manifest fails before the output is cleared


def test_resolve_under_refuses_escapes():
    assert import_manifest.resolve_under("/data/images", "a/b.png") == os.path.normpath("/data/images/a/b.png")
    assert import_manifest.resolve_under("gs://bucket/images", "a/../b.png") == "gs://bucket/images/b.png"
    for bad in ("../x.png", "a/../../x.png", "/etc/passwd", "gs://other/x.png", ""):
        with pytest.raises(ValueError):
            import_manifest.resolve_under("/data/images", bad)


def test_bad_manifest_file_is_a_clear_error(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json")
    with pytest.raises(import_manifest.ManifestError, match="not valid JSON"):
        import_manifest.load_manifest(str(path))
    path.write_text(json.dumps({"data": [], "audio_base_path": "a"}))
    with pytest.raises(import_manifest.ManifestError, match="image_base_path"):
        import_manifest.load_manifest(str(path))
