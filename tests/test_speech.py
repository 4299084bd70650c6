"""Spoken captions: caption text (captions), the speaker pool (voices) and espeak-ng speech (tts)."""
import collections
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

from tfvgs.speech import (ACCENTS, ATTRIBUTES, RELATIONS, SPOKEN_WORDS, VALUES, VARIANTS, Voice, caption_for_scene,
                          caption_words, check_espeak, describe_scene, isolated_words, is_test_speaker, pick_voice,
                          speaker_pool, synthesize, synthesize_many)
from tfvgs.speech import tts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_ESPEAK = shutil.which(os.environ.get(tts.ESPEAK_ENV_VAR) or "espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed (apt-get install espeak-ng)")

# Ground-plane directions of a fixed camera, as CLEVR stores them in scene["directions"].
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "front": (0.0, -1.0), "behind": (0.0, 1.0)}


def make_scene(attributes, positions, eps=0.2):
    """A CLEVR scene dict; relationships computed as CLEVR does: j is `rel` of i iff (p_j - p_i) . dir > eps."""
    objects = [dict(shape=shape, color=color, material=material, size=size, rotation=0.0,
                    **{"3d_coords": [x, y, 0.35 if size == "small" else 0.7], "pixel_coords": [0, 0, 0.0]})
               for (size, color, material, shape), (x, y) in zip(attributes, positions)]
    relationships = {
        name: [[j for j, (xj, yj) in enumerate(positions)
                if j != i and (xj - xi) * dx + (yj - yi) * dy > eps] for i, (xi, yi) in enumerate(positions)]
        for name, (dx, dy) in DIRECTIONS.items()}
    return {"objects": objects, "relationships": relationships}


def random_scene(num_objects, seed):
    """Random attributes; positions at least 1 unit apart, so every pair of objects has some relation."""
    rng = random.Random(seed)
    positions = []
    while len(positions) < num_objects:
        p = (rng.uniform(-3, 3), rng.uniform(-3, 3))
        if all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 >= 1.0 for q in positions):
            positions.append(p)
    attributes = [tuple(rng.choice(VALUES[a]) for a in ATTRIBUTES) for _ in range(num_objects)]
    return make_scene(attributes, positions)


def relation_word_counts(text):
    return collections.Counter(t for t in re.findall(r"[a-z]+", text.lower()) if t in RELATIONS)


def check_caption_is_true(scene, caption):
    """Every recorded mention and relation is true of the scene, and the text says exactly what is recorded."""
    objects = scene["objects"]
    for mention in caption.mentions:
        for attribute, value in mention.values.items():
            assert objects[mention.object_index][attribute] == value, (caption.text, mention)
    for relation in caption.relations:
        assert relation.subject in scene["relationships"][relation.relation][relation.reference], \
            (caption.text, relation)
    spoken = caption_words(caption.text)
    for attribute in ATTRIBUTES:
        recorded = [m.values[attribute] for m in caption.mentions if attribute in m.values]
        assert spoken[attribute] == recorded, (caption.text, attribute)
    assert relation_word_counts(caption.text) == collections.Counter(r.relation for r in caption.relations), \
        caption.text


# ---------------------------------------------------------------------------------------------------------------
# captions


@pytest.mark.parametrize("num_objects", [1, 2, 3, 4, 5, 6])
def test_synthetic_caption_names_every_attribute_of_every_object(num_objects):
    for seed in range(25):
        scene = random_scene(num_objects, seed=1000 * num_objects + seed)
        caption = describe_scene(scene, seed)
        check_caption_is_true(scene, caption)
        # Each object gets one full description with all four attributes.
        full = [m for m in caption.mentions if not m.reference]
        assert sorted(m.object_index for m in full) == list(range(num_objects)), caption.text
        for m in full:
            assert set(m.words) == set(ATTRIBUTES), caption.text
        # The brief's check straight from the text: every object's values are among the words spoken.
        spoken = {a: collections.Counter(v) for a, v in caption_words(caption.text).items()}
        for attribute in ATTRIBUTES:
            needed = collections.Counter(obj[attribute] for obj in scene["objects"])
            assert not needed - spoken[attribute], (caption.text, attribute)


@pytest.mark.parametrize("num_objects", [2, 3, 6])
def test_synthetic_caption_places_every_object_after_the_first(num_objects):
    for seed in range(25):
        scene = random_scene(num_objects, seed=seed)
        caption = describe_scene(scene, seed)
        # All pairs are related in these scenes, so each object but one is placed relative to another.
        assert len({r.subject for r in caption.relations}) == num_objects - 1, caption.text
        for r in caption.relations:
            assert r.subject in scene["relationships"][r.relation][r.reference]


