"""Audio CLEVRGAN (paper 000 sec. 3 and 6.1): GAN-drawn scenes, described by the segmenter, captioned and spoken.

    python -m beam_pipelines.audio_clevrgan --workdir W --output_dir D --num_samples N --config PRESET
        [--style synthetic|natural] [--captions_per_image K] [--set k=v] [beam flags]

W is the workdir the `gan` and `segmenter` stages trained in (W/gan/generator.keras, W/segmenter/model.keras).
Sample i is drawn by the EMA generator from the latent of seed stable_seed(config.seed, "audio_clevrgan", i)
(`tfvgs.gan_io.latents_for_seeds`), converted to the uint8 image that is stored, and that very uint8 image is what
the segmenter describes (`tfvgs.describe`), so the stored PNG, the stored latent and the stored description agree.
Each confident description is captioned K times (caption k from a seed derived from (config.seed, i, k)), spoken by
espeak-ng and turned into a log-mel; pair records (`tfvgs.schema.encode_pair_record`) keep the latent `z`, so any
image can be regenerated and edited at h4 later, and the description with its image index and latent seed as
scene_json. Samples are split contiguously by index like render_scenes (config.data.split_fractions); train speech
uses the training voices, val and test speech voices never heard in training.

Accounting is in caption units (read = num_samples * K): a sample the segmenter cannot describe confidently sends
all K of its pairs to the dead-letter output (<D>/rejected.jsonl, step "describe", with the segmenter's reason and
the latent seed to look at it again). The run prints read / written / rejected and writes <D>/summary.json.
"""
from __future__ import annotations

import json
from typing import Callable, Iterable, List, Optional, Sequence

import apache_beam as beam
import numpy as np

from beam_pipelines import common
from beam_pipelines.render_scenes import split_for_index
from beam_pipelines.spoken_captions import speak_and_write, voice_split
from tfvgs import cli, config as config_lib, workdir as layout
from tfvgs.shards import SPLITS
from tfvgs.seeding import stable_seed

PIPELINE_NAME = "audio_clevrgan"
SAMPLES_DRAWN, SAMPLES_UNDESCRIBED = "samples_drawn", "samples_undescribed"   # extra counters in summary.json


def latent_seed(config_seed: int, index: int, namespace: str = PIPELINE_NAME) -> int:
    """The latent seed of sample `index`: `latents_for_seeds([latent_seed(seed, i)], dim)` redraws its latent.
    Other pipelines drawing GAN images (the semantic test set) pass their own namespace, so they never draw an Audio
    CLEVRGAN training image."""
    return stable_seed(config_seed, namespace, index)


def caption_seed(config_seed: int, index: int, caption: int) -> int:
    return stable_seed(config_seed, PIPELINE_NAME, "caption", index, caption)


def pair_id(split: str, index: int, caption: int) -> str:
    """Same form as spoken_captions: "<split>/<index:07d>/<k>"."""
    return f"{split}/{index:07d}/{caption}"


def check_models(workdir: str, allow_partial_gan: bool = False) -> None:
    """Fails before the pipeline starts when the generator or the segmenter of `workdir` is missing (naming each
    missing file and the command that trains it) or the generator had not finished growing."""
    import tensorflow as tf
    from tfvgs import gan_io
    commands = {gan_io.generator_path(workdir): f"python -m tfvgs.train --stage gan --config PRESET "
                                                f"--data_dir SCENES --workdir {workdir}",
                layout.model_path(workdir, "segmenter"): f"python -m tfvgs.train --stage segmenter --config PRESET "
                                         f"--data_dir SCENES --workdir {workdir}"}
    missing = [f"{path} does not exist; train it with `{command}`" for path, command in commands.items()
               if not tf.io.gfile.exists(path)]
    if missing:
        raise FileNotFoundError(f"--workdir {workdir} lacks a trained model: " + "; ".join(missing) +
                                " (SCENES: the output_dir of `python -m beam_pipelines.render_scenes`).")
    gan_io.load_generator(workdir, allow_partial=allow_partial_gan)   # raises for a generator that stopped growing


def in_fixed_batches(fn: Callable, inputs: np.ndarray, batch: int):
    """fn over `inputs` [N, ...] in chunks of exactly `batch` rows (the last one zero-padded), results cut to N rows
    and joined; fn returns an array or a tuple / dict of arrays with the batch first."""
    if len(inputs) == 0:
        raise ValueError(f"in_fixed_batches needs at least one row. Received shape {np.shape(inputs)}")
    chunks = []
    for start in range(0, len(inputs), batch):
        part = inputs[start:start + batch]
        padded = np.concatenate([part, np.zeros((batch - len(part),) + part.shape[1:], part.dtype)])
        out = fn(padded)
        chunks.append((len(part), out))

    def join(select):
        return np.concatenate([np.asarray(select(out))[:n] for n, out in chunks])
    first = chunks[0][1]
    if isinstance(first, dict):
        return {k: join(lambda out, k=k: out[k]) for k in first}
    if isinstance(first, (tuple, list)):
        return tuple(join(lambda out, i=i: out[i]) for i in range(len(first)))
    return join(lambda out: out)


