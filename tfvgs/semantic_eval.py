"""The semantic test (paper 000 sec. 6.2) and the transfer test (sec. 6.5): record formats, readers and accuracies.

Semantic test: for each attribute value, a spoken isolated word ("red") in several held-out voices, and pairs of
rendered images, one with an object of that value and one without any. A model passes a pair when MISA scores the
positive image above the negative for the word; the accuracy of a pair is averaged over the word's voices, and a
family's accuracy (shape, color, material, size) over its pairs. Words are shared by all pairs, so the independent
samples are the pairs: "n" counts pairs.

Transfer test: a rendered scene, the same scene with one attribute of one object changed by the renderer
(`world.random_edit`), and the synthetic caption of the original spoken. A model passes when it scores the original
above the edited image for the caption (chance 50%).

Ties (equal scores, e.g. from a constant model) count as half right, so a model that cannot tell the images apart
scores chance, not zero.

    words = words_dataset(semantic_dir, config)
    semantic_accuracy(model, words, semantic_dir, config)   # {"shape": .., "color": .., ..., "mean": .., "n": {..}}
    transfer_accuracy(model, transfer_dir, config)          # {"accuracy": .., "n": .., "chance": 0.5, ...}

`model` is a `DualEncoder` or anything with `image_encoder(images, training=)` -> [B, H', W', D] and
`audio_encoder(logmel, training=)` -> [B, T', D] with `audio_encoder.output_frames(nframes)`.

Record kinds written by `beam_pipelines.semantic_test_set` (words-*, pairs-*) and `beam_pipelines.transfer_test_set`
(<split>-*) are defined here, next to their readers.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Optional, Union

import numpy as np
import tensorflow as tf

from tfvgs import features, schema, similarity
from tfvgs.config import Config

FAMILIES = ("shape", "color", "material", "size")   # the order of paper 000 Table 1
WORDS, PAIRS = "words", "pairs"                     # the semantic set's two record kinds (file prefixes)
CHANCE = 0.5

# Keys of the new record kinds (audio keys are those of pair records).
WORD_ID = "word/id"
FAMILY = "semantic/family"
VALUE = "semantic/value"
WORD_TEXT = "word/text"
POSITIVE_PNG = "positive/png"
NEGATIVE_PNG = "negative/png"
POSITIVE_SCENE = "positive/scene_json"
NEGATIVE_SCENE = "negative/scene_json"
EDITED_PNG = "edited/png"
EDITED_SCENE = "edited/scene_json"
EDIT_JSON = "edit/json"
EDIT_ATTRIBUTE = "edit/attribute"


# ---------------------------------------------------------------------------------------------------------------
# Record formats

def _bytes(value) -> tf.train.Feature:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _logmel_features(logmel: np.ndarray, where: str) -> Dict[str, tf.train.Feature]:
    logmel = np.asarray(logmel)
    if logmel.ndim != 2 or logmel.shape[0] == 0:
        raise ValueError(f"logmel must be [frames>0, bins] for {where}. Received shape {logmel.shape}")
    return {schema.LOGMEL: _bytes(logmel.astype("<f4").tobytes()), schema.LOGMEL_SHAPE: _ints(logmel.shape),
            schema.NFRAMES: _ints([logmel.shape[0]])}


def _check_family_value(family: str, value: str) -> None:
    from tfvgs.world import ATTRIBUTES
    if family not in ATTRIBUTES or value not in ATTRIBUTES[family]:
        raise ValueError(f"Unknown attribute family/value. Expected a family of {tuple(ATTRIBUTES)} and one of its "
                         f"values. Received: family={family!r}, value={value!r}")


def encode_word_record(*, word_id: str, family: str, value: str, text: str, logmel: np.ndarray, voice: str) -> bytes:
    """One spoken isolated word -> serialized tf.train.Example."""
    _check_family_value(family, value)
    feature = {schema.VERSION: _ints([schema.SCHEMA_VERSION]), WORD_ID: _bytes(word_id), FAMILY: _bytes(family),
               VALUE: _bytes(value), WORD_TEXT: _bytes(text), schema.VOICE: _bytes(voice),
               **_logmel_features(logmel, f"word {word_id!r}")}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def encode_semantic_pair_record(*, pair_id: str, family: str, value: str, positive_png: bytes, negative_png: bytes,
                                positive_scene_json: str, negative_scene_json: str) -> bytes:
    """A positive image (an object has `value`) and a negative one (none has) -> serialized tf.train.Example."""
    _check_family_value(family, value)
    feature = {schema.VERSION: _ints([schema.SCHEMA_VERSION]), schema.PAIR_ID: _bytes(pair_id),
               FAMILY: _bytes(family), VALUE: _bytes(value), POSITIVE_PNG: _bytes(positive_png),
               NEGATIVE_PNG: _bytes(negative_png), POSITIVE_SCENE: _bytes(positive_scene_json),
               NEGATIVE_SCENE: _bytes(negative_scene_json)}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def encode_transfer_record(*, pair_id: str, split: str, image_png: bytes, edited_png: bytes, caption: str,
                           logmel: np.ndarray, voice: str, scene_json: str, edited_scene_json: str,
                           edit: Dict[str, Any]) -> bytes:
    """An original rendering, its one-attribute renderer edit and the original's spoken caption -> tf.train.Example.
    `edit` is random_edit's description {"object_index", "attribute", "old_value", "new_value"}."""
    feature = {schema.VERSION: _ints([schema.SCHEMA_VERSION]), schema.SPLIT: _bytes(split),
               schema.PAIR_ID: _bytes(pair_id), schema.IMAGE_PNG: _bytes(image_png), EDITED_PNG: _bytes(edited_png),
               schema.CAPTION: _bytes(caption), schema.VOICE: _bytes(voice), schema.SCENE_JSON: _bytes(scene_json),
               EDITED_SCENE: _bytes(edited_scene_json), EDIT_JSON: _bytes(json.dumps(edit, sort_keys=True)),
               EDIT_ATTRIBUTE: _bytes(edit["attribute"]), **_logmel_features(logmel, f"transfer pair {pair_id!r}")}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


