"""The semantic test set (paper 000 sec. 6.2): spoken isolated attribute words and positive / negative image pairs.

    python -m beam_pipelines.semantic_test_set --output_dir D --config PRESET [--split test|val]
        [--pairs_per_value N] [--pairs_per_family N] [--voices_per_word N] [beam flags]
    python -m beam_pipelines.semantic_test_set --source gan --workdir W --num_samples S --output_dir D ...

Writes <D>/words-*.tfrecord (one record per attribute value and voice: the word of `speech.isolated_words()` spoken
by a held-out TEST speaker, as log-mel) and <D>/pairs-*.tfrecord (per value, N pairs of images: one with an
object of that value, one with no object of it), plus summary.json and rejected.jsonl. Record formats:
`tfvgs.schema`.

Two image sources, as paper 000 sec. 6.2 tests on its GAN's images:
- `rendered` (default): rendered scenes, positive and negative by ground truth (below).
- `gan`: S images drawn by the GAN of W (`W/gan/generator.keras`) from latent seeds of their own namespace, so no
  Audio CLEVRGAN image is among them, and described by the segmenter of W. Only confidently described images enter
  the pool; a value's positives are pool images with an object of that value, its negatives pool images with none,
  each ordered by a seed of (config.seed, family, value, sample) and paired in order with a negative of the same
  object count (`count_matched_pairs`); no worker holds the whole pool (`GanPairs`). An image is used at most once
  per value but may serve several values. A value whose pool
  has too few such pairs rejects the missing ones with the counts in the reason; raise --num_samples. summary.json
  also counts the samples drawn and undescribed.

How many pairs: the accuracy of a family is a mean over its pairs; for p ~ 0.75 a 95% interval of +-2% needs
1.96 * sqrt(p (1 - p) / n) <= 0.02, i.e. n >= 1801 pairs per family. By default each family gets at least the
preset's `data.semantic_pairs_per_family` pairs (1801 at cpu and paper; fewer at demo and tiny) split evenly over its
values (at 1801: shape 601 per value, color 226, material 901, size 901: 7216 pairs in all);
--pairs_per_family or --pairs_per_value N (every value N pairs) override it.

Scenes are drawn from seeds derived from (config.seed, "semantic", family, value, index, role, attempt), a namespace
that training scenes (config.seed, "scene", index) never use. A drawn scene is made positive by giving one random
object the value, or negative by giving every object with the value another one; an edit that makes objects overlap
or hides one (below min_object_pixels) is thrown away and the next attempt drawn. Word voices are the same speakers
for every word (voice k is test speaker k), each utterance with its own rate and pitch, so accuracies average over the
same voices for every value.

`--split val` builds the same test from scenes (or GAN latents) of a namespace of its own, with words spoken as the
val pairs are (the held-out speakers, other rates and pitches), so a recipe for isolated words can be chosen on val
and the test set stays untouched until the end.
"""
from __future__ import annotations

import math
import os
from typing import Dict, Iterable, List, Optional, Sequence

import apache_beam as beam
import numpy as np

from beam_pipelines import audio_clevrgan, common
from beam_pipelines.spoken_captions import SpeakFn, voice_split
from tfvgs import cli, config as config_lib
from tfvgs.seeding import stable_seed

KINDS = ("words", "pairs")            # = tfvgs.schema.WORDS, PAIRS (file prefixes; no TensorFlow at import)
PAIRS_PER_FAMILY = config_lib.Config().data.semantic_pairs_per_family   # the paper-scale default (config.py owns it)
MAX_ATTEMPTS = 20                     # scene draws per image before the pair is rejected
SOURCES = ("rendered", "gan")
SPLITS = ("test", "val")               # whose speakers say the words; "test" keeps the seeds it always had
GAN_LATENT_NAMESPACE = "semantic_test_set"   # latent seeds of the gan source (Audio CLEVRGAN uses its own)


def pairs_per_value(num_values: int, pairs_per_family: int = PAIRS_PER_FAMILY) -> int:
    """Pairs for each value of a family with `num_values` values so that the family has >= pairs_per_family."""
    return int(math.ceil(pairs_per_family / num_values))