def test_relations_follow_clevr_direction_semantics():
    # Object 1 stands to the right of and behind object 0; nothing else holds.
    scene = make_scene([("large", "red", "metal", "cube"), ("small", "blue", "rubber", "sphere")],
                       [(0.0, 0.0), (2.0, 2.0)])
    for seed in range(30):
        caption = describe_scene(scene, seed)
        for r in caption.relations:
            assert (r.subject, r.relation, r.reference) in {(1, "right", 0), (1, "behind", 0),
                                                           (0, "left", 1), (0, "front", 1)}, caption.text


def test_caption_is_deterministic_per_seed():
    scene = random_scene(4, seed=3)
    for seed in (0, 1, 12345):
        for style in ("synthetic", "natural"):
            assert describe_scene(scene, seed, style) == describe_scene(scene, seed, style)
            assert caption_for_scene(scene, seed, style) == describe_scene(scene, seed, style).text


def test_captions_and_voices_are_identical_in_a_fresh_process():
    """Guards against Python's per-process salted hash() sneaking into seeding."""
    scene = random_scene(3, seed=5)
    code = ("import json, sys; from tfvgs.speech import caption_for_scene, pick_voice; "
            "scene = json.loads(sys.argv[1]); "
            "print(json.dumps([caption_for_scene(scene, 7), caption_for_scene(scene, 7, 'natural'), "
            "pick_voice('utt-7', 'test').to_dict()]))")
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", code, json.dumps(scene)], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == [caption_for_scene(scene, 7), caption_for_scene(scene, 7, "natural"),
                               pick_voice("utt-7", "test").to_dict()]


def test_synthetic_captions_vary_across_seeds():
    scene = make_scene([("large", "red", "metal", "cube"), ("small", "blue", "rubber", "sphere"),
                        ("large", "green", "metal", "cylinder")], [(0.0, 0.0), (2.0, 1.5), (-2.0, 2.0)])
    captions = [describe_scene(scene, seed) for seed in range(60)]
    texts = [c.text for c in captions]
    assert len(set(texts)) >= 50
    assert len({t.split()[0] for t in texts}) >= 3                      # several sentence templates
    first_object = {c.mentions[0].object_index for c in captions}
    assert first_object == {0, 1, 2}                                    # object order is shuffled
    assert any("objects" in t for t in texts) and any("objects" not in t for t in texts)   # list and chain forms
    words_for_metal = {m.words["material"] for c in captions for m in c.mentions
                       if m.values.get("material") == "metal"}
    assert words_for_metal == set(SPOKEN_WORDS["material"]["metal"])
    # Adjective order varies where English allows it: "shiny red cube" and "red shiny cube" / "red metal cube".
    assert any(re.search(r"\b(shiny|metallic) red\b", t) for t in texts)
    assert any(re.search(r"\bred (shiny|metallic|metal)\b", t) for t in texts)
    assert not any(re.search(r"\b(metal|rubber) (red|blue|green)\b", t) for t in texts)


def test_synthetic_captions_are_short_without_filler():
    scene = random_scene(3, seed=11)
    for seed in range(20):
        text = caption_for_scene(scene, seed)
        tokens = re.findall(r"[a-z']+", text.lower())
        assert len(tokens) <= 60, text
        assert not {"um", "uh", "think", "well"} & set(tokens), text


def test_natural_captions_are_true_and_partial_with_colour_most_frequent():
    counts = collections.Counter()
    num_attribute_words = []
    fillers = 0
    for seed in range(200):
        scene = random_scene(1 + seed % 6, seed)
        caption = describe_scene(scene, seed, "natural")
        check_caption_is_true(scene, caption)
        assert caption.mentions, caption.text
        for m in caption.mentions:
            counts.update(list(m.words))
        num_attribute_words.append(sum(len(v) for v in caption_words(caption.text).values()))
        fillers += bool({"um", "uh", "so", "think", "well"} & set(re.findall(r"[a-z]+", caption.text.lower())))
    assert counts.most_common(1)[0][0] == "color"
    assert counts["color"] > counts["size"] > 0 and counts["color"] > counts["material"] > 0
    assert np.mean(num_attribute_words) < 8          # synthetic would say 4 per object, ~14 on average here
    assert fillers > 50