_LOGMEL_SPEC = {schema.LOGMEL: tf.io.FixedLenFeature([], tf.string),
                schema.LOGMEL_SHAPE: tf.io.FixedLenFeature([2], tf.int64)}
WORD_FEATURES = {WORD_ID: tf.io.FixedLenFeature([], tf.string), FAMILY: tf.io.FixedLenFeature([], tf.string),
                 VALUE: tf.io.FixedLenFeature([], tf.string), WORD_TEXT: tf.io.FixedLenFeature([], tf.string),
                 schema.VOICE: tf.io.FixedLenFeature([], tf.string), **_LOGMEL_SPEC}
SEMANTIC_PAIR_FEATURES = {schema.PAIR_ID: tf.io.FixedLenFeature([], tf.string),
                          FAMILY: tf.io.FixedLenFeature([], tf.string), VALUE: tf.io.FixedLenFeature([], tf.string),
                          POSITIVE_PNG: tf.io.FixedLenFeature([], tf.string),
                          NEGATIVE_PNG: tf.io.FixedLenFeature([], tf.string),
                          POSITIVE_SCENE: tf.io.FixedLenFeature([], tf.string),
                          NEGATIVE_SCENE: tf.io.FixedLenFeature([], tf.string)}
TRANSFER_FEATURES = {schema.PAIR_ID: tf.io.FixedLenFeature([], tf.string),
                     schema.IMAGE_PNG: tf.io.FixedLenFeature([], tf.string),
                     EDITED_PNG: tf.io.FixedLenFeature([], tf.string),
                     schema.CAPTION: tf.io.FixedLenFeature([], tf.string),
                     schema.VOICE: tf.io.FixedLenFeature([], tf.string),
                     EDIT_JSON: tf.io.FixedLenFeature([], tf.string),
                     EDIT_ATTRIBUTE: tf.io.FixedLenFeature([], tf.string), **_LOGMEL_SPEC}


def _padded_logmel(parsed, config: Config):
    logmel = tf.io.decode_raw(parsed[schema.LOGMEL], tf.float32, little_endian=True)
    logmel = tf.reshape(logmel, tf.cast(parsed[schema.LOGMEL_SHAPE], tf.int32))
    logmel = tf.ensure_shape(logmel, [None, config.features.num_mel_bins])  # records of another config fail here
    return features.pad_or_crop(logmel, config.features.max_frames, features.padding_value(config.features))


def _image(png, config: Config):
    size = config.world.image_size
    from tfvgs.data import image_to_float
    return image_to_float(tf.ensure_shape(tf.io.decode_png(png, channels=3), [size, size, 3]))


def _dataset(data_dir: str, kind: str, parse, config: Config, batch_size: int) -> tf.data.Dataset:
    from tfvgs import data
    files = data.list_shards(data_dir, kind)
    ds = tf.data.TFRecordDataset(files)
    ds = ds.map(parse, num_parallel_calls=config.data.reader_parallelism, deterministic=True)
    return ds.batch(batch_size).prefetch(config.data.prefetch).with_options(data.dataset_options(config))


