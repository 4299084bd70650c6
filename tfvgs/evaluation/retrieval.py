"""Retrieval evaluation (paper 000 Table 2, paper 001 sec. 5.1): embed N held-out pairs, score all N x N
image/caption combinations with batched matmuls, and report recall@k in both directions."""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfvgs import similarity as sim


def embed_pairs(model, dataset: tf.data.Dataset, max_pairs: int, encode=None
                ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor, list]:
    """Image features [N,H',W',D], audio features [N,T',D], valid frames [N] and pair ids of up to max_pairs.
    `encode` (batch -> model outputs) lets callers reuse one traced function across calls."""
    images, audios, frames, ids = [], [], [], []
    count = 0
    # reduce_retracing: batches of captions of every length would otherwise retrace (and warn) per shape
    encode = encode or tf.function(lambda b: model(b, training=False), reduce_retracing=True)
    for batch in dataset:
        i, a, f = encode({k: batch[k] for k in ("image", "logmel", "nframes")})
        images.append(i), audios.append(a), frames.append(f)
        ids.extend(p.decode() for p in batch["pair_id"].numpy())
        count += int(i.shape[0])
        if count >= max_pairs:
            break
    if not images:
        raise ValueError("no pairs to evaluate: the dataset is empty")
    n = min(count, max_pairs)
    return (tf.concat(images, 0)[:n], tf.concat(audios, 0)[:n], tf.concat(frames, 0)[:n], ids[:n])


def recall_at_k(scores: tf.Tensor, ks: Sequence[int] = (1, 5, 10)) -> Dict[str, Dict[str, float]]:
    """scores[i, a] for images i and captions a, with pair j = (image j, caption j).

    audio_to_image: each caption ranks all images (the caption is the query); image_to_audio: the reverse.
    """
    scores = tf.convert_to_tensor(scores)
    n = int(scores.shape[0])
    if not bool(tf.reduce_all(tf.math.is_finite(scores))):
        raise ValueError("similarity scores contain NaN or infinite values: the model is broken")
    positive = tf.linalg.diag_part(scores)
    # rank of the true match = number of other candidates scoring at least as high (ties count against the query,
    # so a collapsed model with all scores equal gets recall 0, not 100)
    not_self = 1 - tf.eye(n, dtype=tf.int32)
    a2i_rank = tf.reduce_sum(tf.cast(scores >= positive[None, :], tf.int32) * not_self, axis=0)   # per caption
    i2a_rank = tf.reduce_sum(tf.cast(scores >= positive[:, None], tf.int32) * not_self, axis=1)   # per image
    out = {}
    for name, rank in (("audio_to_image", a2i_rank), ("image_to_audio", i2a_rank)):
        out[name] = {str(k): float(np.mean(rank.numpy() < k)) for k in ks}
    out["mean"] = {str(k): (out["audio_to_image"][str(k)] + out["image_to_audio"][str(k)]) / 2 for k in ks}
    out["chance"] = {str(k): min(1.0, k / n) for k in ks}
    return out


def evaluate_retrieval(model, dataset, num_pairs: int, kind: str = "misa", encode=None) -> Dict:
    return evaluate_retrieval_kinds(model, dataset, num_pairs, (kind,), encode)[kind]


def evaluate_retrieval_kinds(model, dataset, num_pairs: int, kinds: Sequence[str], encode=None) -> Dict[str, Dict]:
    """`evaluate_retrieval` for several similarities, embedding the pairs once: {kind: result}."""
    image_feats, audio_feats, frames, ids = embed_pairs(model, dataset, num_pairs, encode)
    return {kind: {"n_pairs": len(ids), "similarity": kind,
                   "recall": recall_at_k(sim.similarity_matrix(image_feats, audio_feats, frames, kind))}
            for kind in kinds}
