"""Your own recordings of the attribute words (issue 19): `beam_pipelines.import_words` and the semantic test on them.

The "recordings" are espeak-ng words saved as a phone would: 44.1 kHz stereo 16-bit WAV with silence and a little
noise around the word, so the resampling, downmixing and trimming all run."""
import json
import os
import shutil

import numpy as np
import pytest
import scipy.io.wavfile
import scipy.signal
import tensorflow as tf

from beam_pipelines import import_words
from tfvgs import audio_io, config as config_lib, data, features, schema, speech
from tfvgs.evaluation import semantic_eval
from tests.test_test_sets import Oracle, float_image, key, raw_records, text

RATE = 44100
SPEAKERS = {"alice": "en-us+f2", "bob": "en-gb-x-rp+m3"}
SAID = {"alice": ("red", "cube", "big"), "bob": ("red", "Block")}      # "Block": a synonym, any case
NOISE = 0.001                                                         # -60 dBFS of hiss, like a quiet room


def save_recording(path, waveform_16k, *, silence=0.4, scale=1.0, seed=0):
    """A 16 kHz word as a 44.1 kHz stereo 16-bit WAV with `silence` seconds of faint noise before and after."""
    rng = np.random.default_rng(seed)
    word = scipy.signal.resample_poly(waveform_16k, 441, 160) * scale
    pad = np.zeros(int(silence * RATE))
    mono = np.concatenate([pad, word, pad])
    mono = mono + rng.normal(0.0, NOISE, mono.size)
    stereo = np.stack([mono, 0.8 * mono], axis=1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    scipy.io.wavfile.write(path, RATE, (np.clip(stereo, -1, 1) * 32767).astype(np.int16))


EXPECTED_REJECTIONS = {            # file -> a phrase its reason must contain
    "alice_banana.wav": "unknown word 'banana'",
    "alice_loud_red.wav": "clipped",
    "alice_sentence_blue.wav": "longer than an isolated word",
    "alice_empty_red.wav": "empty file",
    "alice_corrupt_red.wav": "not a readable WAV",
    "alice_silent_red.wav": "no speech found",
    "notes.txt": "not a .wav or .flac file",
    "red.wav": "does not say speaker and word",
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("recorded")
    words_dir, out = str(root / "words"), str(root / "out")
    for speaker, said in SAID.items():
        for i, word in enumerate(said):
            folder = words_dir if speaker == "alice" else os.path.join(words_dir, speaker)   # subfolders too
            save_recording(os.path.join(folder, f"{speaker}_take{i}_{word}.wav"),
                           speech.synthesize(word.lower(), SPEAKERS[speaker]), seed=i)
    red = speech.synthesize("red", SPEAKERS["alice"])
    save_recording(os.path.join(words_dir, "alice_banana.wav"), speech.synthesize("banana", SPEAKERS["alice"]))
    save_recording(os.path.join(words_dir, "alice_loud_red.wav"), red, scale=8.0)
    save_recording(os.path.join(words_dir, "alice_sentence_blue.wav"),
                   speech.synthesize("blue is the colour of the sky and of the sea", SPEAKERS["alice"]))
    save_recording(os.path.join(words_dir, "alice_silent_red.wav"), np.zeros(8000, np.float32))
    save_recording(os.path.join(words_dir, "red.wav"), red)
    open(os.path.join(words_dir, "alice_empty_red.wav"), "wb").close()
    with open(os.path.join(words_dir, "alice_corrupt_red.wav"), "wb") as f:
        f.write(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with open(os.path.join(words_dir, "notes.txt"), "w") as f:
        f.write("takes recorded on a phone")
    summary = import_words.run(["--words_dir", words_dir, "--output_dir", out, "--config", "tiny"])
    return {"words_dir": words_dir, "out": out, "summary": summary}


def test_every_file_is_written_or_rejected_with_its_reason(recorded):
    s = recorded["summary"]
    files = sum(len(names) for _, _, names in os.walk(recorded["words_dir"]))
    assert s["read"] == files == s["written"] + s["rejected"] and s["balanced"]
    assert s["written"] == sum(map(len, SAID.values()))
    rejected = {r["id"]: r["reason"] for r in data_rejected(recorded["out"])}
    assert set(rejected) == set(EXPECTED_REJECTIONS)
    for name, phrase in EXPECTED_REJECTIONS.items():
        assert phrase in rejected[name], (name, rejected[name])
    assert s["words_by_speaker"] == {speaker: len(said) for speaker, said in SAID.items()}


def data_rejected(out):
    with open(os.path.join(out, "rejected.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_records_are_word_records_with_the_speaker_as_voice(recorded):
    records = raw_records(recorded["out"], schema.WORDS)
    found = sorted((text(r, schema.VOICE), text(r, schema.WORD_TEXT), text(r, schema.FAMILY), text(r, schema.VALUE))
                   for r in records)
    expected = sorted((speaker, word.lower(), *speech.WORD_TO_VALUE[word.lower()])
                      for speaker, said in SAID.items() for word in said)
    assert found == expected
    assert {text(r, schema.WORD_ID) for r in records} >= {"bob/bob_take1_Block.wav", "alice_take0_red.wav"}


def test_resampled_trimmed_recordings_match_the_synthesised_word(recorded):
    """44.1 kHz stereo with noisy silence around it comes back as the 16 kHz word espeak-ng made: the same length
    within 100 ms (the hiss raises the silence level from -60 dBFS to about -46, so a quiet last phone may go) and
    the same log-mel frames up to the noise and the resampling."""
    config = config_lib.get_config("tiny")
    words = {text(r, schema.WORD_ID): r for r in raw_records(recorded["out"], schema.WORDS)}
    for speaker, said in SAID.items():
        for i, word in enumerate(said):
            folder = "" if speaker == "alice" else f"{speaker}/"
            r = words[f"{folder}{speaker}_take{i}_{word}.wav"]
            frames, bins = r[schema.LOGMEL_SHAPE].int64_list.value
            imported = np.frombuffer(r[schema.LOGMEL].bytes_list.value[0], "<f4").reshape(frames, bins)
            direct = features.log_mel(tf.constant(speech.synthesize(word.lower(), SPEAKERS[speaker])),
                                      config.features).numpy()
            assert abs(frames - direct.shape[0]) <= 10, (word, frames, direct.shape[0])   # 10 frames = 100 ms
            assert best_alignment(imported, direct, max_shift=5) > 0.95


def best_alignment(a, b, max_shift):
    """The highest correlation of a's and b's log-mel where b has energy, over shifts of up to max_shift frames
    (the trimmed starts may differ by up to the 50 ms kept before the first loud sample)."""
    best = -1.0
    for shift in range(-max_shift, max_shift + 1):
        x, y = a[max(0, shift):], b[max(0, -shift):]
        n = min(len(x), len(y))
        loud = y[:n] > np.percentile(y[:n], 50)
        best = max(best, float(np.corrcoef(x[:n][loud], y[:n][loud])[0, 1]))
    return best


def test_trimming_level_follows_the_noise_floor():
    word = speech.synthesize("cylinder", SPEAKERS["alice"])
    silence = np.zeros(16000, np.float32)
    clean = np.concatenate([silence, word, silence])
    assert audio_io.speech_level(clean, 16000) == audio_io.SILENCE_LEVEL          # digital silence: espeak's rule
    trimmed = audio_io.trim_silence(clean, 16000)
    np.testing.assert_array_equal(np.trim_zeros(trimmed), np.trim_zeros(word))    # the word, whole ...
    assert trimmed.size <= word.size + 2 * 800                                    # ... and <= 50 ms each side
    noisy = clean + np.random.default_rng(0).normal(0.0, 0.003, clean.size).astype(np.float32)   # -50 dBFS
    level = audio_io.speech_level(noisy, 16000)
    assert level > 0.003 * 3                                                      # above the hiss ...
    trimmed = audio_io.trim_silence(noisy, 16000, level)
    assert abs(trimmed.size - word.size) < 0.15 * 16000                           # ... so the second of it goes


def test_the_accuracy_uses_exactly_the_imported_words(recorded, tiny_demo):
    """An oracle that knows only the imported words' log-mels (any other word would be a KeyError) scores every
    pair of a recorded value right, per speaker too; pairs of values nobody recorded are left out and counted."""
    config = config_lib.get_config("tiny")
    semantic_dir = os.path.join(tiny_demo["workdir"], "data", "semantic")
    vocabulary = sorted(f"{f}/{v}" for f, values in speech.VALUES.items() for v in values)

    def present(scene):
        have = {f"{f}/{o[f]}" for o in scene["objects"] for f in speech.ATTRIBUTES}
        return np.array([k in have for k in vocabulary], "float32")

    images = {}
    pairs = raw_records(semantic_dir, schema.PAIRS)
    for p in pairs:
        for png, scene in ((schema.POSITIVE_PNG, schema.POSITIVE_SCENE), (schema.NEGATIVE_PNG, schema.NEGATIVE_SCENE)):
            images[key(float_image(p[png].bytes_list.value[0]))] = present(json.loads(text(p, scene)))
    audio = {}
    for batch in data.words_dataset(recorded["out"], config):
        for logmel, f, v in zip(batch["logmel"].numpy(), batch["family"].numpy(), batch["value"].numpy()):
            one_hot = np.eye(len(vocabulary), dtype="float32")
            audio[key(logmel)] = one_hot[vocabulary.index(f"{f.decode()}/{v.decode()}")]
    result = semantic_eval.semantic_accuracy(Oracle(images, audio), recorded["out"], semantic_dir, config,
                                             batch_size=4, missing_words="skip")
    recorded_values = {"/".join(speech.WORD_TO_VALUE[w.lower()]) for said in SAID.values() for w in said}
    pair_values = [f"{text(p, schema.FAMILY)}/{text(p, schema.VALUE)}" for p in pairs]
    assert result["words"] == sum(map(len, SAID.values()))
    assert sum(result["n"].values()) == sum(v in recorded_values for v in pair_values)
    assert result["skipped_pairs"] == {v: pair_values.count(v) for v in sorted(set(pair_values) - recorded_values)}
    assert result["n"]["material"] == 0 and result["mean"] is None     # nobody said a material word: no mean
    for family in ("shape", "color", "size"):
        assert result[family] == 1.0
    assert set(result["per_speaker"]) == set(SAID)
    assert result["per_speaker"]["bob"]["n"]["size"] == 0       # bob did not say "big"
    assert result["per_speaker"]["alice"]["n"]["size"] == result["n"]["size"]
    assert result["per_speaker"]["bob"]["words"] == len(SAID["bob"])
    with pytest.raises(ValueError, match="No spoken word for pair values"):
        semantic_eval.semantic_accuracy(Oracle(images, audio), recorded["out"], semantic_dir, config)


def test_evaluate_scores_a_stage_on_the_recordings(recorded, tiny_demo, tmp_path):
    from tfvgs import evaluate
    workdir = str(tmp_path / "w")
    shutil.copytree(os.path.join(tiny_demo["workdir"], "davenet"), os.path.join(workdir, "davenet"))
    semantic_dir = os.path.join(tiny_demo["workdir"], "data", "semantic")
    metrics = evaluate.main(["--workdir", workdir, "--data_dir", os.path.join(tiny_demo["workdir"], "data", "pairs"),
                             "--num_pairs", "4", "--semantic_dir", semantic_dir, "--words_dir", recorded["out"]])
    s = metrics["semantic_accuracy_recorded"]
    assert s["words"] == sum(map(len, SAID.values())) and set(s["per_speaker"]) == set(SAID)
    assert set(s["ci95"]) == {*semantic_eval.FAMILIES, "mean"}
    assert s["families"] == ["shape", "color", "size"] and s["mean"] is None     # nobody said a material word
    own = metrics["semantic_accuracy"]                 # Table 1 stays the set's own words, all four families
    assert own["families"] == list(semantic_eval.FAMILIES) and 0.0 <= own["mean"] <= 1.0
    assert own["words"] != s["words"]
    assert metrics["settings"]["words_dir"] == os.path.abspath(recorded["out"])
    report = open(os.path.join(workdir, "eval", "davenet", "report.md")).read()
    assert recorded["out"] in report and "| alice |" in report and "| bob |" in report
    with pytest.raises(SystemExit):
        evaluate.main(["--workdir", workdir, "--data_dir", semantic_dir, "--words_dir", recorded["out"]])


def test_intervals_are_those_of_a_mean_over_pairs():
    scores = np.array([1.0, 0.0, 0.5, 1.0, 1.0, 0.0, 1.0, 0.5])
    families = np.array(["shape"] * 4 + ["color"] * 3 + ["size"])
    summary = semantic_eval._family_summary(scores, families)
    assert summary["n"] == {"shape": 4, "color": 3, "material": 0, "size": 1}
    assert summary["shape"] == pytest.approx(0.625) and summary["color"] == pytest.approx(2 / 3)
    assert summary["ci95"]["shape"] == pytest.approx(1.96 * np.std(scores[:4], ddof=1) / 2)
    assert summary["ci95"]["size"] is None and summary["ci95"]["mean"] is None     # one pair: no interval
    assert summary["ci95"]["material"] is None
    assert semantic_eval._family_summary(scores[:7], families[:7])["mean"] is None     # two families: no mean
    every = np.concatenate([scores[:7], [1.0, 0.0, 0.5, 1.0]])
    all_families = np.concatenate([families[:7], ["material", "material", "size", "size"]])
    full = semantic_eval._family_summary(every, all_families)
    groups = [every[all_families == f] for f in semantic_eval.FAMILIES]
    se2 = [np.var(g, ddof=1) / len(g) for g in groups]
    assert full["mean"] == pytest.approx(np.mean([g.mean() for g in groups]))
    assert full["ci95"]["mean"] == pytest.approx(1.96 * np.sqrt(sum(se2)) / 4)
    assert full["families"] == list(semantic_eval.FAMILIES)


def test_a_manifest_names_word_and_speaker(recorded, tmp_path):
    manifest = {"audio_base_path": recorded["words_dir"],
                "data": [{"wav": "alice_take0_red.wav", "word": "crimson", "speaker": "carol"},
                         {"wav": "bob/bob_take0_red.wav", "word": "RED", "speaker": "dave"},
                         {"wav": "alice_take1_cube.wav", "word": "cube"},
                         {"wav": "../outside.wav", "word": "red", "speaker": "eve"}]}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    out = str(tmp_path / "out")
    s = import_words.run(["--manifest", str(path), "--output_dir", out, "--config", "tiny"])
    assert (s["read"], s["written"], s["rejected"]) == (4, 1, 3)
    assert s["words_by_speaker"] == {"dave": 1}
    reasons = sorted(r["reason"] for r in data_rejected(out))
    assert any("unknown word 'crimson'" in r for r in reasons)
    assert any("missing string field 'speaker'" in r for r in reasons)
    assert any("escapes its base path" in r for r in reasons)


def test_a_semantic_sets_folder_is_refused(tiny_demo, recorded):
    with pytest.raises(ValueError, match="is inside --words_dir"):
        import_words.run(["--words_dir", recorded["words_dir"], "--config", "tiny",
                          "--output_dir", os.path.join(recorded["words_dir"], "imported")])
    with pytest.raises(ValueError, match="holds a semantic set's image pairs"):
        import_words.run(["--words_dir", recorded["words_dir"], "--config", "tiny",
                          "--output_dir", os.path.join(tiny_demo["workdir"], "data", "semantic")])