def words_dataset(semantic_dir: str, config: Config, batch_size: int = 256) -> tf.data.Dataset:
    """Batches of spoken words: logmel [B, max_frames, bins], nframes [B], family, value, text, voice, word_id."""
    def parse(serialized):
        p = tf.io.parse_single_example(serialized, WORD_FEATURES)
        logmel, nframes = _padded_logmel(p, config)
        return {"logmel": logmel, "nframes": nframes, "family": p[FAMILY], "value": p[VALUE],
                "text": p[WORD_TEXT], "voice": p[schema.VOICE], "word_id": p[WORD_ID]}
    return _dataset(semantic_dir, WORDS, parse, config, batch_size)


def semantic_pairs_dataset(semantic_dir: str, config: Config, batch_size: int = 32) -> tf.data.Dataset:
    """Batches of semantic pairs: positive / negative images float [-1, 1], family, value, pair_id."""
    def parse(serialized):
        p = tf.io.parse_single_example(serialized, SEMANTIC_PAIR_FEATURES)
        return {"positive": _image(p[POSITIVE_PNG], config), "negative": _image(p[NEGATIVE_PNG], config),
                "family": p[FAMILY], "value": p[VALUE], "pair_id": p[schema.PAIR_ID]}
    return _dataset(semantic_dir, PAIRS, parse, config, batch_size)