class DrawAndDescribeFn(beam.DoFn):
    """A batch of sample indices -> GAN images -> segmenter descriptions -> one caption work item per caption.

    Both models are loaded once per worker in setup() and run as tf.functions over whole batches. process() is
    draw -> describe -> caption_items, each usable on its own after setup() (benchmarks/audio_clevrgan_bench.py
    times them one by one).

    The models always see batches of exactly `model_batch` rows (a short batch is padded): oneDNN picks kernels by
    shape, and the segmenter's confidences for one image differed in the 7th digit between a batch of 3 and one of 5,
    so how Beam happened to batch the samples (it differs between runs and runners) decided the stored descriptions
    and, near `min_confidence`, which samples are kept. With one shape every image's result is the same in any run.
    """

    def __init__(self, config: config_lib.Config, workdir: str, num_samples: int, captions_per_image: int,
                 style: str, allow_partial_gan: bool = False, latent_namespace: str = PIPELINE_NAME,
                 model_batch: int = 32):
        self.config, self.workdir, self.num_samples = config, workdir, num_samples
        self.captions_per_image, self.style, self.allow_partial_gan = captions_per_image, style, allow_partial_gan
        self.latent_namespace, self.model_batch = latent_namespace, int(model_batch)

    def setup(self):
        import tensorflow as tf

        from tfvgs import gan_io
        from tfvgs.gan import ProgressiveGenerator
        generator = gan_io.load_generator(self.workdir, allow_partial=self.allow_partial_gan)
        segmenter = layout.load_model(layout.model_path(self.workdir, "segmenter"))
        self.latent_dim, size = generator.latent_dim, generator.max_resolution

        def draw(z):
            images = generator.generate(z)
            finite = tf.reduce_all(tf.math.is_finite(images), axis=[1, 2, 3])
            return ProgressiveGenerator.to_uint8(images), finite

        batch = self.model_batch
        draw_fixed = tf.function(draw, input_signature=[tf.TensorSpec([batch, self.latent_dim], tf.float32)])
        self._draw = lambda z: in_fixed_batches(draw_fixed, np.asarray(z, np.float32), batch)
        segment = tf.function(lambda images: segmenter(images, training=False),
                              input_signature=[tf.TensorSpec([batch, size, size, 3], tf.float32)])
        self._segment = lambda images, training=False: in_fixed_batches(segment, np.asarray(images, np.float32),
                                                                         batch)
        self._read = common.counter(common.READ)
        self._drawn = common.counter(SAMPLES_DRAWN)
        self._undescribed = common.counter(SAMPLES_UNDESCRIBED)
        self._reject_drawing = common.Reject("draw")
        self._reject_description = common.Reject("describe")
        self._reject_caption = common.Reject("caption")

    def draw(self, indices: Sequence[int]):
        """Sample indices -> (latent seeds, latents [B, D], the uint8 images [B, S, S, 3] that are stored, finite [B]:
        False where the generator drew a non-finite pixel). Needs setup()."""
        from tfvgs import gan_io
        seeds = [latent_seed(self.config.seed, i, self.latent_namespace) for i in indices]
        latents = gan_io.latents_for_seeds(seeds, self.latent_dim)
        images, finite = (np.asarray(x) for x in self._draw(latents))
        return seeds, latents, images, finite

    def describe(self, images: np.ndarray) -> List[dict]:
        """The segmenter's descriptions (`tfvgs.describe`) of the very uint8 images `draw` returned. Needs setup()."""
        from tfvgs import describe
        s = self.config.segmenter
        return describe.describe_images(self._segment, images.astype(np.float32) / 127.5 - 1.0,
                                        min_object_pixels=s.min_object_pixels, min_confidence=s.min_confidence)

    def caption_items(self, index: int, seed: int, latent: np.ndarray, image: np.ndarray,
                      description: dict) -> Iterable:
        """A confidently described sample -> its K caption work items (caption text, voice, scene JSON, PNG,
        latent); a caption that cannot be written goes to the dead-letter output instead. Needs setup()."""
        from tfvgs import schema, speech
        split = split_for_index(index, self.num_samples, self.config.data.split_fractions)
        scene = dict(description, image_index=index, split=split, latent_seed=seed)
        scene_json = json.dumps(scene, sort_keys=True)
        image_png = schema.encode_png(image)
        for k in range(self.captions_per_image):
            item_id = pair_id(split, index, k)
            try:
                caption = speech.caption_for_scene(description, seed=caption_seed(self.config.seed, index, k),
                                                   style=self.style)
                voice = speech.pick_voice(item_id, voice_split(split), rate_range=self.config.speech.rate_range,
                                          pitch_range=self.config.speech.pitch_range)
            except Exception as e:  # noqa: BLE001 - recorded with its reason, never dropped
                yield self._reject_caption(item_id, f"{type(e).__name__}: {e}", f"latent_seed={seed}")
                continue
            yield {"pair_id": item_id, "split": split, "scene_json": scene_json, "image_png": image_png,
                   "caption": caption, "voice": voice, "latent": latent}

    def process(self, indices: List[int]) -> Iterable:
        indices = sorted(int(i) for i in indices)
        seeds, latents, images, finite = self.draw(indices)
        descriptions = self.describe(images)
        k_range = range(self.captions_per_image)
        for index, seed, latent, image, ok, description in zip(indices, seeds, latents, images, finite,
                                                               descriptions):
            split = split_for_index(index, self.num_samples, self.config.data.split_fractions)
            ids = [pair_id(split, index, k) for k in k_range]
            source = f"latent_seed={seed}"
            self._read.inc(len(ids))
            self._drawn.inc()
            if not ok:
                for item_id in ids:
                    yield self._reject_drawing(item_id, "the generator drew non-finite pixels", source)
                continue
            if not description["confident"]:
                self._undescribed.inc()
                for item_id in ids:
                    yield self._reject_description(item_id, f"segmenter: {description['reason']}", source)
                continue
            yield from self.caption_items(index, seed, latent, image, description)