def test_caption_words_maps_synonyms_to_canonical_values():
    words = caption_words("Um, a big shiny ball behind the grey blocks, and a tiny matte cylinder.")
    assert words == {"size": ["large", "small"], "color": ["gray"], "material": ["metal", "rubber"],
                     "shape": ["sphere", "cube", "cylinder"]}
    assert caption_words("") == {a: [] for a in ATTRIBUTES}


def test_isolated_words_cover_every_value_once():
    words = isolated_words()
    assert set(words) == set(ATTRIBUTES)
    assert {a: len(v) for a, v in words.items()} == {"shape": 3, "color": 8, "material": 2, "size": 2}
    for attribute, pairs in words.items():
        assert [value for value, _ in pairs] == list(VALUES[attribute])
        for value, word in pairs:
            assert caption_words(word)[attribute] == [value]
            assert len(word.split()) == 1


@pytest.mark.parametrize("scene, match", [
    ({"objects": []}, "no objects"),
    ({}, "objects"),
    ({"objects": [{"shape": "cube", "color": "pink", "material": "metal", "size": "large"}]}, "color='pink'"),
    ({"objects": [{"shape": "cube", "color": "red", "material": "metal", "size": "large"}] * 2}, "relationships"),
    ({"objects": [{"shape": "cube", "color": "red", "material": "metal", "size": "large"}] * 2,
      "relationships": {"left": [[1]], "right": [[], []], "front": [[], []], "behind": [[], []]}}, "left"),
])
def test_bad_scenes_are_rejected(scene, match):
    with pytest.raises(ValueError, match=match):
        describe_scene(scene, 0)


def test_bad_style_and_seed_are_rejected():
    scene = random_scene(1, 0)
    with pytest.raises(ValueError, match="Received: style='poetic'"):
        describe_scene(scene, 0, "poetic")
    with pytest.raises(ValueError, match="seed"):
        describe_scene(scene, 1.5)


def test_caption_record_is_json_serialisable():
    scene = random_scene(3, seed=2)
    record = json.loads(json.dumps(describe_scene(scene, 4).to_dict()))
    assert record["text"] == caption_for_scene(scene, 4)
    assert all(len(r) == 3 for r in record["relations"])


# ---------------------------------------------------------------------------------------------------------------
# voices


def test_voice_splits_are_disjoint_and_cover_every_accent_and_variant():
    train, test = set(speaker_pool("train")), set(speaker_pool("test"))
    assert not train & test
    assert train | test == set(speaker_pool("all"))
    assert len(speaker_pool("all")) == len(ACCENTS) * len(VARIANTS)
    assert 0.15 <= len(test) / (len(train) + len(test)) <= 0.25
    for split in (train, test):
        assert {a for a, _ in split} == set(ACCENTS)
        assert {v for _, v in split} == set(VARIANTS)


def test_pick_voice_is_deterministic_and_stays_in_its_split():
    train, test = set(speaker_pool("train")), set(speaker_pool("test"))
    seen = set()
    for i in range(300):
        voice = pick_voice(f"utt-{i}", "test", rate_range=(150, 160), pitch_range=(20, 25))
        assert voice == pick_voice(f"utt-{i}", "test", rate_range=(150, 160), pitch_range=(20, 25))
        assert (voice.accent, voice.variant) in test and (voice.accent, voice.variant) not in train
        assert voice.split == "test" and is_test_speaker(voice.accent, voice.variant)
        assert 150 <= voice.rate <= 160 and 20 <= voice.pitch <= 25
        assert (pick_voice(f"utt-{i}", "train").accent, pick_voice(f"utt-{i}", "train").variant) in train
        seen.add(voice)
    assert len({(v.accent, v.variant) for v in seen}) == len(test)       # the hash spreads over the whole pool
    assert len({v.rate for v in seen}) == 11 and len({v.pitch for v in seen}) == 6


def test_voice_validation():
    voice = Voice.from_id("en-gb-scotland+f3", rate=160, pitch=40)
    assert (voice.id, voice.accent, voice.variant, voice.gender) == ("en-gb-scotland+f3", "en-gb-scotland", "f3",
                                                                     "female")
    assert voice.espeak_args() == ["-v", "en-gb-scotland+f3", "-s", "160", "-p", "40"]
    with pytest.raises(ValueError, match="accent='en-gb'"):   # espeak-ng would silently ignore the variant
        Voice("en-gb", "m1")
    with pytest.raises(ValueError, match="variant='m9'"):
        Voice("en-us", "m9")
    with pytest.raises(ValueError, match="rate=20"):
        Voice("en-us", "m1", rate=20)
    with pytest.raises(ValueError, match="accent\\+variant"):
        Voice.from_id("en-us")
    with pytest.raises(ValueError, match="split='val'"):
        pick_voice("x", "val")
    with pytest.raises(ValueError, match="pitch_range"):
        pick_voice("x", "train", pitch_range=(70, 30))