def plan_counts(pairs_per_value_override: Optional[int], pairs_per_family: int) -> Dict[str, int]:
    """{family: pairs per value}."""
    from tfvgs.world import ATTRIBUTES
    if pairs_per_value_override is not None:
        return {family: pairs_per_value_override for family in ATTRIBUTES}
    return {family: pairs_per_value(len(values), pairs_per_family) for family, values in ATTRIBUTES.items()}


# ---------------------------------------------------------------------------------------------------------------
# Images

def _visible(scene, rendering, min_object_pixels: int) -> bool:
    from tfvgs import world
    counts = world.object_pixel_counts(rendering.instance_mask, len(scene["objects"]))
    return int(counts.min()) >= min_object_pixels


def has_value(scene: dict, family: str, value: str) -> bool:
    """Whether some object of a scene (or of a segmenter description: same "objects" form) has `value`."""
    return any(o[family] == value for o in scene["objects"])


def split_namespace(split: str) -> tuple:
    """Seed-namespace parts of a split: none for "test" (its seeds predate --split), ("val",) for val."""
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {SPLITS}. Received: {split!r}")
    return () if split == "test" else (split,)


def make_image(config: config_lib.Config, family: str, value: str, index: int, positive: bool, split: str = "test"):
    """(scene, rendering) of a `split` scene in which some object has `value` (positive) or none has (negative).

    Raises ValueError when MAX_ATTEMPTS draws all failed."""
    from tfvgs import world
    from tfvgs.world.scene import footprints_overlap
    w = config.world
    role = "positive" if positive else "negative"
    values = world.ATTRIBUTES[family]
    reasons = []
    for attempt in range(MAX_ATTEMPTS):
        seed = stable_seed(config.seed, "semantic", *split_namespace(split), family, value, index, role, attempt)
        rng = np.random.default_rng(stable_seed(seed, "edit"))
        try:
            scene = world.sample_scene(seed, **world.sampling_options(w), image_index=index, split=split)
        except ValueError as e:
            reasons.append(f"sample: {e}")
            continue
        objects = scene["objects"]
        if positive:
            targets = [] if has_value(scene, family, value) else [int(rng.integers(len(objects)))]
            new_values = [value] * len(targets)
        else:
            targets = [i for i, o in enumerate(objects) if o[family] == value]
            new_values = [str(rng.choice([v for v in values if v != value])) for _ in targets]
        for i, new_value in zip(targets, new_values):
            scene = world.edit_scene(scene, i, family, new_value)
        if targets and family in ("shape", "size") and any(footprints_overlap(scene["objects"], i) for i in targets):
            reasons.append("edit made objects overlap")
            continue
        rendering = world.render(scene, w.image_size, w.supersample)
        if not _visible(scene, rendering, w.min_object_pixels):
            reasons.append(f"an object covers fewer than {w.min_object_pixels} pixels after the edit")
            continue
        holds = has_value(scene, family, value)
        if holds != positive:   # cannot happen unless edit_scene changes; checked because the test relies on it
            raise AssertionError(f"{role} scene for {family}={value} has_value={holds}")
        return scene, rendering
    raise ValueError(f"no {role} scene for {family}={value} #{index} in {MAX_ATTEMPTS} attempts: "
                     f"{'; '.join(sorted(set(reasons)))}")


class MakePairFn(beam.DoFn):
    """(family, value, index) -> ("pairs", serialized pair record); failures to the dead-letter output."""

    def __init__(self, config: config_lib.Config, split: str = "test"):
        self.config, self.split = config, split

    def setup(self):
        self._read = common.counter(common.READ)
        self._reject = common.Reject("render")

    def process(self, item) -> Iterable:
        import json
        from tfvgs import schema
        family, value, index = item
        self._read.inc()
        pair_id = f"{family}/{value}/{index:05d}"
        try:
            pos_scene, pos = make_image(self.config, family, value, index, positive=True, split=self.split)
            neg_scene, neg = make_image(self.config, family, value, index, positive=False, split=self.split)
            record = schema.encode_semantic_pair_record(
                pair_id=pair_id, family=family, value=value, positive_png=schema.encode_png(pos.image),
                negative_png=schema.encode_png(neg.image), positive_scene_json=json.dumps(pos_scene, sort_keys=True),
                negative_scene_json=json.dumps(neg_scene, sort_keys=True))
        except Exception as e:  # noqa: BLE001 - every failure is recorded with its reason, never dropped
            yield self._reject(pair_id, f"{type(e).__name__}: {e}")
            return
        common.counter(f"pairs:{family}").inc()
        yield "pairs", record


