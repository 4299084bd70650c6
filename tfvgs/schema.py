"""The one TFRecord schema: keys, dtypes, shapes, encode (Python/Beam side) and decode (tf.data/serving side).

Two record kinds:
  scene records  a rendered scene: PNG image, PNG instance mask, PNG per-pixel attribute ids, CLEVR scene JSON
  pair records   an image with one spoken caption: PNG image, log-mel as raw little-endian float32 bytes + shape
                 (unpadded; readers pad/crop to the preset's max frames), caption text (for analysis only: no model
                 reads it), voice id, and optionally the GAN latent `z` that drew the image and the scene JSON.
Log-mels are stored as bytes, not a FloatList: parsing is about 2x faster.
"""
from __future__ import annotations

import io
import json
from typing import Any, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

SCHEMA_VERSION = 1

# Keys, shared by writers and readers.
VERSION = "schema/version"
SPLIT = "split"
IMAGE_PNG = "image/png"
MASK_PNG = "mask/png"
ATTRIBUTES_PNG = "attributes/png"
SCENE_INDEX = "scene/index"
SCENE_JSON = "scene/json"
PAIR_ID = "pair/id"
LOGMEL = "audio/logmel"
LOGMEL_SHAPE = "audio/logmel_shape"
NFRAMES = "audio/nframes"
VOICE = "audio/voice"
CAPTION = "caption/text"
CAPTION_STYLE = "caption/style"
LATENT = "gan/z"

ATTRIBUTE_FAMILIES = ("shape", "color", "material", "size")  # channel order of attributes/png


