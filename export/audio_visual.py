"""The `audio_visual` servable: a trained dual encoder as SavedModel signatures for TF Serving.

Signatures (B = batch; S = config.world.image_size; F = num_mel_bins; T = config.features.max_frames;
T' = T / audio downsampling; H', W', D = the image encoder's map):

    embed_audio_waveform  waveform float32 [B, N] (16 kHz mono in [-1, 1], zero-padded rows), num_samples int32 [B]
                          -> features [B, T', D], valid_frames int32 [B], embedding [B, D]
    embed_audio           logmel float32 [B, T0 <= T, F], nframes int32 [B] -> the same outputs
    embed_image           image float32 [B, S, S, 3] in [-1, 1] -> features [B, H', W', D], embedding [B, D]
    embed_image_bytes     image_bytes string [B] (PNG or JPEG of S x S pixels) -> the same outputs
    match                 image [B, S, S, 3], waveform [B, N], num_samples [B] -> matchmap [B, H', W', T'],
                          sisa, misa, sima float32 [B], valid_frames int32 [B]
    retrieve              waveform [B, N], num_samples [B] -> image_ids string [B, k], scores float32 [B, k],
                          indices int32 [B, k]            (only when exported with an image index)

`retrieve` ranks every index image with the export's similarity, or, exported with `shortlist=S` (MISA / SIMA only),
in two stages: the pooled (SISA) score of every image, one [B, D] x [D, N] product, picks each query's S best, and
only those are re-ranked with the full similarity. The scores returned are the full similarity's, so with S = N the
result is the one-stage ranking (up to the order of exactly tied scores).

Audio goes through `tfvgs.features.log_mel` (the function Beam used to make the training data), one waveform at a
time on its first `num_samples` samples, then is padded to T frames with the silence value exactly as `tfvgs.data`
pads training captions: a served embedding equals the training-time embedding of the same waveform. `embed_audio`
overwrites frames at and after `nframes` with that silence value too, so results do not depend on how a client padded.

Every input is validated in the graph (see `export.input_checks`): wrong rank or size, empty audio (fewer samples than
one analysis window), audio over the maximum length, non-finite values, pixel or sample values far outside [-1, 1],
and bytes that are not PNG/JPEG give an InvalidArgumentError naming the input and the received value. Nothing is
resized or truncated. The dtype is fixed by each signature's TensorSpec.

`matchmap[b, r, c, t]` is the speech-prompted localisation heatmap of output frame t (frames at and after
`valid_frames[b]` are padding: ignore them); the scores are its SISA / MISA / SIMA reductions (`tfvgs.similarity`).
`embedding` is the average-pooled vector (the SISA factor): embeddings' dot product is the SISA score.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from tfvgs import data as data_lib
from tfvgs import features as features_lib
from tfvgs import schema
from tfvgs import similarity as sim
from tfvgs.config import Config

from export.input_checks import InputChecks, dims
from export.tracking import Untracked, concrete_signatures

# Pixel and sample values are expected in [-1, 1]; these bounds only catch inputs in another scale (uint8 pixels,
# int16 samples) while letting through the small overshoot of GAN images and resampled audio.
MAX_ABS_PIXEL = 1.5
MAX_ABS_SAMPLE = 1.5
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"

_FLOAT = tf.TensorSpec(None, tf.float32)   # unknown rank: rank and sizes are checked in the graph
_INT = tf.TensorSpec(None, tf.int32)
_STRING = tf.TensorSpec(None, tf.string)


@dataclasses.dataclass
class ImageIndex:
    """Pre-computed image features that `retrieve` ranks, with one id per image.

    features: [N, H', W', D] image feature maps, or pooled [N, D] vectors when retrieval uses SISA; float32, or
        float16 to halve the index (scores are computed in float32 from the stored values).
    ids: N strings (pair ids or scene ids).
    description: where it came from (data dir, split, ...), recorded in the export's info file.
    """
    ids: List[str]
    features: np.ndarray
    description: Dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.features = np.asarray(self.features)
        if self.features.dtype not in (np.float32, np.float16):
            self.features = self.features.astype(np.float32)
        if len(self.ids) == 0 or len(self.ids) != self.features.shape[0]:
            raise ValueError(f"An image index needs one id per feature row and at least one image. Received "
                             f"{len(self.ids)} ids and features of shape {self.features.shape}")


def pooled_in_float32(maps: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Mean over the spatial positions of [N, H', W', D] maps as float32 [N, D], a chunk of images at a time (a
    float16 index of 100k images is 6 GiB: no float32 copy of it is ever made)."""
    return np.concatenate([maps[i:i + chunk].astype(np.float32).mean(axis=(1, 2))
                           for i in range(0, len(maps), chunk)])


