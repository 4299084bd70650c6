"""Triplet (margin ranking) losses over in-batch impostors, plus GAN-edited extra negatives.

Every loss takes similarity matrices whose rows are *anchors* and whose columns are *candidates*:

    image_to_audio [B_anchor, N]: S(I_j, A_k)  - image anchor j against every caption k (impostor captions)
    audio_to_image [B_anchor, N]: S(I_k, A_j)  - caption anchor j against every image k (impostor images)

with `positive_index[j]` the column of anchor j's own pair. Anchors can be one replica's pairs while the N candidates
come from the global batch (gathered across replicas); the column of a local pair is then its global row.

Implemented impostor choices (each returns a per-anchor loss, both directions summed, so the caller decides how to
average):
    sampled    paper 001 eqs. 9-11: a uniformly random other pair of the batch;
    semi-hard  paper 001 eqs. 12-14: the most similar candidate that is still *less* similar than the positive,
               falling back to a random one when there is none; paper 001 trains with sampled + semi-hard (eq. 15);
    hardest    paper 000 "Hard Negatives": the most similar other candidate. Alone it can collapse a trained model:
               with unnormalised scores, shrinking every embedding to 0 makes each hinge exactly the margin, less
               than the hardest hinges of a model that ranks well on average (demo: loss 2.27 -> 2.000, val R@10
               26.5 -> 8.0). Paper 001 saw hard mining "highly unstable" and paired it with the sampled loss
               (eq. 15); `hardest_sampled` and `hardest_mms` do the same here (equal weights): their other term
               grows when the scores shrink.
    mms        not in the papers: the masked margin softmax of Ilharco et al. 2019 ("Large-scale representation
               learning from visually grounded untranscribed speech"): -log softmax of the positive's score minus
               the margin against *every* candidate, so each anchor learns from all impostors of the global batch
               rather than from one or two. Offered because the triplet losses learn slowly on 2 CPU cores
               (docs/results.md); a valid edited negative joins the candidates of its caption anchor.

Randomness is passed in as uniforms in [0, 1), one per anchor and direction, so the caller can make them a pure
function of (seed, step, global row) with `anchor_uniforms`: the same impostors whatever the number of replicas.

Extra negatives (paper 000 sec. 5.2 and 6.3): a GAN-edited image I_n,j per caption anchor A_j with score
S(I_n,j, A_j). "In training, we use the hardest negative of both methods": the image impostor of anchor j becomes
whichever of the in-batch impostor and the edited image scores higher (`hardest_of_both`), wherever the edit is valid.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import tensorflow as tf

LOSS_KINDS = ("sampled", "semi_hard", "hardest", "mms", "hardest_sampled", "hardest_mms")

# the per-anchor terms each loss kind sums (equal weights)
LOSS_TERMS = {"sampled": ("sampled",), "semi_hard": ("sampled", "semi_hard"), "hardest": ("hardest",),
              "mms": ("mms",), "hardest_sampled": ("sampled", "hardest"), "hardest_mms": ("mms", "hardest")}


def check_loss_kind(kind: str) -> str:
    if not isinstance(kind, str) or kind.lower() not in LOSS_KINDS:
        raise ValueError(f"`loss` must be one of {LOSS_KINDS}. Received: loss={kind!r}")
    return kind.lower()


def global_rows(local_size):
    """(offset of this replica's rows in the global batch, global batch size) in the current replica context.

    Must run in a replica context (inside `strategy.run`, or anywhere without a strategy)."""
    local_size = tf.cast(local_size, tf.int32)
    ctx = tf.distribute.get_replica_context()
    if ctx is None:
        return tf.constant(0), local_size
    sizes = ctx.all_gather(tf.reshape(local_size, [1]), axis=0)                      # [replicas]
    replica_id = ctx.replica_id_in_sync_group
    replica_id = tf.cast(replica_id, tf.int32) if isinstance(replica_id, tf.Tensor) else int(replica_id)
    return tf.reduce_sum(sizes[:replica_id]), tf.reduce_sum(sizes)


def anchor_uniforms(seed, step, global_size, offset, local_size, stream, tail=()):
    """Uniforms in [0, 1), shape [local_size, *tail], for rows [offset, offset + local_size) of a global batch of
    `global_size` rows.

    The whole global array is drawn from `tf.random.stateless_uniform` seeded by (seed, step) folded with `stream`
    and each replica slices its own rows, so a given global row gets the same numbers on 1 or 8 replicas.
    """
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
    key = tf.random.experimental.stateless_fold_in(key, stream)
    shape = tf.concat([tf.reshape(tf.cast(global_size, tf.int32), [1]), tf.constant(list(tail), tf.int32)], axis=0)
    values = tf.random.stateless_uniform(shape, seed=key)
    return values[offset:offset + local_size]


def _positive_scores(scores, positive_index):
    return tf.gather(scores, tf.cast(positive_index, tf.int32), axis=1, batch_dims=1)


def _has_impostor(scores):
    """An anchor has impostors only if there is more than one candidate."""
    return tf.shape(scores)[1] > 1


def sample_impostors(num_candidates, positive_index, uniforms):
    """Uniformly random candidate index != positive_index (eqs. 9-10), from uniforms in [0, 1)."""
    positive_index = tf.cast(positive_index, tf.int32)
    others = tf.maximum(tf.cast(num_candidates, tf.int32) - 1, 1)
    pick = tf.minimum(tf.cast(tf.floor(tf.cast(uniforms, tf.float32) * tf.cast(others, tf.float32)), tf.int32),
                      others - 1)
    # (With a single candidate there is no other pair; index 0 keeps the gather valid and the loss masks it.)
    return tf.minimum(pick + tf.cast(pick >= positive_index, tf.int32), tf.cast(num_candidates, tf.int32) - 1)


def hardest_impostors(scores, positive_index):
    """Index of the highest-scoring candidate other than the positive."""
    positive = tf.one_hot(tf.cast(positive_index, tf.int32), tf.shape(scores)[1], on_value=True, off_value=False)
    masked = tf.where(positive, tf.cast(scores.dtype.min, scores.dtype), scores)
    return tf.argmax(masked, axis=1, output_type=tf.int32)


def semi_hard_impostors(scores, positive_index, uniforms):
    """Highest-scoring candidate with score < the positive's (eqs. 12-13), else a random other candidate.

    Returns (impostor index [B], found [B] bool: whether a semi-hard candidate existed).
    """
    scores = tf.convert_to_tensor(scores)
    positive_index = tf.cast(positive_index, tf.int32)
    positive = _positive_scores(scores, positive_index)[:, None]
    candidate = scores < positive                                            # excludes the positive itself
    masked = tf.where(candidate, scores, tf.cast(scores.dtype.min, scores.dtype))
    best = tf.argmax(masked, axis=1, output_type=tf.int32)
    found = tf.reduce_any(candidate, axis=1)
    fallback = sample_impostors(tf.shape(scores)[1], positive_index, uniforms)
    return tf.where(found, best, fallback), found


def hardest_of_both(impostor_scores, extra_scores, extra_valid):
    """Per anchor, the larger of the in-batch impostor score and a valid extra negative's score.

    Returns (scores [B], used_extra [B] bool). Invalid extras never win.
    """
    extra_scores = tf.cast(extra_scores, impostor_scores.dtype)
    use_extra = tf.logical_and(tf.cast(extra_valid, tf.bool), extra_scores > impostor_scores)
    return tf.where(use_extra, extra_scores, impostor_scores), use_extra


def triplet_hinge(positive_scores, impostor_scores, margin: float = 1.0):
    """max(0, S(impostor) - S(positive) + margin)."""
    return tf.nn.relu(impostor_scores - positive_scores + tf.cast(margin, positive_scores.dtype))


def _direction_loss(scores, positive_index, impostors, margin, extra=None):
    """Hinge for one direction given chosen impostor columns; `extra` = (scores [B], valid [B]) or None."""
    impostor = tf.gather(scores, impostors, axis=1, batch_dims=1)
    # A batch of one pair has no in-batch impostor: only a valid extra negative can contribute then.
    impostor = tf.where(_has_impostor(scores), impostor, tf.cast(scores.dtype.min, scores.dtype))
    used_extra = tf.zeros_like(impostor, dtype=tf.bool)
    if extra is not None:
        impostor, used_extra = hardest_of_both(impostor, extra[0], extra[1])
    return triplet_hinge(_positive_scores(scores, positive_index), impostor, margin), used_extra


def _extra(extra_negative_scores, extra_negative_valid):
    if extra_negative_scores is None:
        return None
    if extra_negative_valid is None:
        extra_negative_valid = tf.ones_like(extra_negative_scores, dtype=tf.bool)
    return extra_negative_scores, extra_negative_valid


def sampled_triplet_loss(image_to_audio, audio_to_image, positive_index, uniforms: Sequence, margin: float = 1.0,
                         extra_negative_scores=None, extra_negative_valid=None, return_details: bool = False):
    """Sampled-impostor triplet loss per anchor (eq. 11 summand): [B_anchor].

    uniforms: (for image anchors, for caption anchors), each [B_anchor] in [0, 1).
    extra_negative_scores / _valid: optional [B_anchor] S(I_n,j, A_j) and mask, combined with the sampled image
    impostor of caption anchor j by `hardest_of_both`.
    """
    image_to_audio = tf.convert_to_tensor(image_to_audio)
    audio_to_image = tf.convert_to_tensor(audio_to_image)
    n_i2a, n_a2i = tf.shape(image_to_audio)[1], tf.shape(audio_to_image)[1]
    i2a, _ = _direction_loss(image_to_audio, positive_index,
                             sample_impostors(n_i2a, positive_index, uniforms[0]), margin)
    a2i, used = _direction_loss(audio_to_image, positive_index,
                                sample_impostors(n_a2i, positive_index, uniforms[1]), margin,
                                _extra(extra_negative_scores, extra_negative_valid))
    return (i2a + a2i, {"used_extra": used}) if return_details else i2a + a2i


def semi_hard_triplet_loss(image_to_audio, audio_to_image, positive_index, uniforms: Sequence, margin: float = 1.0,
                           extra_negative_scores=None, extra_negative_valid=None, return_details: bool = False):
    """Semi-hard negative triplet loss per anchor (eq. 14 summand) with random fallback: [B_anchor].

    uniforms are used only for anchors without any semi-hard candidate. Details (if asked): "found" per direction
    and "used_extra".
    """
    image_to_audio = tf.convert_to_tensor(image_to_audio)
    audio_to_image = tf.convert_to_tensor(audio_to_image)
    imp_i2a, found_i2a = semi_hard_impostors(image_to_audio, positive_index, uniforms[0])
    imp_a2i, found_a2i = semi_hard_impostors(audio_to_image, positive_index, uniforms[1])
    i2a, _ = _direction_loss(image_to_audio, positive_index, imp_i2a, margin)
    a2i, used = _direction_loss(audio_to_image, positive_index, imp_a2i, margin,
                                _extra(extra_negative_scores, extra_negative_valid))
    if return_details:
        return i2a + a2i, {"found_image_anchor": found_i2a, "found_audio_anchor": found_a2i, "used_extra": used}
    return i2a + a2i


def hardest_triplet_loss(image_to_audio, audio_to_image, positive_index, margin: float = 1.0,
                         extra_negative_scores=None, extra_negative_valid=None, return_details: bool = False):
    """Hardest in-batch negative triplet loss per anchor (paper 000 "Hard Negatives"): [B_anchor]."""
    image_to_audio = tf.convert_to_tensor(image_to_audio)
    audio_to_image = tf.convert_to_tensor(audio_to_image)
    i2a, _ = _direction_loss(image_to_audio, positive_index, hardest_impostors(image_to_audio, positive_index),
                             margin)
    a2i, used = _direction_loss(audio_to_image, positive_index, hardest_impostors(audio_to_image, positive_index),
                                margin, _extra(extra_negative_scores, extra_negative_valid))
    return (i2a + a2i, {"used_extra": used}) if return_details else i2a + a2i


def _mms_direction(scores, positive_index, margin, extra=None):
    """-log(exp(S_pos - margin) / (exp(S_pos - margin) + sum over impostors exp(S_imp))) per anchor [B]."""
    positive = tf.one_hot(tf.cast(positive_index, tf.int32), tf.shape(scores)[1], on_value=True, off_value=False)
    logits = tf.where(positive, scores - tf.cast(margin, scores.dtype), scores)
    used_extra = tf.zeros([tf.shape(scores)[0]], tf.bool)
    if extra is not None:
        extra_scores, extra_valid = tf.cast(extra[0], scores.dtype), tf.cast(extra[1], tf.bool)
        # an invalid extra gets -inf-like logit, i.e. it is not a candidate
        logits = tf.concat([logits, tf.where(extra_valid, extra_scores, scores.dtype.min)[:, None]], axis=1)
        used_extra = extra_valid
    labels = tf.cast(positive_index, tf.int32)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits), used_extra


def mms_loss(image_to_audio, audio_to_image, positive_index, margin: float = 1.0,
             extra_negative_scores=None, extra_negative_valid=None, return_details: bool = False):
    """Masked margin softmax per anchor (Ilharco et al. 2019), both directions summed: [B_anchor]."""
    image_to_audio = tf.convert_to_tensor(image_to_audio)
    audio_to_image = tf.convert_to_tensor(audio_to_image)
    i2a, _ = _mms_direction(image_to_audio, positive_index, margin)
    a2i, used = _mms_direction(audio_to_image, positive_index, margin,
                               _extra(extra_negative_scores, extra_negative_valid))
    return (i2a + a2i, {"used_extra": used}) if return_details else i2a + a2i


def triplet_loss_terms(kind: str, image_to_audio, audio_to_image, positive_index,
                       uniforms: Optional[Sequence] = None, margin: float = 1.0,
                       extra_negative_scores=None, extra_negative_valid=None) -> Tuple[dict, dict]:
    """The per-anchor loss terms of a configured loss: ({term name: [B_anchor]}, details).

    "sampled" -> {"sampled"}; "semi_hard" -> {"sampled", "semi_hard"} (eq. 15, equal weights, four uniform
    vectors: sampled image/caption anchors then semi-hard fallback image/caption anchors); "hardest" -> {"hardest"};
    "mms" -> {"mms"}; "hardest_sampled" -> {"sampled", "hardest"}; "hardest_mms" -> {"mms", "hardest"}.
    Extra negatives enter every term's caption-anchor direction.
    """
    kind = check_loss_kind(kind)
    extra = dict(margin=margin, extra_negative_scores=extra_negative_scores,
                 extra_negative_valid=extra_negative_valid, return_details=True)
    needed = num_uniform_streams(kind)
    if needed and (uniforms is None or len(uniforms) < needed):
        raise ValueError(f"loss={kind!r} needs {needed} uniform vectors. "
                         f"Received: {0 if uniforms is None else len(uniforms)}")
    terms, details = {}, {}
    names = LOSS_TERMS[kind]
    if "sampled" in names:
        terms["sampled"], d = sampled_triplet_loss(image_to_audio, audio_to_image, positive_index, uniforms[:2],
                                                   **extra)
        details["sampled"] = d
    if "semi_hard" in names:
        terms["semi_hard"], d = semi_hard_triplet_loss(image_to_audio, audio_to_image, positive_index,
                                                       uniforms[2:4], **extra)
        details["semi_hard"] = d
    if "hardest" in names:
        terms["hardest"], d = hardest_triplet_loss(image_to_audio, audio_to_image, positive_index, **extra)
        details["hardest"] = d
    if "mms" in names:
        terms["mms"], d = mms_loss(image_to_audio, audio_to_image, positive_index, **extra)
        details["mms"] = d
    return terms, details


def num_uniform_streams(kind: str) -> int:
    """How many uniform vectors `triplet_loss_terms` needs for a loss kind."""
    names = LOSS_TERMS[check_loss_kind(kind)]
    return 4 if "semi_hard" in names else 2 if "sampled" in names else 0


def uses_hardest(kind: str) -> bool:
    """Whether a loss kind has the hardest-impostor term (its stages train at `train.hardest_lr_scale`)."""
    return "hardest" in LOSS_TERMS[check_loss_kind(kind)]