def _bytes(value) -> tf.train.Feature:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values: Sequence[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _floats(values: Sequence[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def _serialize(feature: Dict[str, tf.train.Feature]) -> bytes:
    """The tf.train.Example of `feature` as bytes, its map in key order: protobuf's map order otherwise differs between
    processes, and the same record written by two Beam workers would be two byte strings."""
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 [H,W], [H,W,3] or [H,W,4] array (lossless, so masks and ids survive)."""
    from PIL import Image
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"encode_png expects uint8. Received dtype {array.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(data)))


def encode_scene_record(*, scene: Dict[str, Any], image: np.ndarray, instance_mask: np.ndarray,
                        attributes: np.ndarray, split: str) -> bytes:
    """A rendered scene -> serialized tf.train.Example."""
    if attributes.shape[-1] != len(ATTRIBUTE_FAMILIES):
        raise ValueError(f"attributes must have {len(ATTRIBUTE_FAMILIES)} channels {ATTRIBUTE_FAMILIES}. "
                         f"Received shape {attributes.shape}")
    feature = {
        VERSION: _ints([SCHEMA_VERSION]),
        SPLIT: _bytes(split),
        SCENE_INDEX: _ints([scene.get("image_index", 0)]),
        SCENE_JSON: _bytes(json.dumps(scene, sort_keys=True)),
        IMAGE_PNG: _bytes(encode_png(image)),
        MASK_PNG: _bytes(encode_png(instance_mask)),
        ATTRIBUTES_PNG: _bytes(encode_png(attributes)),
    }
    return _serialize(feature)


def encode_pair_record(*, pair_id: str, image_png: bytes, logmel: np.ndarray, caption: str, voice: str,
                       split: str, caption_style: str = "", scene_json: str = "",
                       latent: Optional[Sequence[float]] = None) -> bytes:
    """An image with one spoken caption -> serialized tf.train.Example. `logmel` is [frames, bins], unpadded."""
    logmel = np.asarray(logmel)
    if logmel.ndim != 2 or logmel.shape[0] == 0:
        raise ValueError(f"logmel must be [frames>0, bins] for pair {pair_id!r}. Received shape {logmel.shape}")
    feature = {
        VERSION: _ints([SCHEMA_VERSION]),
        SPLIT: _bytes(split),
        PAIR_ID: _bytes(pair_id),
        IMAGE_PNG: _bytes(image_png),
        LOGMEL: _bytes(logmel.astype("<f4").tobytes()),
        LOGMEL_SHAPE: _ints(logmel.shape),
        NFRAMES: _ints([logmel.shape[0]]),
        CAPTION: _bytes(caption),
        CAPTION_STYLE: _bytes(caption_style),
        VOICE: _bytes(voice),
        SCENE_JSON: _bytes(scene_json),
        LATENT: _floats(latent if latent is not None else []),
    }
    return _serialize(feature)


SCENE_FEATURES = {
    VERSION: tf.io.FixedLenFeature([], tf.int64),
    SPLIT: tf.io.FixedLenFeature([], tf.string),
    SCENE_INDEX: tf.io.FixedLenFeature([], tf.int64),
    SCENE_JSON: tf.io.FixedLenFeature([], tf.string),
    IMAGE_PNG: tf.io.FixedLenFeature([], tf.string),
    MASK_PNG: tf.io.FixedLenFeature([], tf.string),
    ATTRIBUTES_PNG: tf.io.FixedLenFeature([], tf.string),
}

PAIR_FEATURES = {
    VERSION: tf.io.FixedLenFeature([], tf.int64),
    SPLIT: tf.io.FixedLenFeature([], tf.string),
    PAIR_ID: tf.io.FixedLenFeature([], tf.string),
    IMAGE_PNG: tf.io.FixedLenFeature([], tf.string),
    LOGMEL: tf.io.FixedLenFeature([], tf.string),
    LOGMEL_SHAPE: tf.io.FixedLenFeature([2], tf.int64),
    NFRAMES: tf.io.FixedLenFeature([], tf.int64),
    CAPTION: tf.io.FixedLenFeature([], tf.string),
    CAPTION_STYLE: tf.io.FixedLenFeature([], tf.string, default_value=""),
    VOICE: tf.io.FixedLenFeature([], tf.string),
    SCENE_JSON: tf.io.FixedLenFeature([], tf.string, default_value=""),
    LATENT: tf.io.VarLenFeature(tf.float32),
}


def parse_scene(serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Serialized scene record -> dict of tensors: image uint8 [H,W,3], instance_mask uint8 [H,W],
    attributes uint8 [H,W,4], scene_json string, scene_index int64, split string."""
    parsed = tf.io.parse_single_example(serialized, SCENE_FEATURES)
    return {
        "image": tf.io.decode_png(parsed[IMAGE_PNG], channels=3),
        "instance_mask": tf.io.decode_png(parsed[MASK_PNG], channels=1)[..., 0],
        "attributes": tf.io.decode_png(parsed[ATTRIBUTES_PNG], channels=4),
        "scene_json": parsed[SCENE_JSON],
        "scene_index": parsed[SCENE_INDEX],
        "split": parsed[SPLIT],
    }


def parse_pair(serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Serialized pair record -> dict: image uint8 [H,W,3], logmel float32 [frames, bins] (unpadded), nframes int32,
    pair_id, caption, caption_style, voice, scene_json, split strings, latent float32 [z_dim] (empty if none)."""
    parsed = tf.io.parse_single_example(serialized, PAIR_FEATURES)
    logmel = tf.io.decode_raw(parsed[LOGMEL], tf.float32, little_endian=True)
    logmel = tf.reshape(logmel, tf.cast(parsed[LOGMEL_SHAPE], tf.int32))
    return {
        "image": tf.io.decode_png(parsed[IMAGE_PNG], channels=3),
        "logmel": logmel,
        "nframes": tf.cast(parsed[NFRAMES], tf.int32),
        "pair_id": parsed[PAIR_ID],
        "caption": parsed[CAPTION],
        "caption_style": parsed[CAPTION_STYLE],
        "voice": parsed[VOICE],
        "scene_json": parsed[SCENE_JSON],
        "split": parsed[SPLIT],
        "latent": tf.sparse.to_dense(parsed[LATENT]),
    }


def read_pair_record(serialized: bytes) -> Dict[str, Any]:
    """A pair record as numpy/python values (for analysis and tests; no graph)."""
    example = tf.train.Example.FromString(serialized)
    f = example.features.feature
    shape = list(f[LOGMEL_SHAPE].int64_list.value)
    return {
        "pair_id": f[PAIR_ID].bytes_list.value[0].decode(),
        "image": decode_png(f[IMAGE_PNG].bytes_list.value[0]),
        "logmel": np.frombuffer(f[LOGMEL].bytes_list.value[0], dtype="<f4").reshape(shape),
        "nframes": int(f[NFRAMES].int64_list.value[0]),
        "caption": f[CAPTION].bytes_list.value[0].decode(),
        "caption_style": f[CAPTION_STYLE].bytes_list.value[0].decode(),
        "voice": f[VOICE].bytes_list.value[0].decode(),
        "scene_json": f[SCENE_JSON].bytes_list.value[0].decode(),
        "split": f[SPLIT].bytes_list.value[0].decode(),
        "latent": np.asarray(f[LATENT].float_list.value, np.float32),
    }


def read_scene_record(serialized: bytes) -> Dict[str, Any]:
    """A scene record as numpy/python values."""
    example = tf.train.Example.FromString(serialized)
    f = example.features.feature
    return {
        "scene": json.loads(f[SCENE_JSON].bytes_list.value[0].decode()),
        "image": decode_png(f[IMAGE_PNG].bytes_list.value[0]),
        "instance_mask": decode_png(f[MASK_PNG].bytes_list.value[0]),
        "attributes": decode_png(f[ATTRIBUTES_PNG].bytes_list.value[0]),
        "split": f[SPLIT].bytes_list.value[0].decode(),
        "scene_index": int(f[SCENE_INDEX].int64_list.value[0]),
    }


WORDS, PAIRS = "words", "pairs"                     # the semantic set's two record kinds (file prefixes)

# The test sets' record kinds (beam_pipelines.semantic_test_set: words-*, pairs-*; transfer_test_set:
# <split>-*): their keys (audio keys are those of pair records), encoders and feature specs.
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


def _logmel_features(logmel: np.ndarray, where: str) -> Dict[str, tf.train.Feature]:
    logmel = np.asarray(logmel)
    if logmel.ndim != 2 or logmel.shape[0] == 0:
        raise ValueError(f"logmel must be [frames>0, bins] for {where}. Received shape {logmel.shape}")
    return {LOGMEL: _bytes(logmel.astype("<f4").tobytes()), LOGMEL_SHAPE: _ints(logmel.shape),
            NFRAMES: _ints([logmel.shape[0]])}


def _check_family_value(family: str, value: str) -> None:
    from tfvgs.world import ATTRIBUTES
    if family not in ATTRIBUTES or value not in ATTRIBUTES[family]:
        raise ValueError(f"Unknown attribute family/value. Expected a family of {tuple(ATTRIBUTES)} and one of its "
                         f"values. Received: family={family!r}, value={value!r}")


def encode_word_record(*, word_id: str, family: str, value: str, text: str, logmel: np.ndarray, voice: str) -> bytes:
    """One spoken isolated word -> serialized tf.train.Example."""
    _check_family_value(family, value)
    feature = {VERSION: _ints([SCHEMA_VERSION]), WORD_ID: _bytes(word_id), FAMILY: _bytes(family),
               VALUE: _bytes(value), WORD_TEXT: _bytes(text), VOICE: _bytes(voice),
               **_logmel_features(logmel, f"word {word_id!r}")}
    return _serialize(feature)


def encode_semantic_pair_record(*, pair_id: str, family: str, value: str, positive_png: bytes, negative_png: bytes,
                                positive_scene_json: str, negative_scene_json: str) -> bytes:
    """A positive image (an object has `value`) and a negative one (none has) -> serialized tf.train.Example."""
    _check_family_value(family, value)
    feature = {VERSION: _ints([SCHEMA_VERSION]), PAIR_ID: _bytes(pair_id),
               FAMILY: _bytes(family), VALUE: _bytes(value), POSITIVE_PNG: _bytes(positive_png),
               NEGATIVE_PNG: _bytes(negative_png), POSITIVE_SCENE: _bytes(positive_scene_json),
               NEGATIVE_SCENE: _bytes(negative_scene_json)}
    return _serialize(feature)


def encode_transfer_record(*, pair_id: str, split: str, image_png: bytes, edited_png: bytes, caption: str,
                           logmel: np.ndarray, voice: str, scene_json: str, edited_scene_json: str,
                           edit: Dict[str, Any]) -> bytes:
    """An original rendering, its one-attribute renderer edit and the original's spoken caption -> tf.train.Example.
    `edit` is random_edit's description {"object_index", "attribute", "old_value", "new_value"}."""
    feature = {VERSION: _ints([SCHEMA_VERSION]), SPLIT: _bytes(split),
               PAIR_ID: _bytes(pair_id), IMAGE_PNG: _bytes(image_png), EDITED_PNG: _bytes(edited_png),
               CAPTION: _bytes(caption), VOICE: _bytes(voice), SCENE_JSON: _bytes(scene_json),
               EDITED_SCENE: _bytes(edited_scene_json), EDIT_JSON: _bytes(json.dumps(edit, sort_keys=True)),
               EDIT_ATTRIBUTE: _bytes(edit["attribute"]), **_logmel_features(logmel, f"transfer pair {pair_id!r}")}
    return _serialize(feature)


_LOGMEL_SPEC = {LOGMEL: tf.io.FixedLenFeature([], tf.string),
                LOGMEL_SHAPE: tf.io.FixedLenFeature([2], tf.int64)}
WORD_FEATURES = {WORD_ID: tf.io.FixedLenFeature([], tf.string), FAMILY: tf.io.FixedLenFeature([], tf.string),
                 VALUE: tf.io.FixedLenFeature([], tf.string), WORD_TEXT: tf.io.FixedLenFeature([], tf.string),
                 VOICE: tf.io.FixedLenFeature([], tf.string), **_LOGMEL_SPEC}
SEMANTIC_PAIR_FEATURES = {PAIR_ID: tf.io.FixedLenFeature([], tf.string),
                          FAMILY: tf.io.FixedLenFeature([], tf.string), VALUE: tf.io.FixedLenFeature([], tf.string),
                          POSITIVE_PNG: tf.io.FixedLenFeature([], tf.string),
                          NEGATIVE_PNG: tf.io.FixedLenFeature([], tf.string),
                          POSITIVE_SCENE: tf.io.FixedLenFeature([], tf.string),
                          NEGATIVE_SCENE: tf.io.FixedLenFeature([], tf.string)}
TRANSFER_FEATURES = {PAIR_ID: tf.io.FixedLenFeature([], tf.string),
                     IMAGE_PNG: tf.io.FixedLenFeature([], tf.string),
                     EDITED_PNG: tf.io.FixedLenFeature([], tf.string),
                     CAPTION: tf.io.FixedLenFeature([], tf.string),
                     VOICE: tf.io.FixedLenFeature([], tf.string),
                     EDIT_JSON: tf.io.FixedLenFeature([], tf.string),
                     EDIT_ATTRIBUTE: tf.io.FixedLenFeature([], tf.string), **_LOGMEL_SPEC}
