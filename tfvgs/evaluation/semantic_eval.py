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


def speaker_of(voice: str) -> str:
    """The speaker of a word record's voice: an espeak-ng spec "en-us+f2@183,42" -> "en-us+f2"; an imported
    recording's speaker name (`beam_pipelines.import_words`) as it is."""
    return str(voice).partition("@")[0]


def _family_summary(per_pair: np.ndarray, families: np.ndarray) -> Dict[str, Any]:
    """{family: accuracy, "mean", "n": {family: pairs}, "ci95": {family or "mean": half-width}} of per-pair scores.

    A pair's score is its mean over words (in [0, 1]); the interval of a family is the normal one of a mean,
    1.96 x sample std / sqrt(n), and of the mean over families 1.96 x sqrt(sum of the families' squared standard
    errors) / families. An interval needs 2 pairs: with fewer it is None (and so is the mean's). The mean needs
    every family: a mean over the families someone happened to record would not compare with one over all four, so
    without them it is None ("families" lists those with pairs)."""
    result: Dict[str, Any] = {"n": {}, "ci95": {}}
    means, variances = [], []
    for family in FAMILIES:
        scores = per_pair[families == family]
        result["n"][family] = int(scores.size)
        if scores.size:
            result[family] = float(scores.mean())
            se2 = float(scores.var(ddof=1)) / scores.size if scores.size > 1 else None
            result["ci95"][family] = None if se2 is None else float(1.96 * np.sqrt(se2))
            means.append(result[family])
            variances.append(se2)
        else:
            result[family], result["ci95"][family] = float("nan"), None
    result["families"] = [f for f in FAMILIES if result["n"][f]]
    complete = len(means) == len(FAMILIES)
    result["mean"] = float(np.mean(means)) if complete else None
    known = complete and None not in variances
    result["ci95"]["mean"] = float(1.96 * np.sqrt(np.sum(variances)) / len(variances)) if known else None
    return result


def semantic_accuracy(model, words: Union[str, tf.data.Dataset], pairs_dir: str, config: Config, *,
                      kind: str = "misa", batch_size: int = 32, max_pairs: Optional[int] = None,
                      missing_words: str = "error") -> Dict[str, Any]:
    """Accuracy of preferring the image with an attribute value over one without it, for the spoken value word.

    `words` is a semantic set directory (its own words, or recordings imported by `beam_pipelines.import_words`)
    or a `words_dataset`. Every word is encoded once; each batch of pairs is scored against all words with one
    `similarity_matrix` call per side, and a pair's accuracy is the mean over the words (voices) of its value.
    Returns {family: accuracy, "mean": mean over families, "chance": 0.5, "n": {family: pairs}, "ci95": {family or
    "mean": 95% half-width}, "voices": {family: words per value (mean)}, "per_value": {family/value: accuracy},
    "per_speaker": {speaker: the same family summary with only that speaker's words}, "words": words used}.
    A pair whose value has no spoken word raises ValueError, or with missing_words="skip" is left out and counted
    in "skipped_pairs" {family/value: pairs} (recordings need not cover every word).
    `max_pairs` stops after the batch that reaches it (for quick looks; the full set is the +-2% estimate).
    """
    similarity.check_kind(kind)
    if missing_words not in ("error", "skip"):
        raise ValueError(f"`missing_words` must be 'error' or 'skip'. Received: {missing_words!r}")
    if isinstance(words, str):
        words = data.words_dataset(words, config)
    logmels, nframes, word_keys, speakers = [], [], [], []
    for batch in words:
        logmels.append(batch["logmel"])
        nframes.append(batch["nframes"])
        word_keys += [f"{f}/{v}" for f, v in zip(_strings(batch["family"]), _strings(batch["value"]))]
        speakers += [speaker_of(v) for v in _strings(batch["voice"])]
    if not word_keys:
        raise ValueError(f"`words` holds no spoken words. Received: {words!r}")
    word_feats, word_frames = _encode_audio(model, tf.concat(logmels, 0), tf.concat(nframes, 0))
    word_keys, speakers = np.array(word_keys), np.array(speakers)
    vocabulary = sorted(set(word_keys))

    preferences, pair_keys, skipped = [], [], {}
    for batch in data.semantic_pairs_dataset(pairs_dir, config, batch_size):
        keys = np.array([f"{f}/{v}" for f, v in zip(_strings(batch["family"]), _strings(batch["value"]))])
        known = np.isin(keys, vocabulary)
        if not known.all():
            if missing_words == "error":
                raise ValueError(f"No spoken word for pair values {sorted(set(keys[~known]))} in `words`. "
                                 f"Received words for: {vocabulary}")
            for k in keys[~known]:
                skipped[k] = skipped.get(k, 0) + 1
        if known.any():
            positive = similarity.similarity_matrix(_encode_images(model, tf.boolean_mask(batch["positive"], known)),
                                                    word_feats, word_frames, kind)                  # [B, W]
            negative = similarity.similarity_matrix(_encode_images(model, tf.boolean_mask(batch["negative"], known)),
                                                    word_feats, word_frames, kind)
            preferences.append(_preference(positive, negative).numpy())
            pair_keys.append(keys[known])
        if max_pairs is not None and sum(map(len, pair_keys)) >= max_pairs:
            break
    if not pair_keys:
        raise ValueError(f"No semantic pairs {'with a spoken word ' if skipped else ''}in {pairs_dir} (expected "
                         f"{schema.WORDS}-/{schema.PAIRS}-*.tfrecord shards; pairs without a word: {skipped})")
    preference, pair_keys = np.concatenate(preferences), np.concatenate(pair_keys)            # [P, W], [P]
    match = (pair_keys[:, None] == word_keys[None, :]).astype(np.float32)                     # [P, W]
    families = np.array([k.split("/")[0] for k in pair_keys])

    def per_pair(mask: np.ndarray) -> np.ndarray:
        """Each pair's mean preference over its value's words among `mask`; NaN where it has none."""
        m = match * mask[None, :]
        with np.errstate(invalid="ignore"):
            return (preference * m).sum(axis=1) / m.sum(axis=1)

    scores = per_pair(np.ones(len(word_keys), np.float32))
    result: Dict[str, Any] = {"chance": CHANCE, "similarity": kind, "words": int(len(word_keys)),
                              **_family_summary(scores, families)}
    result["voices"] = {f: float(np.mean([np.sum(word_keys == k) for k in sorted(set(pair_keys[families == f]))]))
                        for f in FAMILIES if np.any(families == f)}
    result["per_value"] = {k: float(scores[pair_keys == k].mean()) for k in sorted(set(pair_keys))}
    result["per_speaker"] = {}
    for speaker in sorted(set(speakers)):
        speaker_scores = per_pair((speakers == speaker).astype(np.float32))
        said = ~np.isnan(speaker_scores)
        result["per_speaker"][speaker] = dict(_family_summary(speaker_scores[said], families[said]),
                                              words=int(np.sum(speakers == speaker)))
    if skipped:
        result["skipped_pairs"] = dict(sorted(skipped.items()))
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
