"""The semantic test (paper 000 sec. 6.2) and the transfer test (sec. 6.5): their accuracies.

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

    words = data.words_dataset(semantic_dir, config)
    semantic_accuracy(model, words, semantic_dir, config)   # {"shape": .., "color": .., ..., "mean": .., "n": {..}}
    transfer_accuracy(model, transfer_dir, config)          # {"accuracy": .., "n": .., "chance": 0.5, ...}

`model` is a `DualEncoder` or anything with `image_encoder(images, training=)` -> [B, H', W', D] and
`audio_encoder(logmel, training=)` -> [B, T', D] with `audio_encoder.output_frames(nframes)`.

Their record kinds (written by `beam_pipelines.semantic_test_set` and `transfer_test_set`) live in `tfvgs.schema`,
their readers in `tfvgs.data`.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Union

import numpy as np
import tensorflow as tf

from tfvgs import data, schema, similarity
from tfvgs.config import Config

FAMILIES = ("shape", "color", "material", "size")   # the order of paper 000 Table 1
CHANCE = 0.5


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
        words = data.words_dataset(words, config)
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
    for batch in data.semantic_pairs_dataset(pairs_dir, config, batch_size):
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
        raise ValueError(f"No semantic pairs in {pairs_dir} (expected {schema.WORDS}-/{schema.PAIRS}-*.tfrecord shards)")

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
    for batch in data.transfer_dataset(transfer_dir, config, split, batch_size):
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