# ---------------------------------------------------------------------------------------------------------------
# tts

SENTENCE = "There is a large red metal cube. Behind it is a small shiny ball."


@needs_espeak
def test_synthesize_returns_plausible_16khz_speech():
    waveform = synthesize(SENTENCE, Voice("en-us", "f2", rate=170, pitch=50))
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert 0.3 <= waveform.size / 16000 <= 10.0
    assert np.all(np.abs(waveform) <= 1.0)
    assert np.sqrt(np.mean(waveform ** 2)) > 0.01
    # Light trimming: speech starts within 60 ms of the start.
    assert np.flatnonzero(np.abs(waveform) > 1e-3)[0] / 16000 < 0.06


@needs_espeak
def test_synthesize_is_deterministic_and_follows_rate_and_sample_rate():
    voice = Voice("en-gb-x-rp", "m3", rate=170, pitch=50)
    a, b = synthesize(SENTENCE, voice), synthesize(SENTENCE, voice)
    np.testing.assert_array_equal(a, b)
    untrimmed16 = synthesize(SENTENCE, voice, trim_silence=False)
    untrimmed22 = synthesize(SENTENCE, voice, sample_rate=22050, trim_silence=False)
    assert abs(untrimmed22.size / 22050 - untrimmed16.size / 16000) < 1e-3
    faster = synthesize(SENTENCE, Voice("en-gb-x-rp", "m3", rate=300, pitch=50))
    assert faster.size < 0.8 * a.size
    assert synthesize("red", voice).size < a.size


@needs_espeak
def test_every_pool_voice_really_differs():
    """espeak-ng falls back to its default voice for unknown names without an error; this catches that."""
    digests = {}
    for accent, variant in speaker_pool("all"):
        waveform = synthesize("red cube", Voice(accent, variant))
        digests.setdefault(waveform.tobytes(), []).append(f"{accent}+{variant}")
    assert [ids for ids in digests.values() if len(ids) > 1] == []


@needs_espeak
def test_synthesize_many_matches_serial_in_order():
    items = [(f"a {color} cube", pick_voice(f"k{i}")) for i, color in enumerate(VALUES["color"][:5])]
    serial = synthesize_many(items, workers=1)
    threaded = synthesize_many(items, workers=2)
    assert len(threaded) == 5
    for x, y in zip(serial, threaded):
        np.testing.assert_array_equal(x, y)
    assert synthesize_many([], workers=2) == []
    with pytest.raises(ValueError, match="workers=0"):
        synthesize_many(items, workers=0)


@needs_espeak
def test_check_espeak_reports_version():
    assert "espeak" in check_espeak().lower()


def test_missing_espeak_gives_install_command(monkeypatch):
    monkeypatch.setenv(tts.ESPEAK_ENV_VAR, "/nonexistent/espeak-ng")
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        synthesize("red cube", Voice("en-us", "m1"))
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        check_espeak()


def test_failing_espeak_names_text_and_voice(monkeypatch, tmp_path):
    fake = tmp_path / "espeak-ng"
    fake.write_text("#!/bin/sh\necho 'synthesis exploded' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv(tts.ESPEAK_ENV_VAR, str(fake))
    with pytest.raises(RuntimeError, match=r"exit code 3.*'red cube'.*en-029\+f1.*synthesis exploded"):
        synthesize("red cube", Voice("en-029", "f1"))


def test_synthesize_rejects_empty_text():
    with pytest.raises(ValueError, match="text"):
        synthesize("  ", Voice("en-us", "m1"))


def test_voice_spec_round_trip():
    from tfvgs.speech import Voice, pick_voice
    voice = pick_voice("train/0000001/0", "train", rate_range=(150, 200), pitch_range=(20, 80))
    assert Voice.from_spec(voice.spec) == voice
    assert Voice.from_spec("en-us+f2") == Voice("en-us", "f2")
    with pytest.raises(ValueError, match="en-us\\+f2@183,42"):
        Voice.from_spec("en-us+f2@fast")