# ---------------------------------------------------------------------------------------------------------------
# GAN images (--source gan)

class DescribeGanSamplesFn(audio_clevrgan.DrawAndDescribeFn):
    """A batch of sample indices -> the confidently described GAN samples as pool entries {index, latent_seed, png,
    description}; every sample is counted as drawn, the others also as undescribed."""

    def __init__(self, config: config_lib.Config, workdir: str, model_batch: int = 32, split: str = "test"):
        super().__init__(config, workdir, num_samples=1, captions_per_image=1, style="synthetic",
                         latent_namespace="/".join((GAN_LATENT_NAMESPACE, *split_namespace(split))),
                         model_batch=model_batch)

    def process(self, indices: List[int]) -> Iterable:
        from tfvgs import schema
        indices = sorted(int(i) for i in indices)
        seeds, _, images, finite = self.draw(indices)
        for index, seed, image, ok, description in zip(indices, seeds, images, finite, self.describe(images)):
            self._drawn.inc()
            if not (ok and description["confident"]):
                self._undescribed.inc()
                continue
            yield {"index": index, "latent_seed": seed, "png": schema.encode_png(image), "description": description}


def count_matched_pairs(positives: List[dict], negatives: List[dict]) -> List[tuple]:
    """Pairs each positive, in order, with the first unused negative of the same object count.

    Without it the pairs would differ in clutter: a GAN image with no rubber object is mostly a single metal one, so
    negatives would have fewer objects than positives, and a model scoring sparse images higher would look below
    chance (rendered pairs avoid this by editing the same scene distribution)."""
    by_count: Dict[int, List[dict]] = {}
    for sample in negatives:
        by_count.setdefault(len(sample["description"]["objects"]), []).append(sample)
    next_unused = {count: 0 for count in by_count}
    pairs = []
    for sample in positives:
        count = len(sample["description"]["objects"])
        if next_unused.get(count, 0) < len(by_count.get(count, ())):
            pairs.append((sample, by_count[count][next_unused[count]]))
            next_unused[count] += 1
    return pairs


def gan_pool_keys(sample: dict, seed: int) -> Iterable[tuple]:
    """One (family, value, has it, object count) key per attribute value for a described sample, with its place in
    that value's seeded order: ((family, value, positive, count), (priority, index, sample))."""
    from tfvgs.world import ATTRIBUTES
    count = len(sample["description"]["objects"])
    for family, values in ATTRIBUTES.items():
        for value in values:
            priority = stable_seed(seed, "semantic_gan_pairs", family, value, sample["index"])
            yield (family, value, has_value(sample["description"], family, value), count), \
                (priority, sample["index"], sample)


