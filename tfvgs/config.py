"""Presets as code: one nested dataclass config, three (or more) named presets sharing one code path.

`tiny` runs each stage in seconds for tests, `cpu` reproduces the method on 2 cores in hours, `paper` has the sizes of
paper 000/001 for GPUs. Every command line takes `--config NAME` and repeated `--set section.field=value` overrides;
the resolved config is saved as JSON next to what it produced so a run can be reproduced and resumed.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple


@dataclasses.dataclass
class WorldConfig:
    """The built-in CLEVR-style world."""
    image_size: int = 128          # rendered square image size in pixels
    min_objects: int = 3
    max_objects: int = 10
    # Every object must be visible by at least this many pixels (at image_size): ~40% of a small object's median
    # unoccluded size (5-6 px at 32, 28 at 64, 100-110 at 128); CLEVR's 200 of 480x320 is ~22%.
    min_object_pixels: int = 40
    supersample: int = 3           # anti-aliasing: supersample^2 rays per pixel
    camera_jitter: float = 0.5     # CLEVR jitters camera and lights by up to +-0.5 world units
    light_jitter: float = 1.0
    # Framing: CLEVR's camera sees 38 degrees and places objects in [-3, 3]^2. A narrower view of a smaller area
    # makes every object cover more pixels of a small image (tfvgs.world.sampler).
    fov_degrees: float = 38.0
    object_area: float = 3.0


@dataclasses.dataclass
class SpeechConfig:
    """Spoken captions synthesised with espeak-ng."""
    sample_rate: int = 16000
    rate_range: Tuple[int, int] = (140, 190)    # espeak-ng words per minute
    pitch_range: Tuple[int, int] = (30, 70)     # espeak-ng pitch 0-99
    max_seconds: float = 30.0                   # longer synthesised/imported audio is rejected, not truncated
    min_seconds: float = 0.2


@dataclasses.dataclass
class FeatureConfig:
    """The log-mel definition of paper 001 sec. 4.2."""
    sample_rate: int = 16000
    window_ms: float = 25.0
    hop_ms: float = 10.0
    fft_length: int = 512
    num_mel_bins: int = 40
    preemphasis: float = 0.97
    lower_edge_hz: float = 20.0
    upper_edge_hz: float = 8000.0
    log_floor: float = 1e-6       # log(mel + floor); also the value of padded frames before the input BatchNorm
    max_frames: int = 2048        # fixed input length; true length is kept as `nframes`


@dataclasses.dataclass
class DataConfig:
    """Data set sizes, splits and reader settings."""
    num_scenes: int = 10000
    # GAN samples Audio CLEVRGAN draws (0: num_scenes). The segmenter keeps only the samples it can describe, so
    # a preset whose GAN draws few describable scenes draws more to keep enough pairs.
    gan_samples: int = 0
    split_fractions: Tuple[float, float, float] = (0.8, 0.1, 0.1)   # train / val / test
    num_shards: int = 8
    reader_parallelism: int = 2     # fixed, not AUTOTUNE: autotune fights for 2 cores
    shuffle_buffer: int = 1000
    prefetch: int = 2
    # Training batches of captions of similar length, padded to the batch's longest rounded up to a multiple of
    # this many frames (tfvgs.data.length_bucketed_batches); 0 pads every batch to features.max_frames (DAVEnet).
    bucket_frames: int = 0
    # How a training split is split across the workers of a multi-worker strategy (tfvgs.multi_worker): "file" gives
    # each worker its own shard files (each reads 1/W of the data), "data" has every worker read every file and keep
    # its part of each global batch (the very batches one process sees), "auto" is "file" when the split has at
    # least as many shards as there are workers, else "data".
    worker_sharding: str = "auto"
    # Test and edit sets built by `--stage all` (beam_pipelines.semantic_test_set / transfer_test_set)
    semantic_pairs_per_family: int = 1801     # +-2% (95% interval) at accuracy ~0.75
    semantic_voices_per_word: int = 10
    transfer_scenes: int = 1000               # paper 000 sec. 6.5
    renderer_edit_scenes: int = 10000         # the exact_edits training set


@dataclasses.dataclass
class ModelConfig:
    """The DAVEnet dual encoder (paper 001 sec. 4.1-4.4)."""
    image_encoder: str = "vgg16"        # vgg16 | resnet50 | small
    audio_encoder: str = "davenet"      # davenet | davenet_large | res_davenet
    embedding_dim: int = 1024
    image_width: float = 1.0            # channel multipliers: the CPU preset is a scaled copy, not another model
    audio_width: float = 1.0
    # Paper 001's recipe from random init: SISA scores with sampled + semi-hard impostors (eq. 15). Paper 000's
    # DaveNet baseline (MISA, sampled impostors only) stayed at the chance loss for 250 steps of the cpu preset
    # (val loss 1.999 vs 2.0 at chance) while this recipe had already fallen to 3.29 of 4.0; MISA is used to evaluate.
    train_similarity: str = "sisa"      # sisa | misa | sima
    eval_similarity: str = "misa"
    loss: str = "semi_hard"             # sampled (eq. 11) | semi_hard (= sampled + semi-hard, eq. 15) | hardest | mms
    margin: float = 1.0


@dataclasses.dataclass
class TrainConfig:
    """Optimisation and bookkeeping shared by the training stages (paper 001 sec. 4.6 by default)."""
    batch_size: int = 80
    steps: int = 40 * 500               # ~40 epochs of 40k pairs at batch 80 (paper 001 stops at 40 epochs)
    optimizer: str = "sgd"              # sgd (momentum) | adamw
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-7
    lr_decay_every: int = 30 * 500      # steps; paper 001 divides by 10 every 30 epochs
    lr_decay_factor: float = 0.1
    # DaveNet's schedule from val recall instead of fixed steps (0 = off: lr_decay_every and train.steps decide).
    # With plateau_patience N, after N checkpoint evaluations without a gain of plateau_min_delta in val R@10
    # (config.model.eval_similarity, mean of both directions) the rate is multiplied by lr_decay_factor; after
    # plateau_decays such decays the next plateau stops the stage; plateau_max_steps (0: train.steps) is then the
    # ceiling, while train.steps stays the fixed length of the stages fine-tuned from it (hard_negatives). Why: the
    # fixed 3000 steps of the cpu preset ended seed 0 on its plateau but seed 1 still climbing (val R@10 55.8 vs 29.2).
    plateau_patience: int = 0
    plateau_min_delta: float = 0.01
    plateau_decays: int = 1
    plateau_max_steps: int = 0
    checkpoint_every: int = 500         # steps between checkpoints (a killed run loses at most this many)
    keep_checkpoints: int = 3
    log_every: int = 50
    strategy: str = "auto"              # auto (TF_CONFIG's workers, else all GPUs, else the CPU) | mirrored |
    #                                     multi_worker (tfvgs.multi_worker) | default
    eval_pairs: int = 500               # held-out pairs for recall, as paper 000
    # Extra views for isolated words (0 = off, as paper 001): every pair also scores a random crop of its caption,
    # crop_frames[0]..crop_frames[1] input frames alone in silence like a word of the semantic test, against the
    # batch's images with the same loss, weighted crop_weight. No word timings are used: a crop is any stretch.
    crop_weight: float = 0.0
    crop_frames: Tuple[int, int] = (30, 100)
    # Random speaker / channel changes of every training caption (tfvgs.voice_augmentation; 0 = off): vocal tract
    # warp alpha in 1 +- voice_warp, level +- voice_gain and spectral tilt +- voice_tilt (natural-log power units).
    voice_warp: float = 0.0
    voice_gain: float = 0.0
    voice_tilt: float = 0.0
    # Learning-rate multiplier of the stages that train on the hardest impostor (hard_negatives, hn_*_edits), which
    # start from a trained model. With AdamW at the from-scratch rate the hardest-impostor hinge collapsed every
    # embedding to one point within 200 steps (demo: val R@10 21.5 -> 0.2, chance 5); 0.1 did not collapse.
    hardest_lr_scale: float = 1.0
    # The loss of the Hard Neg stages (hard_negatives, hn_*_edits): "hardest" is paper 000's literal recipe;
    # "hardest_sampled" / "hardest_mms" add the sampled / masked-margin-softmax term that keeps it from collapsing
    # (tfvgs.losses; paper 001 sec. 4.4 pairs its hard mining with the sampled loss the same way).
    hard_negative_loss: str = "hardest"
    summary_pairs: int = 4              # fixed pairs whose matchmaps and audio go to TensorBoard


@dataclasses.dataclass
class GanConfig:
    """The progressive GAN (Karras et al. 2018; paper 000 sec. 4) that draws the scenes."""
    latent_dim: int = 100               # paper 000: z in R^100
    fmap_base: int = 8192               # channels at stage s: min(fmap_base / 2**s, fmap_max)
    fmap_max: int = 512                 # paper size: h4 has 512 units
    # The critic's fmap_base, when it differs from the generator's (0: the same). A critic that already tells the
    # fakes apart needs no more width than the generator it judges; its passes dominate the step's work.
    discriminator_fmap_base: int = 0
    lod_training_kimg: float = 600.0    # images shown (thousands) per stable phase (official preset-v2-1gpu)
    lod_transition_kimg: float = 600.0  # ... and per fade-in
    minibatch_base: int = 4
    minibatch_per_resolution: Dict[str, int] = dataclasses.field(
        default_factory=lambda: {"4": 128, "8": 128, "16": 128, "32": 64, "64": 32, "128": 16})
    total_kimg: float = 12000.0
    n_critic: int = 1
    learning_rate: float = 0.001        # both Adams (PGGAN: 0.001, beta1 0, beta2 0.99, eps 1e-8)
    # "wgan_gp": PGGAN's WGAN-GP + drift (gp_weight, drift_weight); "logistic_r1": StyleGAN's non-saturating
    # logistic loss with the R1 penalty on reals (r1_gamma, lazy every r1_every critic steps).
    loss: str = "wgan_gp"
    gp_weight: float = 10.0
    drift_weight: float = 0.001
    r1_gamma: float = 10.0
    r1_every: int = 1
    ema_beta: float = 0.999
    mbstd_group_size: int = 4
    checkpoint_every: int = 500         # steps between checkpoints (a killed run loses at most this many)
    grid_every: int = 1000              # steps between fixed-z image grids in TensorBoard
    num_grid_images: int = 16
    # After every growth phase, when <workdir>/segmenter/model.keras exists: FID/KID on segmenter features, the
    # well-formed fraction and attribute distributions of this many samples vs as many rendered images of
    # `quality_split` (tfvgs.evaluation.gan_quality). 0 turns the reports off.
    quality_samples: int = 1000
    quality_split: str = "val"
    # ... and also every this many kimg inside a phase (0: only after phases), at the alpha training is at: the
    # curve of a long last phase, where the schedule's length is decided.
    quality_every_kimg: float = 0.0
    # Wall-clock budget of the stage (minutes, summed over resumes; 0: none): training stops at the first segment
    # boundary after it is spent, then the last quality report runs and the generator is saved as it stands. On a
    # slower machine the GAN then sees fewer images instead of making the curriculum hours longer.
    max_minutes: float = 0.0


@dataclasses.dataclass
class SegmenterConfig:
    """The attribute segmenter that describes what the GAN drew (paper 000 sec. 6.1)."""
    width: int = 64                     # base channel count of the fully convolutional network
    depth: int = 3                      # U-Net levels; image sizes must be divisible by 2**depth
    batch_size: int = 32
    steps: int = 20000
    learning_rate: float = 1e-3
    checkpoint_every: int = 500
    min_object_pixels: int = 20         # a predicted object smaller than this is not described
    min_confidence: float = 0.6         # mean attribute probability below this -> "cannot describe"


@dataclasses.dataclass
class EditsConfig:
    """Edited negatives from the GAN (paper 000 sec. 5.4-5.6) and the stages that use them."""
    steps: int = 10000                  # training steps of each edit stage (they start from a trained model)
    # Random edits (sec. 5.4): each h4 unit at the salient location is ablated with probability p, p raised along
    # this list until the edit changes the image (below), else the edit is dropped from the loss.
    ablation_probabilities: Tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    # "The edited image differs from the original": >= min_changed_fraction of its pixels moved by > pixel_change
    # (in [-1, 1] units, i.e. 0.2 = 25 of 255 grey levels). 0.005 of 64x64 is 20 px, about a small object's face.
    pixel_change: float = 0.2
    min_changed_fraction: float = 0.005
    # "pixels" (the paper's test above) or "segmenter": the edit must also change what the captioning segmenter
    # reads under it (tfvgs.edits.described_change), so fewer edited negatives still match their caption.
    change_test: str = "pixels"
    # Concept clusters (sec. 5.5): embedding units binarised at their top 1% over every image location and audio
    # frame of `cluster_pairs` training pairs, partitioned by a dendrogram of their co-occurrence.
    num_clusters: int = 15              # the vocabulary has 3 shapes + 8 colours + 2 materials + 2 sizes
    cluster_pairs: int = 5000
    activation_quantile: float = 0.99
    # Unit ranking (sec. 4.2): h4 units ranked by IoU with the cluster-inferred segmentation s(I|w_k) over
    # `ranking_samples` generated images; s = locations whose cluster activation is in the top (1 - q).
    ranking_samples: int = 1000
    segmentation_quantile: float = 0.8
    unit_quantile: float = 0.99
    # Targeted edits (sec. 5.6): ablate the drawn cluster's top-n units at the salient location, n growing along
    # this list (clipped to the h4 width) until the image changes.
    targeted_unit_counts: Tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256, 512)
    success_pairs: int = 200            # held-out pairs whose edits are described to measure the success rate


@dataclasses.dataclass
class Config:
    name: str = "paper"
    seed: int = 0
    world: WorldConfig = dataclasses.field(default_factory=WorldConfig)
    speech: SpeechConfig = dataclasses.field(default_factory=SpeechConfig)
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    gan: GanConfig = dataclasses.field(default_factory=GanConfig)
    segmenter: SegmenterConfig = dataclasses.field(default_factory=SegmenterConfig)
    edits: EditsConfig = dataclasses.field(default_factory=EditsConfig)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, path: str) -> None:
        """Written under a temporary name and renamed (local paths and gs:// alike): a reader - another worker
        checking a resumed run's settings, a kill mid-write - never sees half a file."""
        from tfvgs import atomic_files
        atomic_files.write_text(path, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "Config":
        return _from_dict(cls, values, "config")

    @classmethod
    def load(cls, path: str) -> "Config":
        import tensorflow as tf
        with tf.io.gfile.GFile(path) as f:
            return cls.from_dict(json.load(f))


def _from_dict(cls, values: Dict[str, Any], where: str):
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a mapping. Received: {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"Unknown field(s) {unknown} in {where}. Known: {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _from_dict(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def paper() -> Config:
    """Sizes of paper 000 (128 px CLEVR GAN images, DAVEnet at paper width) for GPUs.

    Synthetic captions of 10-object scenes last ~27 s on average at 160-210 wpm (32.5 s at 140-190), beyond
    DAVEnet's 2048 frames, so the paper preset keeps 3072 frames and truncates the rare longer caption instead of
    rejecting it (paper 001 truncates too).
    """
    c = Config(name="paper")
    c.speech = dataclasses.replace(c.speech, rate_range=(160, 210), max_seconds=45.0)
    c.features = dataclasses.replace(c.features, max_frames=3072)
    return c


def cpu() -> Config:
    """The reproduction on 2 CPU cores: the whole curriculum (`python -m tfvgs.demo --config cpu`) in under 3 hours.

    The world is the demo's (32 px, 1-3 objects, zoomed camera: a median object covers 34 pixels) because that is
    what a GAN learns to draw in under an hour here: a 64 px GAN reached only 24% well-formed samples after 2.4 h
    (docs/results.md, issue 14). Everything else is larger than the demo: 10k scenes, a 40-minute GAN (logistic +
    R1), 48k GAN samples (>= 500 test pairs), DaveNet until its val recall stops rising (at most 7000 steps), 3000
    Hard Neg steps, 1000 per edit stage, test sets of 400 pairs per family. The training recipe is the one chosen on
    the demo's val pairs (AdamW, masked margin softmax, length buckets), plus caption crops as extra views for
    isolated words (`train.crop_weight`, chosen by design, not on test).
    """
    c = Config(name="cpu")
    c.world = dataclasses.replace(c.world, image_size=32, min_objects=1, max_objects=3, min_object_pixels=4,
                                  supersample=2, fov_degrees=26.0, object_area=2.0)
    c.speech = dataclasses.replace(c.speech, rate_range=(170, 220), max_seconds=20.0)
    c.features = dataclasses.replace(c.features, max_frames=1024)
    c.data = dataclasses.replace(c.data, num_scenes=10000, gan_samples=48000, num_shards=8, bucket_frames=128,
                                 semantic_pairs_per_family=400, semantic_voices_per_word=8, transfer_scenes=500,
                                 # 8000 renderer edits, not 2000: exact_edits' val transfer 84.6 -> 87.6
                                 # (docs/results.md, "More renderer edits"); 3.2 min to build, ~2.6 more
                                 # (docs/benchmarks.md)
                                 renderer_edit_scenes=8000)
    c.model = dataclasses.replace(c.model, image_encoder="small", embedding_dim=256, image_width=0.5,
                                  audio_width=0.25, loss="mms")
    c.train = dataclasses.replace(c.train, batch_size=32, steps=3000, lr_decay_every=2250, checkpoint_every=500,
                                  log_every=50, eval_pairs=500, optimizer="adamw", learning_rate=1e-3,
                                  weight_decay=1e-4, hardest_lr_scale=0.1, hard_negative_loss="hardest_mms",
                                  crop_weight=0.5,
                                  # DaveNet's length from val R@10 (2 evaluations of 500 steps without +1 point: lr
                                  # / 10; the next such plateau stops it), at most 7000 steps: the fixed 3000 steps
                                  # stopped it while val recall still rose (docs/results.md, "A seventh build")
                                  plateau_patience=2, plateau_max_steps=7000)
    # StyleGAN's logistic loss + lazy R1 at twice PGGAN's rate, stopped by the clock: at the curriculum's ~40 GAN
    # minutes it drew 57.5-59.2% well-formed samples where the earlier WGAN-GP preset drew 44.0% (docs/results.md,
    # issue 14); a slower machine shows the GAN fewer images instead of taking longer.
    c.gan = dataclasses.replace(c.gan, fmap_base=256, fmap_max=64, lod_training_kimg=20.0, lod_transition_kimg=20.0,
                                minibatch_base=16, minibatch_per_resolution={"4": 64, "8": 32}, total_kimg=1000.0,
                                loss="logistic_r1", r1_gamma=0.1, r1_every=4, learning_rate=0.002, max_minutes=40.0,
                                checkpoint_every=500, grid_every=1000, quality_samples=400)
    c.segmenter = dataclasses.replace(c.segmenter, width=16, batch_size=32, steps=2000, checkpoint_every=500,
                                      min_object_pixels=4)
    c.edits = dataclasses.replace(c.edits, steps=1000, cluster_pairs=3000, ranking_samples=500, success_pairs=200)
    return c


def demo() -> Config:
    """The README's main command: every step of the method on 2 cores in 15-20 minutes (32 px, 1-3 objects, small
    networks, short schedules). It shows the whole pipeline and its outputs; its numbers are not the paper's (use
    `cpu` for a reproduction)."""
    c = Config(name="demo")
    # Zoomed in (CLEVR: 38 degrees over [-3, 3]^2): a 32 px object covers 34 pixels (median) instead of 13, so
    # shape and material are visible. Chosen on val (docs/results.md, "Framing"): the segmenter describes 71% of
    # rendered val images (58% at CLEVR framing) and DaveNet reaches val R@10 29.8 (21.2).
    c.world = dataclasses.replace(c.world, image_size=32, min_objects=1, max_objects=3, min_object_pixels=4,
                                  supersample=2, fov_degrees=26.0, object_area=2.0)
    c.speech = dataclasses.replace(c.speech, rate_range=(190, 230), max_seconds=20.0)
    c.features = dataclasses.replace(c.features, max_frames=768)
    # 16000 GAN samples: at the 9-28% the segmenter describes, 1400-4500 pairs, so >= 140 test pairs
    c.data = dataclasses.replace(c.data, num_scenes=3000, gan_samples=16000, num_shards=4, shuffle_buffer=500,
                                 bucket_frames=128, semantic_pairs_per_family=100, semantic_voices_per_word=4,
                                 transfer_scenes=200, renderer_edit_scenes=500)
    c.model = dataclasses.replace(c.model, image_encoder="small", embedding_dim=256, image_width=0.5,
                                  audio_width=0.25, loss="mms")
    # Chosen on val (docs/results.md, "The demo's DaveNet"): paper 001's SGD + semi-hard recipe stays at chance
    # for 300 steps (val R@10 5.5 MISA, chance 5.0); AdamW + masked margin softmax reaches 16.2, and 600
    # length-bucketed steps 22.0 in the time 300 padded steps took. The Hard Neg stages add the hardest impostor to
    # that softmax: the hardest term alone collapsed hard_negatives from davenet's val R@10 26.5 to 8.0 (loss 2.000,
    # every score 0); with the mms term 25.5, with the sampled one 22.7 (docs/results.md).
    c.train = dataclasses.replace(c.train, batch_size=32, steps=600, lr_decay_every=450, checkpoint_every=200,
                                  log_every=25, eval_pairs=200, optimizer="adamw", learning_rate=1e-3,
                                  weight_decay=1e-4, hardest_lr_scale=0.1, hard_negative_loss="hardest_mms")
    c.gan = dataclasses.replace(c.gan, latent_dim=64, fmap_base=256, fmap_max=64, lod_training_kimg=4.0,
                                lod_transition_kimg=4.0, minibatch_base=16, minibatch_per_resolution={"4": 64, "8": 32},
                                total_kimg=64.0, checkpoint_every=200, grid_every=200, quality_samples=200)
    # width 16 x 1000 steps: every attribute of 80-97% of held-out objects right (width 8 x 300: 34-59%)
    c.segmenter = dataclasses.replace(c.segmenter, width=16, batch_size=32, steps=1000, checkpoint_every=250,
                                      min_object_pixels=4)
    # 200 edit steps per stage: what every measured demo ran (until 2026-12-03 training rounded the preset's 40 up
    # to one 200-step checkpoint chunk). random_edits lifts val R@10 (MISA) from davenet's 26.5 to 29.8, but a
    # DaveNet trained 1000 steps reached 29.0 in the sweep: more steps alone may explain that (docs/results.md).
    c.edits = dataclasses.replace(c.edits, steps=200, cluster_pairs=1000, ranking_samples=200, success_pairs=100)
    return c


def tiny() -> Config:
    """Seconds per stage, for tests: 32 px images, 1-3 objects, few frames. Every command runs on it as shipped,
    `--stage all` and the demo included: its segmenter trains 200 steps and describes at any confidence
    (min_confidence 0; a few-second segmenter is never 0.6-sure of a tiny GAN's blobs, and without descriptions
    Audio CLEVRGAN would have no pairs). It checks the plumbing, not what is learned."""
    c = Config(name="tiny")
    c.world = dataclasses.replace(c.world, image_size=32, min_objects=1, max_objects=3, min_object_pixels=2,
                                  supersample=2)
    c.speech = dataclasses.replace(c.speech, rate_range=(200, 240), max_seconds=20.0)
    c.features = dataclasses.replace(c.features, max_frames=512)
    c.data = dataclasses.replace(c.data, num_scenes=48, num_shards=2, shuffle_buffer=32, semantic_pairs_per_family=4,
                                 semantic_voices_per_word=1, transfer_scenes=8, renderer_edit_scenes=16)
    c.model = dataclasses.replace(c.model, image_encoder="small", embedding_dim=32, image_width=0.25,
                                  audio_width=0.125)
    c.train = dataclasses.replace(c.train, batch_size=8, steps=12, lr_decay_every=8, checkpoint_every=4,
                                  log_every=2, eval_pairs=16, summary_pairs=2)
    c.gan = dataclasses.replace(c.gan, latent_dim=16, fmap_base=128, fmap_max=32, lod_training_kimg=0.2,
                                lod_transition_kimg=0.2, minibatch_base=4, minibatch_per_resolution={},
                                total_kimg=1.6, checkpoint_every=50, grid_every=100, num_grid_images=4,
                                quality_samples=4)
    c.segmenter = dataclasses.replace(c.segmenter, width=8, batch_size=8, steps=200, checkpoint_every=50,
                                      min_object_pixels=4, min_confidence=0.0)
    c.edits = dataclasses.replace(c.edits, steps=4, num_clusters=4, cluster_pairs=32, ranking_samples=16,
                                  success_pairs=8, min_changed_fraction=0.01)
    return c


PRESETS: Dict[str, Callable[[], Config]] = {"tiny": tiny, "demo": demo, "cpu": cpu, "paper": paper}


def get_config(name: str, overrides: Sequence[str] = ()) -> Config:
    """Returns the named preset with `section.field=value` overrides applied (values parsed as JSON, else string)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown config preset {name!r}. Known presets: {sorted(PRESETS)}")
    config = PRESETS[name]()
    return apply_overrides(config, overrides)


def apply_overrides(config: Config, overrides: Sequence[str]) -> Config:
    values = config.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"A config override must look like section.field=value. Received: {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = values
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                known = sorted(k for k, v in node.items() if isinstance(v, dict))
                raise ValueError(f"Unknown config section {part!r} in override {item!r}. Known: {known}")
            node = node[part]
        if parts[-1] not in node:
            raise ValueError(f"Unknown config field {key!r} in override {item!r}. Known: {sorted(node)}")
        node[parts[-1]] = value
    return Config.from_dict(values)


def add_config_flags(parser, default: str = "tiny", workdir_flag: Optional[str] = None) -> None:
    """Adds --config and --set to an argparse parser; resolve with `config_from_args(args)`.

    With `workdir_flag` (the command's workdir option, e.g. "--workdir"), a command run on a workdir takes the
    config its stages saved there when --config is not given (`config_from_args(args, saved=...)`), so a
    follow-up command on a run cannot silently use another preset.
    """
    where = f"the config saved in {workdir_flag}, else {default}" if workdir_flag else default
    parser.add_argument("--config", default=None, choices=sorted(PRESETS), help=f"config preset (default: {where})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override one config field, e.g. --set world.image_size=64 (repeatable)")
    parser.set_defaults(default_config=default)
    if workdir_flag:
        parser.add_argument("--other_config", action="store_true",
                            help=f"use --config although {workdir_flag} was made with another preset")


def config_from_args(args, saved: Optional[Tuple[Config, str]] = None) -> Config:
    """The config a command runs with: --config's preset, else `saved` (the (config, path) a workdir holds:
    `tfvgs.workdir.saved_config`), else the command's default preset; --set overrides apply on top. A --config that
    differs from the saved preset is an error (before anything is written) unless --other_config is given."""
    if args.config is None:
        base = saved[0] if saved else get_config(getattr(args, "default_config", "tiny"))
        return apply_overrides(base, args.overrides)
    if saved and saved[0].name != args.config and not getattr(args, "other_config", False):
        workdir = os.path.dirname(os.path.dirname(saved[1]))
        raise ValueError(f"{workdir} was made with config {saved[0].name!r} ({saved[1]}), so --config "
                         f"{args.config} would mix two presets in one run. Drop --config to use the workdir's, use "
                         f"another workdir, or pass --other_config. Received: --config {args.config}")
    return get_config(args.config, args.overrides)


def config_to_flags(config: Config) -> List[str]:
    """`config` as --config/--set flags, so a command run with them sees exactly this config.

    The flags are the differences from a preset: the config's own when its name is one, else `paper` (the
    defaults), with `name` among them, so a renamed config (`--set name=mine`) is carried unchanged.
    """
    base = config.name if config.name in PRESETS else "paper"
    flags = ["--config", base]
    preset = get_config(base).to_dict()
    for section, values in config.to_dict().items():
        if isinstance(values, dict):
            flags += [f for key, value in values.items() if preset[section][key] != value
                      for f in ("--set", f"{section}.{key}={json.dumps(value)}")]
        elif preset[section] != values:       # top-level fields such as the seed and the name
            flags += ["--set", f"{section}={json.dumps(values)}"]
    return flags
