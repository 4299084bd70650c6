"""Image-caption similarity from feature maps: the matchmap and its SISA / MISA / SIMA reductions (paper 001 sec. 4.3).

An image encoder gives a map I [H', W', D], an audio encoder a sequence A [T', D]; the matchmap is
M[r, c, t] = I[r, c, :] . A[t, :]. Its reductions score a pair:

    SISA = mean_{r,c,t} M          (= dot product of the average-pooled I and A, eq. 6)
    MISA = mean_t max_{r,c} M      (each caption frame finds its best image region, eq. 7; used by paper 000)
    SIMA = mean_{r,c} max_t M      (each image region finds its best caption frame, eq. 8)

Captions are padded to a fixed length, so every audio reduction here takes the number of *valid* output frames and
ignores the rest (paper 001 sec. 4.2 truncates each caption's output the same way). Valid counts are clamped to
[1, T'] so an empty caption still has a defined score, as in the reference code (`max(1, nframes)`).

`similarity_matrix` scores every image against every caption with batched matrix products. SISA goes through pooled
vectors (O(B^2 D)); MISA and SIMA need the full matchmap (O(B^2 H' W' T' D)) and are computed in chunks of image rows
so that e.g. 1000 x 1000 retrieval fits in memory.
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf

SIMILARITY_KINDS = ("sisa", "misa", "sima")

# Elements of the largest intermediate [rows, H'W', Ba*T'] tensor materialised per chunk (float32: 256 MiB).
DEFAULT_CHUNK_ELEMENTS = 1 << 26


def check_kind(kind: str) -> str:
    """Returns `kind` lower-cased, or raises ValueError naming the known kinds."""
    if not isinstance(kind, str) or kind.lower() not in SIMILARITY_KINDS:
        raise ValueError(f"`kind` must be one of {SIMILARITY_KINDS}. Received: kind={kind!r}")
    return kind.lower()


def frame_mask(audio_frames, max_frames, dtype=tf.bool):
    """[B, T'] mask of valid output frames; counts are clamped to [1, max_frames]."""
    audio_frames = tf.clip_by_value(tf.cast(audio_frames, tf.int32), 1, tf.cast(max_frames, tf.int32))
    return tf.sequence_mask(audio_frames, max_frames, dtype=dtype)


def pool_image(image_feats):
    """Average over all spatial positions: [..., H', W', D] -> [..., D] (eq. 1)."""
    return tf.reduce_mean(image_feats, axis=[-3, -2])


def pool_audio(audio_feats, audio_frames=None):
    """Average over the valid frames only: [B, T', D], [B] -> [B, D] (eq. 2 with padding removed).

    Without `audio_frames` every frame counts. An unbatched [T', D] input takes a scalar frame count.
    """
    audio_feats = tf.convert_to_tensor(audio_feats)
    if audio_frames is None:
        return tf.reduce_mean(audio_feats, axis=-2)
    max_frames = tf.shape(audio_feats)[-2]
    mask = frame_mask(audio_frames, max_frames, audio_feats.dtype)  # [..., T']
    total = tf.reduce_sum(audio_feats * mask[..., None], axis=-2)
    return total / tf.reduce_sum(mask, axis=-1, keepdims=True)


def matchmap(image_feats, audio_feats):
    """M[r, c, t] = I[r, c, :] . A[t, :].

    Unbatched: image [H', W', D] and audio [T', D] -> [H', W', T']. Paired batches: image [B, H', W', D] and audio
    [B, T', D] -> [B, H', W', T'] (pair b with pair b; use `similarity_matrix` for all pairs). Several images with
    one caption: image [B, H', W', D] and audio [T', D] -> [B, H', W', T'].
    """
    image_feats = tf.convert_to_tensor(image_feats)
    audio_feats = tf.convert_to_tensor(audio_feats)
    if image_feats.shape.rank == 3 and audio_feats.shape.rank == 2:
        return tf.einsum("rcd,td->rct", image_feats, audio_feats)
    if image_feats.shape.rank == 4 and audio_feats.shape.rank == 3:
        return tf.einsum("brcd,btd->brct", image_feats, audio_feats)
    if image_feats.shape.rank == 4 and audio_feats.shape.rank == 2:
        return tf.einsum("brcd,td->brct", image_feats, audio_feats)
    raise ValueError(
        "`matchmap` expects image [H, W, D] or [B, H, W, D] with audio [T, D], or image [B, H, W, D] with audio "
        "[B, T, D]. "
        f"Received: image_feats.shape={image_feats.shape}, audio_feats.shape={audio_feats.shape}")


def _time_mask(matchmap_tensor, audio_frames):
    """Mask broadcastable to M [..., H', W', T'] (audio_frames: scalar or [...])."""
    max_frames = tf.shape(matchmap_tensor)[-1]
    mask = frame_mask(audio_frames, max_frames, tf.bool)  # [..., T']
    return mask[..., None, None, :]


def sisa(matchmap_tensor, audio_frames=None):
    """Mean of M over all image positions and valid frames (eq. 6). M: [..., H', W', T'] -> [...]."""
    m = tf.convert_to_tensor(matchmap_tensor)
    if audio_frames is None:
        return tf.reduce_mean(m, axis=[-3, -2, -1])
    mask = tf.cast(_time_mask(m, audio_frames), m.dtype)
    per_frame = tf.reduce_mean(m, axis=[-3, -2]) * mask[..., 0, 0, :]
    return tf.reduce_sum(per_frame, axis=-1) / tf.reduce_sum(mask[..., 0, 0, :], axis=-1)


def misa(matchmap_tensor, audio_frames=None):
    """Mean over valid frames of the max over image positions (eq. 7). M: [..., H', W', T'] -> [...]."""
    m = tf.convert_to_tensor(matchmap_tensor)
    best_region = tf.reduce_max(m, axis=[-3, -2])  # [..., T']
    if audio_frames is None:
        return tf.reduce_mean(best_region, axis=-1)
    mask = tf.cast(_time_mask(m, audio_frames)[..., 0, 0, :], m.dtype)
    return tf.reduce_sum(best_region * mask, axis=-1) / tf.reduce_sum(mask, axis=-1)


def sima(matchmap_tensor, audio_frames=None):
    """Mean over image positions of the max over valid frames (eq. 8). M: [..., H', W', T'] -> [...]."""
    m = tf.convert_to_tensor(matchmap_tensor)
    if audio_frames is not None:
        m = tf.where(_time_mask(m, audio_frames), m, tf.cast(m.dtype.min, m.dtype))
    return tf.reduce_mean(tf.reduce_max(m, axis=-1), axis=[-2, -1])


_REDUCTIONS = {"sisa": sisa, "misa": misa, "sima": sima}


def matchmap_similarity(matchmap_tensor, kind: str, audio_frames=None):
    """Reduces a matchmap [..., H', W', T'] to scores [...] with the named reduction."""
    return _REDUCTIONS[check_kind(kind)](matchmap_tensor, audio_frames)


def paired_similarity(image_feats, audio_feats, audio_frames, kind: str = "sisa"):
    """Score of each pair (I_b, A_b): image [B, H', W', D], audio [B, T', D], frames [B] -> [B]."""
    kind = check_kind(kind)
    if kind == "sisa":
        return tf.reduce_sum(pool_image(image_feats) * pool_audio(audio_feats, audio_frames), axis=-1)
    return matchmap_similarity(matchmap(image_feats, audio_feats), kind, audio_frames)


def similarity_matrix(image_feats, audio_feats, audio_frames, kind: str = "misa",
                      chunk_rows: Optional[int] = None, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS):
    """S[i, a] = similarity of image i and caption a: [Bi, H', W', D] x [Ba, T', D] (frames [Ba]) -> [Bi, Ba].

    SISA is a product of pooled vectors. MISA / SIMA compute the matchmaps of `chunk_rows` images against all
    captions at a time (one [rows * H'W', D] x [D, Ba * T'] matmul); by default as many rows as keep that product
    under `chunk_elements` values. Differentiable, and usable inside tf.function with unknown batch sizes.
    """
    kind = check_kind(kind)
    image_feats = tf.convert_to_tensor(image_feats)
    audio_feats = tf.convert_to_tensor(audio_feats, dtype=image_feats.dtype)
    if image_feats.shape.rank != 4 or audio_feats.shape.rank != 3:
        raise ValueError("`similarity_matrix` expects image_feats [Bi, H, W, D] and audio_feats [Ba, T, D]. "
                         f"Received: image_feats.shape={image_feats.shape}, audio_feats.shape={audio_feats.shape}")
    if kind == "sisa":
        return tf.matmul(pool_image(image_feats), pool_audio(audio_feats, audio_frames), transpose_b=True)

    num_images = tf.shape(image_feats)[0]
    num_audio, max_frames, dim = tf.shape(audio_feats)[0], tf.shape(audio_feats)[1], tf.shape(audio_feats)[2]
    height, width = tf.shape(image_feats)[1], tf.shape(image_feats)[2]
    regions = height * width
    valid = frame_mask(audio_frames, max_frames, tf.bool)                       # [Ba, T']
    audio_flat = tf.reshape(audio_feats, [num_audio * max_frames, dim])         # [Ba*T', D]
    images_flat = tf.reshape(image_feats, [num_images, regions, dim])           # [Bi, R, D]

    if chunk_rows is not None and (not isinstance(chunk_rows, int) or chunk_rows < 1):
        raise ValueError(f"`chunk_rows` must be a positive integer. Received: chunk_rows={chunk_rows!r}")
    if chunk_rows is None:  # as many image rows as keep one chunk's matchmaps under `chunk_elements` values
        per_row = tf.cast(regions * num_audio * max_frames, tf.int64)
        chunk_rows = tf.cast(tf.clip_by_value(tf.cast(chunk_elements, tf.int64) // tf.maximum(per_row, 1),
                                              1, tf.cast(tf.maximum(num_images, 1), tf.int64)), tf.int32)

    def score_rows(rows):  # rows: [c, R, D] -> [c, Ba]
        c = tf.shape(rows)[0]
        m = tf.matmul(tf.reshape(rows, [c * regions, dim]), audio_flat, transpose_b=True)
        m = tf.reshape(m, [c, regions, num_audio, max_frames])                  # [c, R, Ba, T']
        if kind == "misa":
            best = tf.reduce_max(m, axis=1)                                     # [c, Ba, T']
            mask = tf.cast(valid, m.dtype)
            return tf.reduce_sum(best * mask, axis=-1) / tf.reduce_sum(mask, axis=-1)
        masked = tf.where(valid[None, None], m, tf.cast(m.dtype.min, m.dtype))
        return tf.reduce_mean(tf.reduce_max(masked, axis=-1), axis=1)           # sima: [c, Ba]

    num_chunks = (num_images + chunk_rows - 1) // chunk_rows
    pad = num_chunks * chunk_rows - num_images
    padded = tf.pad(images_flat, [[0, pad], [0, 0], [0, 0]])
    chunks = tf.reshape(padded, [num_chunks, chunk_rows, regions, dim])
    scores = tf.map_fn(score_rows, chunks, fn_output_signature=tf.TensorSpec([None, None], image_feats.dtype))
    return tf.reshape(scores, [num_chunks * chunk_rows, num_audio])[:num_images]