def transfer_dataset(transfer_dir: str, config: Config, split: str = "test", batch_size: int = 32, *,
                     training: bool = False, skip_examples: int = 0) -> tf.data.Dataset:
    """Batches of transfer pairs: image (original) and edited float [-1, 1], logmel, nframes, caption, voice,
    edit_attribute, edit (JSON), pair_id. `training`: shuffled (seeded), endless, full batches, the first
    `skip_examples` records skipped (the renderer-edit training set of the `exact_edits` stage)."""
    def parse(serialized):
        p = tf.io.parse_single_example(serialized, TRANSFER_FEATURES)
        logmel, nframes = _padded_logmel(p, config)
        return {"image": _image(p[schema.IMAGE_PNG], config), "edited": _image(p[EDITED_PNG], config),
                "logmel": logmel, "nframes": nframes, "caption": p[schema.CAPTION], "voice": p[schema.VOICE],
                "edit_attribute": p[EDIT_ATTRIBUTE], "edit": p[EDIT_JSON], "pair_id": p[schema.PAIR_ID]}
    if not training:
        return _dataset(transfer_dir, split, parse, config, batch_size)
    from tfvgs import data
    ds = data.records(transfer_dir, split, config, training=True, seed=None, repeat=True,
                      skip_examples=skip_examples)
    ds = ds.map(parse, num_parallel_calls=config.data.reader_parallelism, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(config.data.prefetch)
    return ds.with_options(data.dataset_options(config))


# ---------------------------------------------------------------------------------------------------------------
# Accuracies

def _encode_images(model, images):
    return model.image_encoder(images, training=False)


def _encode_audio(model, logmel, nframes):
    audio = model.audio_encoder(logmel, training=False)
    frames = tf.minimum(tf.cast(model.audio_encoder.output_frames(nframes), tf.int32), tf.shape(audio)[1])
    return audio, frames


def _preference(positive_scores, negative_scores):
    """1 where the positive scores higher, 0.5 on a tie, 0 otherwise."""
    return (tf.cast(positive_scores > negative_scores, tf.float32)
            + 0.5 * tf.cast(tf.equal(positive_scores, negative_scores), tf.float32))


def _strings(tensor) -> np.ndarray:
    return np.array([s.decode() for s in np.asarray(tensor).reshape(-1)])


def semantic_accuracy(model, words: Union[str, tf.data.Dataset], pairs_dir: str, config: Config, *,
                      kind: str = "misa", batch_size: int = 32, max_pairs: Optional[int] = None) -> Dict[str, Any]:
    """Accuracy of preferring the image with an attribute value over one without it, for the spoken value word.

    `words` is a semantic set directory or a `words_dataset`. Every word is encoded once; each batch of pairs is
    scored against all words with one `similarity_matrix` call per side, and a pair's accuracy is the mean over the
    words (voices) of its value. Returns {family: accuracy, "mean": mean over families, "chance": 0.5,
    "n": {family: pairs}, "voices": {family: words per value (mean)}, "per_value": {family/value: accuracy}}.
    `max_pairs` stops after the batch that reaches it (for quick looks; the full set is the +-2% estimate).
    """
    similarity.check_kind(kind)
    if isinstance(words, str):
        words = words_dataset(words, config)
    logmels, nframes, word_keys = [], [], []
    for batch in words:
        logmels.append(batch["logmel"])
        nframes.append(batch["nframes"])
        word_keys += [f"{f}/{v}" for f, v in zip(_strings(batch["family"]), _strings(batch["value"]))]
    if not word_keys:
        raise ValueError(f"`words` holds no spoken words. Received: {words!r}")
    word_feats, word_frames = _encode_audio(model, tf.concat(logmels, 0), tf.concat(nframes, 0))
    word_keys = np.array(word_keys)
    vocabulary = sorted(set(word_keys))
    word_value = tf.constant([vocabulary.index(k) for k in word_keys], tf.int32)            # [W]

    totals: Dict[str, float] = {}
    counts: Dict[str, int] = {}
    seen = 0
    for batch in semantic_pairs_dataset(pairs_dir, config, batch_size):
        pair_keys = [f"{f}/{v}" for f, v in zip(_strings(batch["family"]), _strings(batch["value"]))]
        missing = sorted(set(pair_keys) - set(vocabulary))
        if missing:
            raise ValueError(f"No spoken word for pair values {missing} in `words`. Received words for: {vocabulary}")
        pair_value = tf.constant([vocabulary.index(k) for k in pair_keys], tf.int32)          # [B]
        positive = similarity.similarity_matrix(_encode_images(model, batch["positive"]), word_feats, word_frames,
                                                kind)                                         # [B, W]
        negative = similarity.similarity_matrix(_encode_images(model, batch["negative"]), word_feats, word_frames,
                                                kind)
        match = tf.cast(tf.equal(pair_value[:, None], word_value[None, :]), tf.float32)      # [B, W]
        per_pair = (tf.reduce_sum(_preference(positive, negative) * match, axis=1)
                    / tf.reduce_sum(match, axis=1)).numpy()
        for key, accuracy in zip(pair_keys, per_pair):
            totals[key] = totals.get(key, 0.0) + float(accuracy)
            counts[key] = counts.get(key, 0) + 1
        seen += len(pair_keys)
        if max_pairs is not None and seen >= max_pairs:
            break
    if not counts:
        raise ValueError(f"No semantic pairs in {pairs_dir} (expected {WORDS}-/{PAIRS}-*.tfrecord shards)")

    result: Dict[str, Any] = {"chance": CHANCE, "n": {}, "voices": {}, "per_value": {}, "similarity": kind}
    family_means = []
    for family in FAMILIES:
        keys = [k for k in counts if k.split("/")[0] == family]
        n = sum(counts[k] for k in keys)
        result["n"][family] = n
        if n:
            result[family] = sum(totals[k] for k in keys) / n
            family_means.append(result[family])
            result["voices"][family] = float(np.mean([np.sum(word_keys == k) for k in keys]))
        else:
            result[family] = float("nan")
        for k in sorted(keys):
            result["per_value"][k] = totals[k] / counts[k]
    result["mean"] = float(np.mean(family_means))
    return result


def transfer_accuracy(model, transfer_dir: str, config: Config, *, split: str = "test", kind: str = "misa",
                      batch_size: int = 32, max_pairs: Optional[int] = None) -> Dict[str, Any]:
    """Accuracy of preferring the original rendering over its one-attribute edit for the original's caption.

    Returns {"accuracy", "n", "chance": 0.5, "by_attribute": {attribute: {"accuracy", "n"}}}.
    """
    similarity.check_kind(kind)
    correct, attributes = [], []
    for batch in transfer_dataset(transfer_dir, config, split, batch_size):
        audio, frames = _encode_audio(model, batch["logmel"], batch["nframes"])
        original = similarity.paired_similarity(_encode_images(model, batch["image"]), audio, frames, kind)
        edited = similarity.paired_similarity(_encode_images(model, batch["edited"]), audio, frames, kind)
        correct.append(_preference(original, edited).numpy())
        attributes.append(_strings(batch["edit_attribute"]))
        if max_pairs is not None and sum(len(c) for c in correct) >= max_pairs:
            break
    if not correct:
        raise ValueError(f"No transfer pairs of split {split!r} in {transfer_dir}")
    correct_all, attributes_all = np.concatenate(correct), np.concatenate(attributes)
    if max_pairs is not None:
        correct_all, attributes_all = correct_all[:max_pairs], attributes_all[:max_pairs]
    by_attribute = {a: {"accuracy": float(correct_all[attributes_all == a].mean()),
                        "n": int(np.sum(attributes_all == a))} for a in FAMILIES if np.any(attributes_all == a)}
    return {"accuracy": float(correct_all.mean()), "n": int(correct_all.size), "chance": CHANCE,
            "similarity": kind, "by_attribute": by_attribute}


def margin_of_error(accuracy: float, n: int, z: float = 1.96) -> float:
    """Half-width of the normal-approximation 95% interval of an accuracy over n independent pairs."""
    return float(z * np.sqrt(max(accuracy * (1 - accuracy), 0.0) / max(n, 1)))