class AssignGanPairsFn(beam.DoFn):
    """One value's candidates -> its planned pairs as records; a pair the pool cannot fill goes to the dead-letter
    output with the value's positive and negative counts.

    Input: ((family, value), {"plan": [None], "candidates": [(positive, count, [(priority, index, sample)])]}), the
    candidates being, per role and object count, the samples first in the value's seeded order, at most as many as
    the value needs pairs (`build_pipeline`); `pool_counts` {(family, value, positive, count): samples} counts the
    whole pool. Positives in seeded order are paired with negatives of the same object count in seeded order
    (`count_matched_pairs`): keeping only the first `n` per role and count gives the same first n pairs as the whole
    pool would, so no worker ever holds the pool."""

    def __init__(self, config: config_lib.Config, counts: Dict[str, int], num_samples: int, split: str = "test"):
        self.config, self.counts, self.num_samples, self.split = config, counts, num_samples, split

    def setup(self):
        self._read = common.counter(common.READ)
        self._reject = common.Reject("pool")

    def process(self, keyed, pool_counts: Dict[tuple, int]) -> Iterable:
        from tfvgs import schema
        (family, value), grouped = keyed
        positives, negatives = [], []
        for positive, _, candidates in grouped["candidates"]:
            (positives if positive else negatives).extend(candidates)
        pairs = count_matched_pairs([c[2] for c in sorted(positives, key=lambda c: c[:2])],
                                    [c[2] for c in sorted(negatives, key=lambda c: c[:2])])
        shortage = self._shortage(family, value, pool_counts) if len(pairs) < self.counts[family] else ""
        for index in range(self.counts[family]):
            self._read.inc()
            pair_id = f"{family}/{value}/{index:05d}"
            if index >= len(pairs):
                yield self._reject(pair_id, shortage, f"--num_samples {self.num_samples}")
                continue
            pos, neg = pairs[index]
            record = schema.encode_semantic_pair_record(
                pair_id=pair_id, family=family, value=value, positive_png=pos["png"], negative_png=neg["png"],
                positive_scene_json=self._scene_json(pos, self.split),
                negative_scene_json=self._scene_json(neg, self.split))
            common.counter(f"pairs:{family}").inc()
            yield "pairs", record

    def _shortage(self, family: str, value: str, pool_counts: Dict[tuple, int]) -> str:
        mine = {(positive, count): n for (f, v, positive, count), n in pool_counts.items() if (f, v) == (family, value)}
        with_value = sum(n for (positive, _), n in mine.items() if positive)
        without = sum(n for (positive, _), n in mine.items() if not positive)
        matched = sum(min(n, mine.get((False, count), 0)) for (positive, count), n in mine.items() if positive)
        return (f"the pool has {with_value} images with {family}={value} and {without} without among "
                f"{with_value + without} confidently described of {self.num_samples} GAN samples, which make "
                f"{matched} pairs of equal object counts; raise --num_samples")

    @staticmethod
    def _scene_json(sample: dict, split: str) -> str:
        import json
        return json.dumps(dict(sample["description"], image_index=sample["index"], split=split,
                               latent_seed=sample["latent_seed"], source="gan"), sort_keys=True)


class GanPairs(beam.PTransform):
    """Described GAN samples -> pair records and rejections, keyed by value: per (value, role, object count) only
    the first samples of the value's seeded order are kept (a bounded combiner), never the whole pool."""

    def __init__(self, config: config_lib.Config, counts: Dict[str, int], num_samples: int, split: str = "test"):
        super().__init__()
        self.config, self.counts, self.num_samples, self.split = config, counts, num_samples, split

    def expand(self, samples):
        from tfvgs.world import ATTRIBUTES
        seed = self.config.seed
        keyed = samples | "KeyByValue" >> beam.FlatMap(gan_pool_keys, seed)
        pool_counts = (keyed
                       | "CountOne" >> beam.Map(lambda kv: (kv[0], 1))
                       | "PoolCounts" >> beam.CombinePerKey(sum))
        candidates = (keyed
                      | "FirstInOrder" >> beam.combiners.Top.SmallestPerKey(max(self.counts.values()),
                                                                            key=lambda c: c[:2])
                      | "ByValue" >> beam.Map(lambda kv: ((kv[0][0], kv[0][1]), (kv[0][2], kv[0][3], kv[1]))))
        plan = (samples.pipeline
                | "PlannedValues" >> beam.Create([((f, v), None) for f, values in ATTRIBUTES.items() for v in values]))
        return ({"plan": plan, "candidates": candidates}
                | "GroupByValue" >> beam.CoGroupByKey()
                | "AssignPairs" >> beam.ParDo(AssignGanPairsFn(self.config, self.counts, self.num_samples, self.split),
                                              beam.pvalue.AsDict(pool_counts)).with_outputs(
                    common.REJECTED_TAG, main="records"))


# ---------------------------------------------------------------------------------------------------------------
# Speech (shared with beam_pipelines.transfer_test_set)

