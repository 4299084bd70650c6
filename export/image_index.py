"""The image index that `retrieve` searches: every distinct image of one split of a data directory, embedded once.

Works on both record kinds of `tfvgs.schema`: spoken-pair records (ids are pair ids, e.g. "test/0000012/0"; an image
with several captions appears once, under the id of its first pair) and scene records (ids "<split>/<scene index>",
e.g. "test/0000012", the prefix of that scene's pair ids). Images are embedded with the servable's own image
function, so the index holds exactly what `embed_image` would return.
"""
from __future__ import annotations

import hashlib
from typing import Callable, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfvgs import data as data_lib
from tfvgs import schema
from tfvgs import similarity as sim

from export.audio_visual import ImageIndex


def read_index_images(data_dir: str, split: str, limit: Optional[int] = None) -> Tuple[List[str], List[bytes]]:
    """(ids, PNG bytes) of the distinct images of a split, in shard order; at most `limit` images."""
    ids, pngs, seen = [], [], set()
    for path in data_lib.list_shards(data_dir, split):
        try:
            for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
                features = tf.train.Example.FromString(serialized).features.feature
                png = features[schema.IMAGE_PNG].bytes_list.value[0]
                if schema.PAIR_ID in features:
                    record_id = features[schema.PAIR_ID].bytes_list.value[0].decode()
                elif schema.SCENE_INDEX in features:
                    record_id = f"{split}/{int(features[schema.SCENE_INDEX].int64_list.value[0]):07d}"
                else:
                    raise ValueError(f"Record {len(ids)} of {path} is neither a pair nor a scene record (it has "
                                     f"no {schema.PAIR_ID!r} or {schema.SCENE_INDEX!r}). Received keys: "
                                     f"{sorted(features)}")
                digest = hashlib.sha256(png).digest()
                if digest in seen:
                    continue
                seen.add(digest)
                ids.append(record_id)
                pngs.append(png)
                if limit is not None and len(ids) >= limit:
                    return ids, pngs
        except tf.errors.DataLossError as e:
            raise tf.errors.DataLossError(None, None, f"Corrupt TFRecord shard {path}: {e.message}") from e
    return ids, pngs


def embed_pngs(ids: List[str], pngs: List[bytes], image_features: Callable, image_size: int,
               batch_size: int = 64, pooled: bool = False, progress: Optional[Callable[[int, int], None]] = None
               ) -> np.ndarray:
    """Feature maps [N, H', W', D] (or pooled [N, D]) of PNG images that must all be image_size x image_size."""
    chunks = []
    for start in range(0, len(pngs), batch_size):
        images = []
        for record_id, png in zip(ids[start:start + batch_size], pngs[start:start + batch_size]):
            image = tf.io.decode_png(png, channels=3)
            if tuple(image.shape[:2]) != (image_size, image_size):
                raise ValueError(f"Index image {record_id!r} is {image.shape[1]} x {image.shape[0]} pixels; the "
                                 f"model takes {image_size} x {image_size}. Received shape: {tuple(image.shape)}")
            images.append(image)
        feats = image_features(data_lib.image_to_float(tf.stack(images)))
        chunks.append((sim.pool_image(feats) if pooled else feats).numpy())
        if progress is not None:
            progress(min(start + batch_size, len(pngs)), len(pngs))
    return np.concatenate(chunks, axis=0)


def build_image_index(data_dir: str, split: str, image_features: Callable, image_size: int, similarity: str,
                      limit: Optional[int] = None, batch_size: int = 64,
                      progress: Optional[Callable[[int, int], None]] = None, dtype: str = "float32") -> ImageIndex:
    """The `ImageIndex` of a split: pooled vectors for SISA retrieval, feature maps for MISA / SIMA.

    Args:
        data_dir: a directory of `<split>-SSSSS-of-NNNNN.tfrecord` pair or scene records.
        split: "train", "val" or "test".
        image_features: images [B, S, S, 3] float in [-1, 1] -> feature maps [B, H', W', D]
            (`AudioVisualServable.image_features`).
        image_size: S; images of another size are an error, not resized.
        similarity: the retrieval similarity ("sisa" stores pooled vectors).
        limit: index at most this many images.
        dtype: "float32", or "float16" to store half the bytes.
    """
    if dtype not in ("float32", "float16"):
        raise ValueError(f"`dtype` must be 'float32' or 'float16'. Received: {dtype!r}")
    ids, pngs = read_index_images(data_dir, split, limit)
    if not ids:
        raise ValueError(f"No images in split {split!r} of {data_dir}: cannot build an image index.")
    features = embed_pngs(ids, pngs, image_features, image_size, batch_size,
                          pooled=sim.check_kind(similarity) == "sisa", progress=progress)
    return ImageIndex(ids=ids, features=features.astype(dtype, copy=False),
                      description={"data_dir": data_dir, "split": split, "kind": "distinct images of the split"})
