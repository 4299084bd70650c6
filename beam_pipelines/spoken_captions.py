"""Scene records -> caption text -> espeak-ng speech -> log-mel -> spoken-pair TFRecords.

    python -m beam_pipelines.spoken_captions --scenes_dir D --output_dir O --config PRESET [--captions_per_image K]

Caption k of scene i is written from a seed derived from (config.seed, i, k); its voice is picked from the caption's id
within the training voices for the train split and the held-out voices for val and test, so test speech comes from
voices never heard in training. Speech is synthesised in small batches with a thread pool (espeak-ng runs as a
subprocess, so threads overlap on both cores).
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, List, Optional, Sequence

import apache_beam as beam
import numpy as np

from beam_pipelines import common
from tfvgs import cli, config as config_lib
from tfvgs.shards import SPLITS, shard_pattern
from tfvgs.seeding import stable_seed


def voice_split(data_split: str) -> str:
    """Which voice pool a data split speaks with."""
    return "train" if data_split == "train" else "test"


class LogMelFn:
    """The shared log-mel function compiled once per worker for any waveform length."""

    def __init__(self, features_config):
        import tensorflow as tf
        from tfvgs import features
        self._fn = tf.function(lambda w: features.log_mel(w, features_config),
                               input_signature=[tf.TensorSpec([None], tf.float32)])

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        return self._fn(waveform).numpy()


def _check_png(data: bytes) -> None:
    """Raises ValueError unless `data` is a whole, decodable PNG (a bad image must not reach training)."""
    import io

    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise ValueError(f"image/png holds a {image.format} image")
            image.load()
    except (OSError, SyntaxError) as e:
        raise ValueError(f"image/png does not decode: {e}") from e


class PlanCaptionsFn(beam.DoFn):
    """Scene record -> one work item per caption (pair id, split, scene, image PNG, caption text, voice)."""

    def __init__(self, config: config_lib.Config, captions_per_image: int, style: str):
        self.config, self.captions_per_image, self.style = config, captions_per_image, style

    def setup(self):
        self._read = common.counter(common.READ)
        self._reject = common.Reject("caption")

    def process(self, serialized: bytes) -> Iterable:
        import tensorflow as tf
        from tfvgs import schema, speech
        record_id = "unparseable-scene-record"
        try:
            example = tf.train.Example.FromString(serialized)
            f = example.features.feature
            split = f[schema.SPLIT].bytes_list.value[0].decode()
            index = int(f[schema.SCENE_INDEX].int64_list.value[0])
            record_id = f"{split}/{index:07d}"          # from here on a rejection names the scene
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r} (expected one of {SPLITS})")
            if not f[schema.IMAGE_PNG].bytes_list.value:
                raise ValueError("the record has no image/png")
            image_png = f[schema.IMAGE_PNG].bytes_list.value[0]
            _check_png(image_png)
            scene = json.loads(f[schema.SCENE_JSON].bytes_list.value[0].decode())
        except Exception as e:  # noqa: BLE001
            self._read.inc()
            yield self._reject(record_id, f"{type(e).__name__}: {e}")
            return
        for k in range(self.captions_per_image):
            self._read.inc()
            pair_id = f"{split}/{index:07d}/{k}"
            try:
                caption = speech.caption_for_scene(scene, seed=stable_seed(self.config.seed, "caption", index, k),
                                                   style=self.style)
                voice = speech.pick_voice(pair_id, voice_split(split), rate_range=self.config.speech.rate_range,
                                          pitch_range=self.config.speech.pitch_range)
            except Exception as e:  # noqa: BLE001
                yield self._reject(pair_id, f"{type(e).__name__}: {e}")
                continue
            yield {"pair_id": pair_id, "split": split, "scene_json": json.dumps(scene, sort_keys=True),
                   "image_png": image_png, "caption": caption, "voice": voice}


class SpeakFn(beam.DoFn):
    """A batch of work items -> `encode(item, logmel)` each: espeak-ng in a thread pool, the shared log-mel. TTS
    failures, speech outside [speech.min_seconds, max_seconds] and encoding errors go to the dead-letter output
    under the item's id, never dropped. Items carry the text to speak, a `Voice` under "voice" and an id.

    Used by every pipeline that speaks: captions (`EncodePair`), isolated words and transfer captions."""

    def __init__(self, config: config_lib.Config, encode: Callable, workers: int, step: str = "speech",
                 id_key: str = "id", text_key: str = "text"):
        self.config, self.encode, self.workers, self.step = config, encode, workers, step
        self.id_key, self.text_key = id_key, text_key

    def setup(self):
        self._log_mel = LogMelFn(self.config.features)
        self._pool = ThreadPoolExecutor(max_workers=self.workers)
        self._reject = common.Reject(self.step)

    def teardown(self):
        self._pool.shutdown(wait=True)

    def _speak(self, item):
        from tfvgs import speech
        try:
            return speech.synthesize(item[self.text_key], item["voice"],
                                     sample_rate=self.config.speech.sample_rate), None
        except Exception as e:  # noqa: BLE001
            return None, f"{type(e).__name__}: {e}"

    def process(self, batch: List[dict]) -> Iterable:
        s = self.config.speech
        for item, (waveform, error) in zip(batch, self._pool.map(self._speak, batch)):
            seconds = 0.0 if waveform is None else waveform.size / float(s.sample_rate)
            if error is None and not s.min_seconds <= seconds <= s.max_seconds:
                error = f"speech length {seconds:.2f} s outside [{s.min_seconds}, {s.max_seconds}] s"
            if error is None:
                try:
                    output = self.encode(item, self._log_mel(waveform))
                except Exception as e:  # noqa: BLE001 - rejected with its reason, never dropped
                    error = f"{type(e).__name__}: {e}"
            if error is not None:
                yield self._reject(item[self.id_key], error, item[self.text_key])
                continue
            yield output


class EncodePair:
    """A caption work item and its log-mel -> (split, serialized pair record); counts log-mels longer than
    `max_frames` (kept; the readers crop them)."""

    def __init__(self, style: str, max_frames: int):
        self.style, self.max_frames = style, int(max_frames)

    def __call__(self, item: dict, logmel: np.ndarray):
        from tfvgs import schema
        if logmel.shape[0] > self.max_frames:
            common.counter(common.LONGER_THAN_MAX_FRAMES).inc()
        record = schema.encode_pair_record(
            pair_id=item["pair_id"], image_png=item["image_png"], logmel=logmel, caption=item["caption"],
            voice=item["voice"].spec, split=item["split"], caption_style=self.style, scene_json=item["scene_json"],
            latent=item.get("latent"))
        return item["split"], record


def speak_and_write(items, upstream_rejected, config: config_lib.Config, style: str, workers: int,
                    output_dir: str) -> None:
    """The shared tail of the captioning pipelines: caption work items -> speech, log-mel -> pair TFRecords per
    split; rejections of this step and of `upstream_rejected` -> the dead-letter output."""
    spoken = (items
              | "ReshuffleCaptions" >> beam.Reshuffle()
              | "BatchCaptions" >> beam.BatchElements(min_batch_size=4, max_batch_size=16)
              | "SpeakAndLogMel" >> beam.ParDo(SpeakFn(config, EncodePair(style, config.features.max_frames), workers,
                                                       id_key="pair_id", text_key="caption")).with_outputs(
                  common.REJECTED_TAG, main="pairs"))
    _ = spoken.pairs | "WriteRecords" >> common.WriteSplitRecords(output_dir, SPLITS, config.data.num_shards)
    _ = ((upstream_rejected, spoken[common.REJECTED_TAG])
         | "MergeRejected" >> beam.Flatten()
         | "DeadLetter" >> common.WriteRejected(output_dir))


def build_pipeline(p: beam.Pipeline, config: config_lib.Config, scenes_dir: str, output_dir: str,
                   captions_per_image: int, style: str, workers: int) -> None:
    records = p | "ReadScenes" >> beam.io.ReadFromTFRecord(shard_pattern(scenes_dir, "*"))
    planned = (records
               | "PlanCaptions" >> beam.ParDo(PlanCaptionsFn(config, captions_per_image, style)).with_outputs(
                   common.REJECTED_TAG, main="items"))
    speak_and_write(planned.items, planned[common.REJECTED_TAG], config, style, workers, output_dir)


def run(argv: Optional[Sequence[str]] = None) -> dict:
    parser = cli.command_parser("beam_pipelines.spoken_captions", __doc__)
    parser.add_argument("--scenes_dir", required=True, help="output_dir of render_scenes")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--captions_per_image", type=int, default=1)
    parser.add_argument("--style", default="synthetic", choices=("synthetic", "natural"))
    parser.add_argument("--tts_workers", type=int, default=2, help="espeak-ng processes at once per Beam worker")
    config_lib.add_config_flags(parser)
    args, options = common.parse_pipeline_args(parser, argv)
    config = config_lib.config_from_args(args)
    if args.captions_per_image <= 0:
        raise ValueError(f"--captions_per_image must be positive. Received: {args.captions_per_image}")
    import tensorflow as tf
    if not tf.io.gfile.glob(shard_pattern(args.scenes_dir, "*")):
        raise FileNotFoundError(f"--scenes_dir {args.scenes_dir}: no scene shards "
                                f"({shard_pattern(args.scenes_dir, '*')}); run beam_pipelines.render_scenes first")
    common.check_local_espeak(options)
    common.prepare_output_dir(args.output_dir, SPLITS, config)
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, config, args.scenes_dir, args.output_dir, args.captions_per_image, args.style,
                       args.tts_workers)
    return common.reconcile(p.result, args.output_dir, "spoken_captions", {"style": args.style})


if __name__ == "__main__":
    run()