def word_items(config: config_lib.Config, voices_per_word: int, split: str = "test") -> List[dict]:
    """One work item per (attribute value, voice), the k-th voice of every word the same speaker. Val and test pairs
    speak with the same held-out pool (`voice_split`); the val words take the speakers between the test words' ones,
    so with up to 9 voices per word no speaker says both a val and a test word."""
    from tfvgs import speech
    namespace = "/".join(("semantic-word", *split_namespace(split)))
    voices = voice_split(split)
    pool = speech.speaker_pool(voices)
    if not 1 <= voices_per_word <= len(pool):
        raise ValueError(f"--voices_per_word must be in [1, {len(pool)}] (the held-out speakers). "
                         f"Received: {voices_per_word}")
    items = []
    for family, words in speech.isolated_words().items():
        for value, word in words:
            for k in range(voices_per_word):
                word_id = f"{family}/{value}/{k:02d}"
                drawn = speech.pick_voice(f"{namespace}/{config.seed}/{word_id}", voices,
                                          rate_range=config.speech.rate_range, pitch_range=config.speech.pitch_range)
                # spread over the pool; val takes the speakers between test's (others while voices_per_word <= 9)
                shift = 0 if split == "test" else len(pool) // (2 * voices_per_word)
                accent, variant = pool[(k * len(pool) // voices_per_word + shift) % len(pool)]
                items.append({"id": word_id, "family": family, "value": value, "text": word,
                              "voice": speech.Voice(accent, variant, drawn.rate, drawn.pitch)})
    return items


def encode_word(item: dict, logmel: np.ndarray):
    from tfvgs import schema
    return "words", schema.encode_word_record(word_id=item["id"], family=item["family"], value=item["value"],
                                              text=item["text"], logmel=logmel, voice=item["voice"].spec)


def _count_read(item):
    common.counter(common.READ).inc()
    return item


def build_pipeline(p: beam.Pipeline, config: config_lib.Config, output_dir: str, counts: Dict[str, int],
                   voices_per_word: int, workers: int, *, source: str = "rendered", workdir: Optional[str] = None,
                   num_samples: int = 0, batch_size: int = 32, split: str = "test") -> None:
    from tfvgs.world import ATTRIBUTES
    if source == "gan":
        pairs = (p
                 | "SampleIndices" >> beam.Create(range(num_samples))
                 | "ReshuffleIndices" >> beam.Reshuffle()
                 | "BatchIndices" >> beam.BatchElements(min_batch_size=1, max_batch_size=batch_size)
                 | "DrawAndDescribe" >> beam.ParDo(DescribeGanSamplesFn(config, workdir, model_batch=batch_size,
                                                                      split=split))
                 | "PairByValue" >> GanPairs(config, counts, num_samples, split))
    else:
        pair_items = [(family, value, i) for family, values in ATTRIBUTES.items() for value in values
                      for i in range(counts[family])]
        pairs = (p
                 | "PairIndices" >> beam.Create(pair_items)
                 | "ReshufflePairs" >> beam.Reshuffle()
                 | "MakePairs" >> beam.ParDo(MakePairFn(config, split)).with_outputs(common.REJECTED_TAG,
                                                                                    main="records"))
    words = (p
             | "WordItems" >> beam.Create(word_items(config, voices_per_word, split))
             | "CountWords" >> beam.Map(_count_read)
             | "ReshuffleWords" >> beam.Reshuffle()
             | "BatchWords" >> beam.BatchElements(min_batch_size=4, max_batch_size=16)
             | "SpeakWords" >> beam.ParDo(SpeakFn(config, encode_word, workers)).with_outputs(
                 common.REJECTED_TAG, main="records"))
    _ = ((pairs.records, words.records)
         | "MergeRecords" >> beam.Flatten()
         | "WriteRecords" >> common.WriteSplitRecords(output_dir, KINDS, config.data.num_shards))
    _ = ((pairs[common.REJECTED_TAG], words[common.REJECTED_TAG])
         | "MergeRejected" >> beam.Flatten()
         | "DeadLetter" >> common.WriteRejected(output_dir))


def run(argv: Optional[Sequence[str]] = None) -> dict:
    parser = cli.command_parser("beam_pipelines.semantic_test_set", __doc__)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--pairs_per_value", type=int, default=None,
                        help="pairs for every value (default: --pairs_per_family split evenly over a family's values)")
    parser.add_argument("--pairs_per_family", type=int, default=None,
                        help="default: the preset's data.semantic_pairs_per_family (1801 at cpu/paper: +-2%% "
                             "(95%% interval) at accuracy ~0.75)")
    parser.add_argument("--voices_per_word", type=int, default=None,
                        help="held-out speakers per word (default: the preset's data.semantic_voices_per_word)")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="whose speakers and which scenes: the held-out test set, or its val twin for choosing a "
                             "recipe (the Audio CLEVRGAN val speakers, scenes of their own seeds)")
    parser.add_argument("--tts_workers", type=int, default=2, help="espeak-ng processes at once per Beam worker")
    parser.add_argument("--source", default="rendered", choices=SOURCES,
                        help="rendered scenes (ground truth) or images of the GAN in --workdir (its segmenter)")
    parser.add_argument("--workdir", default=None, help="--source gan: where the gan and segmenter stages trained")
    parser.add_argument("--num_samples", type=int, default=None,
                        help="--source gan: GAN images to draw for the pool the pairs are taken from")
    parser.add_argument("--batch_size", type=int, default=32, help="--source gan: images drawn and described at once")
    config_lib.add_config_flags(parser)
    args, options = common.parse_pipeline_args(parser, argv)
    config = config_lib.config_from_args(args)
    if args.pairs_per_family is None:
        args.pairs_per_family = config.data.semantic_pairs_per_family
    if args.voices_per_word is None:
        args.voices_per_word = config.data.semantic_voices_per_word
    for name in ("pairs_per_value", "pairs_per_family", "num_samples", "batch_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name} must be positive. Received: {value}")
    if args.source == "gan":
        if args.workdir is None or args.num_samples is None:
            raise ValueError(f"--source gan needs --workdir (the trained GAN and segmenter) and --num_samples. "
                             f"Received: --workdir {args.workdir} --num_samples {args.num_samples}")
        audio_clevrgan.check_models(args.workdir)
    elif args.workdir is not None or args.num_samples is not None:
        raise ValueError(f"--workdir and --num_samples are for --source gan. Received: --source {args.source} "
                         f"--workdir {args.workdir} --num_samples {args.num_samples}")
    counts = plan_counts(args.pairs_per_value, args.pairs_per_family)
    words = word_items(config, args.voices_per_word, args.split)   # validates --voices_per_word before anything runs
    import tensorflow as tf
    common.check_local_espeak(options)
    common.prepare_output_dir(args.output_dir, KINDS, config)
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, config, args.output_dir, counts, args.voices_per_word, args.tts_workers,
                       source=args.source, workdir=args.workdir, num_samples=args.num_samples or 0,
                       batch_size=args.batch_size, split=args.split)
    from tfvgs.world import ATTRIBUTES
    planned = {"pairs_per_value": counts, "voices_per_word": args.voices_per_word, "words_planned": len(words),
               "pairs_planned": {f: counts[f] * len(v) for f, v in ATTRIBUTES.items()}, "source": args.source,
               "split": args.split}
    if args.source == "gan":
        from tfvgs import gan_io
        planned.update(workdir=args.workdir, num_samples=args.num_samples, generator=gan_io.read_info(args.workdir),
                       min_confidence=config.segmenter.min_confidence)
    summary = common.reconcile(p.result, args.output_dir, "semantic_test_set", planned)
    summary["pairs_written"] = {f: summary["counters"].get(f"pairs:{f}", 0) for f in ATTRIBUTES}
    summary["words_written"] = summary[common.WRITTEN] - sum(summary["pairs_written"].values())
    with tf.io.gfile.GFile(os.path.join(args.output_dir, "summary.json"), "w") as f:
        import json
        json.dump(summary, f, indent=2, sort_keys=True)
    if args.source == "gan":
        drawn = summary["counters"].get(audio_clevrgan.SAMPLES_DRAWN, 0)
        undescribed = summary["counters"].get(audio_clevrgan.SAMPLES_UNDESCRIBED, 0)
        print(f"[semantic_test_set] GAN pool: {drawn - undescribed} of {drawn} samples described confidently")
    print(f"[semantic_test_set] pairs per family {summary['pairs_written']}, words {summary['words_written']}")
    return summary


if __name__ == "__main__":
    run()