def build_pipeline(p: beam.Pipeline, config: config_lib.Config, workdir: str, output_dir: str, num_samples: int,
                   captions_per_image: int, style: str, batch_size: int, tts_workers: int,
                   allow_partial_gan: bool = False) -> None:
    described = (p
                 | "SampleIndices" >> beam.Create(range(num_samples))
                 | "ReshuffleIndices" >> beam.Reshuffle()
                 | "BatchIndices" >> beam.BatchElements(min_batch_size=1, max_batch_size=batch_size)
                 | "DrawAndDescribe" >> beam.ParDo(DrawAndDescribeFn(
                     config, workdir, num_samples, captions_per_image, style, allow_partial_gan,
                     model_batch=batch_size)).with_outputs(
                         common.REJECTED_TAG, main="items"))
    speak_and_write(described.items, described[common.REJECTED_TAG], config, style, tts_workers, output_dir)


def run(argv: Optional[Sequence[str]] = None) -> dict:
    parser = cli.command_parser("beam_pipelines.audio_clevrgan", __doc__)
    parser.add_argument("--workdir", required=True, help="where the gan and segmenter stages trained")
    parser.add_argument("--output_dir", required=True, help="where pair TFRecords, rejected.jsonl, summary.json go")
    parser.add_argument("--num_samples", type=int, default=None, help="GAN images to draw (default: "
                        "config.data.gan_samples, or data.num_scenes when that is 0)")
    parser.add_argument("--captions_per_image", type=int, default=1)
    parser.add_argument("--style", default="synthetic", choices=("synthetic", "natural"))
    parser.add_argument("--batch_size", type=int, default=32, help="images drawn and described at once")
    parser.add_argument("--tts_workers", type=int, default=2, help="espeak-ng processes at once per Beam worker")
    parser.add_argument("--allow_partial_gan", action="store_true",
                        help="draw with a generator that stopped before full resolution (debugging only)")
    config_lib.add_config_flags(parser, workdir_flag="--workdir")
    args, options = common.parse_pipeline_args(parser, argv)
    config = config_lib.config_from_args(args, saved=layout.saved_config(args.workdir))
    num_samples = (config.data.gan_samples or config.data.num_scenes) if args.num_samples is None \
        else args.num_samples
    for flag, value in (("--num_samples", num_samples), ("--captions_per_image", args.captions_per_image),
                        ("--batch_size", args.batch_size), ("--tts_workers", args.tts_workers)):
        if value <= 0:
            raise ValueError(f"{flag} must be positive. Received: {value}")
    check_models(args.workdir, args.allow_partial_gan)
    from tfvgs import gan_io
    common.check_local_espeak(options)
    common.prepare_output_dir(args.output_dir, SPLITS, config)
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, config, args.workdir, args.output_dir, num_samples, args.captions_per_image, args.style,
                       args.batch_size, args.tts_workers, args.allow_partial_gan)
    return common.reconcile(p.result, args.output_dir, PIPELINE_NAME, {
        "num_samples": num_samples, "captions_per_image": args.captions_per_image, "style": args.style,
        "workdir": args.workdir, "generator": gan_io.read_info(args.workdir),
        "min_confidence": config.segmenter.min_confidence})


if __name__ == "__main__":
    run()