def audio_limits(config: Config) -> Dict[str, float]:
    """The accepted audio lengths: at least one analysis window, at most the shorter of speech.max_seconds and the
    audio that makes features.max_frames log-mel frames (longer audio would have been cropped in training)."""
    fc = config.features
    window, hop = features_lib.frame_params(fc)
    by_frames = window + (fc.max_frames - 1) * hop
    by_seconds = int(math.floor(config.speech.max_seconds * fc.sample_rate))
    max_samples = min(by_frames, by_seconds)
    return {"sample_rate": fc.sample_rate, "min_samples": window, "max_samples": max_samples,
            "max_seconds": max_samples / fc.sample_rate, "max_frames": fc.max_frames}


class AudioVisualServable(tf.Module):
    """A `DualEncoder`'s encoders wrapped as validated serving signatures (see the module docstring).

    Args:
        model: the trained `tfvgs.models.DualEncoder` (only its two encoders are used and saved).
        config: the config the model was trained with (image size, log-mel definition, audio limits).
        index: optional `ImageIndex` baked into the SavedModel as variables; enables `retrieve`.
        similarity: score used by `retrieve`: "misa" (default of evaluation), "sima" or "sisa" (the index then holds
            pooled [N, D] vectors: much smaller and faster, less precise).
        top_k: how many images `retrieve` returns per query (at most the index size).
        shortlist: 0 (rank the whole index with `similarity`), or S >= top_k: re-rank only each query's S best
            images by the pooled score (module docstring); capped at the index size.
    """

    def __init__(self, model, config: Config, index: Optional[ImageIndex] = None, similarity: str = "misa",
                 top_k: int = 10, shortlist: int = 0):
        super().__init__(name="audio_visual")
        self._keras = Untracked(image_encoder=model.image_encoder, audio_encoder=model.audio_encoder)
        self.config = config
        self.image_size = int(config.world.image_size)
        self.num_mel_bins = int(config.features.num_mel_bins)
        self.limits = audio_limits(config)
        self.max_frames = int(config.features.max_frames)
        self.pad_value = float(features_lib.padding_value(config.features))
        self.similarity = sim.check_kind(similarity)
        self._blank_png = schema.encode_png(np.zeros([self.image_size, self.image_size, 3], np.uint8))
        if int(top_k) != top_k or top_k < 1:
            raise ValueError(f"`top_k` must be a positive integer. Received: top_k={top_k!r}")
        if int(shortlist) != shortlist or shortlist < 0 or 0 < shortlist < top_k:
            raise ValueError(f"`shortlist` must be 0 (no shortlist) or an integer >= top_k ({top_k}). "
                             f"Received: shortlist={shortlist!r}")
        if shortlist and self.similarity == "sisa":
            raise ValueError("`shortlist` re-ranks pooled (SISA) candidates with MISA or SIMA; with similarity "
                             "'sisa' the pooled ranking is already the whole ranking. Received: shortlist="
                             f"{shortlist}, similarity='sisa'")
        if shortlist and index is None:
            raise ValueError(f"`shortlist` re-ranks an image index; this servable has none. Received: "
                             f"shortlist={shortlist}, index=None")
        if (index is not None and index.features.dtype == np.float16 and not shortlist
                and self.similarity != "sisa"):
            raise ValueError("A float16 index of feature maps needs a `shortlist`: ranking the whole index with "
                             f"{self.similarity!r} would make a float32 copy of it on every query, more memory than "
                             "a float32 index. Received: shortlist=0, index dtype float16")
        self.index = index
        self.shortlist = 0
        if index is not None:
            expected_rank = 2 if self.similarity == "sisa" else 4
            if index.features.ndim != expected_rank:
                raise ValueError(f"With similarity {self.similarity!r} the index features must have rank "
                                 f"{expected_rank}. Received shape {index.features.shape}")
            self.top_k = min(int(top_k), len(index.ids))
            self.index_features = tf.Variable(index.features, trainable=False, name="image_index_features")
            self.index_ids = tf.Variable(tf.constant(index.ids, tf.string), trainable=False, name="image_index_ids")
            if shortlist:
                self.shortlist = min(int(shortlist), len(index.ids))
                self.index_pooled = tf.Variable(pooled_in_float32(index.features), trainable=False,
                                                name="image_index_pooled")
            # only a servable with an index has the signature (saving traces every tf.function attribute)
            self.retrieve = tf.function(self._retrieve, autograph=False, input_signature=[_FLOAT, _INT])
        else:
            self.top_k = int(top_k)

    # --- computations on validated inputs (also used to build the index) --------------------------------------

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def image_features(self, image):
        """Image feature maps [B, H', W', D] of images already known to be valid."""
        image = tf.ensure_shape(image, [None, self.image_size, self.image_size, 3])
        return self._keras.image_encoder(image, training=False)

    def _encode_image(self, image) -> Dict[str, tf.Tensor]:
        feats = self.image_features(image)
        return {"features": feats, "embedding": sim.pool_image(feats)}

    def _encode_logmel(self, logmel, nframes) -> Dict[str, tf.Tensor]:
        """Log-mel [B, T0 <= T, F] with valid frames [B] -> audio outputs; pads to T as the training reader does."""
        frames_in = tf.shape(logmel)[1]
        valid = tf.sequence_mask(nframes, frames_in)[..., None]
        logmel = tf.where(valid, logmel, self.pad_value)
        logmel = tf.pad(logmel, [[0, 0], [0, self.max_frames - frames_in], [0, 0]], constant_values=self.pad_value)
        logmel = tf.ensure_shape(logmel, [None, self.max_frames, self.num_mel_bins])
        encoder = self._keras.audio_encoder
        feats = encoder(logmel, training=False)
        frames = tf.minimum(encoder.output_frames(nframes), tf.shape(feats)[1])   # as DualEncoder.call
        return {"features": feats, "valid_frames": frames, "embedding": sim.pool_audio(feats, frames)}

    def _logmel_of_waveforms(self, waveform, num_samples):
        """The training log-mel of each waveform's first num_samples samples, padded to T frames: [B, T, F], [B]."""
        fc = self.config.features

        def one(i):
            logmel = features_lib.log_mel(waveform[i, :num_samples[i]], fc)
            return features_lib.pad_or_crop(logmel, self.max_frames, self.pad_value)

        return tf.map_fn(one, tf.range(tf.shape(waveform)[0]), fn_output_signature=(
            tf.TensorSpec([self.max_frames, self.num_mel_bins], tf.float32), tf.TensorSpec([], tf.int32)))

    def _encode_waveform(self, waveform, num_samples) -> Dict[str, tf.Tensor]:
        return self._encode_logmel(*self._logmel_of_waveforms(waveform, num_samples))

    # --- validation -----------------------------------------------------------------------------------------

    def _check_image(self, checks: InputChecks, image, name: str = "image") -> None:
        s = self.image_size
        checks.require_rank(image, name, 4, f"[batch, {s}, {s}, 3]")
        checks.require_examples(image, name)
        checks.require(tf.equal(dims(image, 4)[1:], [s, s, 3]),
                       f"`{name}` must be [batch, {s}, {s}, 3]: the model was trained on {s} x {s} RGB images and "
                       "inputs are never resized. Received shape:", [tf.shape(image)])
        checks.require_finite(image, name)
        checks.require(tf.reduce_max(tf.abs(image)) <= MAX_ABS_PIXEL,
                       f"`{name}` values must be in [-1, 1] (uint8 pixels / 127.5 - 1). Received min and max:",
                       [tf.reduce_min(image), tf.reduce_max(image)])

    def _check_waveform(self, checks: InputChecks, waveform, num_samples) -> None:
        lim = self.limits
        width = dims(waveform, 2)[1]
        checks.require_rank(waveform, "waveform", 2, f"[batch, samples] ({lim['sample_rate']} Hz mono float32)")
        checks.require_rank(num_samples, "num_samples", 1, "[batch]")
        checks.require_same_batch(waveform, "waveform", num_samples, "num_samples")
        checks.require_examples(waveform, "waveform")
        checks.require(num_samples >= lim["min_samples"],
                       f"every `num_samples` must be at least {lim['min_samples']} (one analysis window): empty or "
                       "shorter audio has no log-mel frame. Received num_samples:", [num_samples])
        checks.require(num_samples <= width,
                       "every `num_samples` must be at most the waveform width. Received num_samples, width:",
                       [num_samples, width])
        checks.require(num_samples <= lim["max_samples"],
                       f"audio longer than {lim['max_samples']} samples ({lim['max_seconds']:.2f} s at "
                       f"{lim['sample_rate']} Hz; the model reads at most {self.max_frames} log-mel frames) is "
                       "rejected, not truncated: split it. Received num_samples:", [num_samples])
        checks.require_finite(waveform, "waveform")
        checks.require(tf.reduce_max(tf.abs(waveform)) <= MAX_ABS_SAMPLE,
                       "`waveform` samples must be float PCM in [-1, 1] (int16 PCM / 32768). Received max |sample|:",
                       [tf.reduce_max(tf.abs(waveform))])

    def _check_logmel(self, checks: InputChecks, logmel, nframes) -> None:
        f, t = self.num_mel_bins, self.max_frames
        shape = dims(logmel, 3)
        checks.require_rank(logmel, "logmel", 3, f"[batch, frames, {f}]")
        checks.require_rank(nframes, "nframes", 1, "[batch]")
        checks.require_same_batch(logmel, "logmel", nframes, "nframes")
        checks.require_examples(logmel, "logmel")
        checks.require(tf.equal(shape[2], f), f"`logmel` must have {f} mel bins (tfvgs.features.log_mel of the "
                       "training config). Received shape:", [tf.shape(logmel)])
        checks.require(shape[1] <= t, f"`logmel` must have at most {t} frames (features.max_frames): longer audio "
                       "is rejected, not truncated. Received shape:", [tf.shape(logmel)])
        checks.require(nframes >= 1, "every `nframes` must be at least 1: empty audio cannot be embedded. Received "
                       "nframes:", [nframes])
        checks.require(nframes <= shape[1], "every `nframes` must be at most the number of `logmel` frames. "
                       "Received nframes, frames:", [nframes, shape[1]])
        checks.require_finite(logmel, "logmel")

    # Valid stand-ins that `InputChecks.gate` feeds the computation when a check fails.
    def _blank_image(self):
        return tf.zeros([1, self.image_size, self.image_size, 3])

    def _blank_waveform(self):
        return tf.zeros([1, self.limits["min_samples"]]), tf.constant([self.limits["min_samples"]])

    # --- signatures -----------------------------------------------------------------------------------------

    @tf.function(autograph=False, input_signature=[_FLOAT, _INT])
    def embed_audio_waveform(self, waveform, num_samples):
        checks = InputChecks("embed_audio_waveform")
        self._check_waveform(checks, waveform, num_samples)
        return self._encode_waveform(*checks.gate([waveform, num_samples], self._blank_waveform()))

    @tf.function(autograph=False, input_signature=[_FLOAT, _INT])
    def embed_audio(self, logmel, nframes):
        checks = InputChecks("embed_audio")
        self._check_logmel(checks, logmel, nframes)
        blank = [tf.zeros([1, 1, self.num_mel_bins]), tf.constant([1])]
        return self._encode_logmel(*checks.gate([logmel, nframes], blank))

    @tf.function(autograph=False, input_signature=[_FLOAT])
    def embed_image(self, image):
        checks = InputChecks("embed_image")
        self._check_image(checks, image)
        return self._encode_image(*checks.gate([image], [self._blank_image()]))

    @tf.function(autograph=False, input_signature=[_STRING])
    def embed_image_bytes(self, image_bytes):
        s = self.image_size
        checks = InputChecks("embed_image_bytes")
        checks.require_rank(image_bytes, "image_bytes", 1, "[batch] (PNG or JPEG file contents)")
        checks.require_examples(image_bytes, "image_bytes")
        (image_bytes,) = checks.gate([image_bytes], [tf.constant([], tf.string)])

        def decode(i):
            contents = image_bytes[i]
            is_image = tf.logical_or(tf.equal(tf.strings.substr(contents, 0, 8), PNG_MAGIC),
                                     tf.equal(tf.strings.substr(contents, 0, 3), JPEG_MAGIC))
            format_check = InputChecks("embed_image_bytes")
            format_check.require(is_image, "`image_bytes[i]` is neither a PNG nor a JPEG file. Received i:", [i])
            (contents,) = format_check.gate([contents], [self._blank_png])
            image = tf.io.decode_image(contents, channels=3, expand_animations=False)
            size_check = InputChecks("embed_image_bytes")
            size_check.require(tf.equal(dims(image, 2), [s, s]),
                               f"`image_bytes[i]` must decode to {s} x {s} pixels: images are never resized. "
                               "Received i and decoded shape:", [i, tf.shape(image)])
            (image,) = size_check.gate([image], [tf.zeros([s, s, 3], tf.uint8)])
            return tf.ensure_shape(image, [s, s, 3])

        images = tf.map_fn(decode, tf.range(tf.shape(image_bytes)[0]),
                           fn_output_signature=tf.TensorSpec([s, s, 3], tf.uint8))
        return self._encode_image(data_lib.image_to_float(images))

    @tf.function(autograph=False, input_signature=[_FLOAT, _FLOAT, _INT])
    def match(self, image, waveform, num_samples):
        checks = InputChecks("match")
        self._check_image(checks, image)
        self._check_waveform(checks, waveform, num_samples)
        checks.require_same_batch(image, "image", waveform, "waveform")
        image, waveform, num_samples = checks.gate([image, waveform, num_samples],
                                                   [self._blank_image(), *self._blank_waveform()])
        image_feats = self._encode_image(image)["features"]
        audio = self._encode_waveform(waveform, num_samples)
        matchmap = sim.matchmap(image_feats, audio["features"])
        frames = audio["valid_frames"]
        return {"matchmap": matchmap, "valid_frames": frames,
                **{kind: sim.matchmap_similarity(matchmap, kind, frames) for kind in sim.SIMILARITY_KINDS}}

    def _retrieve(self, waveform, num_samples):
        checks = InputChecks("retrieve")
        self._check_waveform(checks, waveform, num_samples)
        audio = self._encode_waveform(*checks.gate([waveform, num_samples], self._blank_waveform()))
        if self.shortlist:
            return self._retrieve_two_stage(audio["features"], audio["valid_frames"])
        scores = self.index_scores(audio["features"], audio["valid_frames"])
        top = tf.math.top_k(scores, k=self.top_k, sorted=True)
        return {"image_ids": tf.gather(self.index_ids, top.indices), "scores": top.values, "indices": top.indices}

    def _retrieve_two_stage(self, audio_feats, audio_frames):
        """Pooled scores of all N images -> each query's `shortlist` best -> full-similarity top_k of those."""
        pooled = tf.matmul(sim.pool_audio(audio_feats, audio_frames), self.index_pooled, transpose_b=True)  # [B, N]
        candidates = tf.math.top_k(pooled, k=self.shortlist, sorted=False).indices                      # [B, S]
        maps = tf.cast(tf.gather(self.index_features, candidates), tf.float32)                     # [B, S, H', W', D]
        used = tf.maximum(tf.reduce_max(audio_frames), 1)
        matchmaps = tf.einsum("bsrcd,btd->bsrct", maps, audio_feats[:, :used])                   # [B, S, H', W', T']
        frames = tf.broadcast_to(audio_frames[:, None], tf.shape(candidates))
        scores = sim.matchmap_similarity(matchmaps, self.similarity, frames)                      # [B, S]
        top = tf.math.top_k(scores, k=self.top_k, sorted=True)
        indices = tf.gather(candidates, top.indices, batch_dims=1)
        return {"image_ids": tf.gather(self.index_ids, indices), "scores": top.values, "indices": indices}

    def index_scores(self, audio_feats, audio_frames):
        """Scores [B, N] of each caption against every index image with `self.similarity`."""
        index = tf.cast(self.index_features, tf.float32)
        if self.similarity == "sisa":
            return tf.matmul(sim.pool_audio(audio_feats, audio_frames), index, transpose_b=True)
        # Frames after the longest valid caption of the batch are ignored by MISA / SIMA anyway: skip them.
        used = tf.maximum(tf.reduce_max(audio_frames), 1)
        return tf.transpose(sim.similarity_matrix(index, audio_feats[:, :used], audio_frames,
                                                  self.similarity))

    # --- export ---------------------------------------------------------------------------------------------

    def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
        """Signature name -> concrete function, plus "serving_default" (retrieve when there is an index, else
        embed_audio_waveform)."""
        names = ["embed_audio_waveform", "embed_audio", "embed_image", "embed_image_bytes", "match"]
        if self.index is not None:
            names.append("retrieve")
        return concrete_signatures(self, names, "retrieve" if self.index is not None else "embed_audio_waveform")

    def describe(self) -> Dict:
        """What the signatures take and return, and the limits they enforce (written to the export info file)."""
        s, f, t = self.image_size, self.num_mel_bins, self.max_frames
        waveform = {"waveform": f"float32 [B, N] {self.limits['sample_rate']} Hz mono in [-1, 1], rows zero-padded",
                    "num_samples": "int32 [B] valid samples per row"}
        image = {"image": f"float32 [B, {s}, {s}, 3] in [-1, 1]"}
        audio_out = {"features": "float32 [B, T', D]", "valid_frames": "int32 [B]", "embedding": "float32 [B, D]"}
        image_out = {"features": "float32 [B, H', W', D]", "embedding": "float32 [B, D]"}
        signatures = {
            "embed_audio_waveform": {"inputs": waveform, "outputs": audio_out},
            "embed_audio": {"inputs": {"logmel": f"float32 [B, frames <= {t}, {f}] tfvgs.features.log_mel",
                                       "nframes": "int32 [B]"}, "outputs": audio_out},
            "embed_image": {"inputs": image, "outputs": image_out},
            "embed_image_bytes": {"inputs": {"image_bytes": f"string [B] PNG or JPEG of {s} x {s} pixels"},
                                  "outputs": image_out},
            "match": {"inputs": {**image, **waveform},
                      "outputs": {"matchmap": "float32 [B, H', W', T']", "sisa": "float32 [B]",
                                  "misa": "float32 [B]", "sima": "float32 [B]", "valid_frames": "int32 [B]"}},
        }
        if self.index is not None:
            signatures["retrieve"] = {"inputs": waveform, "outputs": {
                "image_ids": f"string [B, {self.top_k}]", "scores": f"float32 [B, {self.top_k}]",
                "indices": f"int32 [B, {self.top_k}]"}}
        info = {"signatures": signatures, "image_size": s, "num_mel_bins": f, "audio_limits": self.limits,
                "max_abs_pixel": MAX_ABS_PIXEL, "max_abs_sample": MAX_ABS_SAMPLE}
        if self.index is not None:
            info["index"] = {"size": len(self.index.ids), "similarity": self.similarity, "top_k": self.top_k,
                             "shortlist": self.shortlist,
                             "feature_shape": list(self.index.features.shape[1:]),
                             "dtype": str(self.index.features.dtype), **self.index.description}
        return info
