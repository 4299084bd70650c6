"""The `gan` stage: trains the progressive GAN that draws the scenes (paper 000 sec. 4; Karras et al. 2018).

    python -m tfvgs.train --stage gan --config cpu --data_dir SCENES --workdir W

The networks grow, so a `Stage` (one `fit` over a fixed model) does not fit: this `Step` runs one `fit` per
phase segment - a stretch of steps with one level and one fade-in state (`ProgressiveGAN.sync_phase`), cut at
`gan.checkpoint_every` steps - and the dataset is rebuilt for every segment at the phase's minibatch size.

Everything training progress depends on is checkpointed (`tf.train.Checkpoint(gan=..., step=...)`: both networks,
the EMA generator, both Adam states, `images_shown`, the train-step random stream) and the real images are a seeded
stream indexed by `images_shown` (`reals_dataset`), so a run killed at any moment and started again with the same
command continues from its last checkpoint with the same growth phase, fade-in alpha, data order and random draws.

`gan.max_minutes` > 0 is a wall-clock budget summed over resumes (`checkpoints/training_time.json`): training stops
at the first segment boundary after it, and the generator is saved as it stands.

Writes `<workdir>/gan/`: `checkpoints/`, `tensorboard/` (loss terms, alpha, resolution, images shown, img/s, fixed-z
sample grids), `generator.keras` (the EMA generator; load with `tfvgs.gan_io.load_generator`), `generator.json`,
and `quality/` (a `tfvgs.evaluation.gan_quality` report after every growth phase, with `history.jsonl` and
`history.png`, when `<workdir>/segmenter/model.keras` exists and `gan.quality_samples` > 0; also every
`gan.quality_every_kimg` inside a phase when that is > 0).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Callable, Dict, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfvgs import atomic_files, data, gan_io, schema, training, workdir as layout
from tfvgs.evaluation import gan_quality
from tfvgs.config import GanConfig
from tfvgs.gan import (GrowthPhase, GrowthSchedule, ProgressiveDiscriminator, ProgressiveGAN, ProgressiveGenerator,
                       pggan_adam)
from tfvgs.stages.step import Step

LOSS_NAMES = ("d_loss", "g_loss", "gp", "drift", "wasserstein")


def build_schedule(config) -> GrowthSchedule:
    g = config.gan
    return GrowthSchedule(config.world.image_size, lod_training_kimg=g.lod_training_kimg,
                          lod_transition_kimg=g.lod_transition_kimg, minibatch_base=g.minibatch_base,
                          minibatch_per_resolution={int(k): v for k, v in g.minibatch_per_resolution.items()})


def build_gan(config) -> ProgressiveGAN:
    """The configured ProgressiveGAN (networks for `world.image_size`, optimizers built), seeded by `config.seed`."""
    g = config.gan
    keras.utils.set_random_seed(config.seed)
    generator = ProgressiveGenerator(latent_dim=g.latent_dim, max_resolution=config.world.image_size,
                                     fmap_base=g.fmap_base, fmap_max=g.fmap_max, name="generator")
    if g.discriminator_fmap_base < 0:
        raise ValueError(f"`gan.discriminator_fmap_base` must be >= 0 (0: gan.fmap_base). "
                         f"Received: {g.discriminator_fmap_base!r}")
    discriminator = ProgressiveDiscriminator(max_resolution=config.world.image_size,
                                             fmap_base=g.discriminator_fmap_base or g.fmap_base,
                                             fmap_max=g.fmap_max, mbstd_group_size=g.mbstd_group_size,
                                             name="discriminator")
    return ProgressiveGAN(generator, discriminator, build_schedule(config), n_critic=g.n_critic,
                          gp_weight=g.gp_weight, drift_weight=g.drift_weight, loss=g.loss,
                          r1_gamma=g.r1_gamma, r1_every=g.r1_every, ema_beta=g.ema_beta, seed=config.seed,
                          g_optimizer=pggan_adam("g_adam", g.learning_rate),
                          d_optimizer=pggan_adam("d_adam", g.learning_rate))


def describe(phase: GrowthPhase, with_alpha: bool = True) -> str:
    """Without alpha for a finished phase: its snapshot's alpha is that of some step inside it, while quality
    reports measure its level fully faded in (alpha 1)."""
    state = "fade-in" if phase.in_transition else "stable"
    if with_alpha and phase.in_transition:
        state += f" alpha {phase.alpha:.2f}"
    return f"{phase.resolution}x{phase.resolution} {state}, minibatch {phase.minibatch_size}"


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class GanProgress(keras.callbacks.Callback):
    """Counts steps, stops on a non-finite loss, logs scalars and console lines every `log_every` steps and
    fixed-z sample grids every `grid_every` steps (the stage also calls `write_grid` at phase changes)."""

    def __init__(self, stage: "GanStage", writer, step: int, total_images: int):
        super().__init__()
        self.stage, self.writer, self.step, self.total_images = stage, writer, int(step), int(total_images)
        g = stage.config.gan
        self.log_every = max(1, int(stage.config.train.log_every))
        self.grid_every = max(1, int(g.grid_every))
        self.grid_latents = gan_io.latents_for_seeds(range(g.num_grid_images), g.latent_dim)
        self.non_finite: Optional[Dict[str, float]] = None
        self.last_grid_step = -1
        # (level, in_transition) -> [images, seconds] measured in that phase (tracing excluded): the ETA and the
        # run's mean throughput both come from these totals
        self.phase_rates: Dict[tuple, list] = {}
        self.last_phase = None             # the phase of the latest measured interval
        self._clock = None                 # (time, images_shown) where the current interval started

    # --- measurements ---------------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._clock = None                 # the first batch of a fit traces and fills buffers: not timed

    def _images_shown(self) -> int:
        return int(self.model.images_shown.numpy())

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        logs = logs or {}
        losses = {name: float(logs[name]) for name in LOSS_NAMES if name in logs}
        if not all(math.isfinite(v) for v in losses.values()):
            self.non_finite = losses
            self.model.stop_training = True
            return
        if self._clock is None:
            self._clock = (time.perf_counter(), self._images_shown())
        if self.step % self.log_every == 0:
            self._log(logs)
        if self.step % self.grid_every == 0:
            self.write_grid()

    def images_per_second(self) -> float:
        """Mean throughput of the run so far (real images shown to the critic per second, tracing excluded)."""
        images = sum(n for n, _ in self.phase_rates.values())
        seconds = sum(s for _, s in self.phase_rates.values())
        return images / seconds if seconds > 0 else float("nan")

    def _interval_rate(self) -> float:
        now, shown = time.perf_counter(), self._images_shown()
        start_time, start_shown = self._clock
        self._clock = (now, shown)
        if shown > start_shown and now > start_time:
            phase = self.model.schedule.phase_at(start_shown)
            measured = self.phase_rates.setdefault((phase.level, phase.in_transition), [0, 0.0])
            measured[0] += shown - start_shown
            measured[1] += now - start_time
            self.last_phase = phase
            return (shown - start_shown) / (now - start_time)
        return float("nan")

    def eta_seconds(self, shown: int) -> float:
        """Seconds left for the whole stage, every phase still to come included.

        A phase already measured counts at its own measured rate. A phase not reached yet is estimated from the
        latest one's seconds per step, scaled by the number of resolution blocks the networks run (level + 1) and
        divided by its minibatch size: on the demo GAN a step took 18, 21, 22 ms per block at 4, 8 and 32 px, where
        one mean rate of the run so far had made the estimate grow from 1 to 4.6 min as the images got larger."""
        if self.last_phase is None:
            return float("nan")
        last = self.last_phase
        images, seconds = self.phase_rates[(last.level, last.in_transition)]
        seconds_per_block_step = seconds / (images / last.minibatch_size) / (last.level + 1)
        total = 0.0
        for phase, count in self.model.schedule.phases_between(shown, self.total_images):
            measured = self.phase_rates.get((phase.level, phase.in_transition))
            if measured:
                total += count * measured[1] / measured[0]
            else:
                total += count / phase.minibatch_size * seconds_per_block_step * (phase.level + 1)
        return total

    # Seconds left of `gan.max_minutes` (set by the stage when there is a budget): the stage ends at whichever of
    # the schedule and the budget comes first, so the console's ETA is the smaller of the two.
    budget_left: Optional[Callable[[], float]] = None

    def stage_eta_seconds(self, shown: int) -> float:
        eta = self.eta_seconds(shown)
        if self.budget_left is None:
            return eta
        left = max(0.0, float(self.budget_left()))
        return left if math.isnan(eta) else min(eta, left)

    # --- outputs ----------------------------------------------------------------------------------------------
    def _log(self, logs):
        gan = self.model
        shown = self._images_shown()
        phase = gan.schedule.phase_at(shown)
        rate = self._interval_rate()
        values = {name: float(logs[name]) for name in (*LOSS_NAMES, "alpha") if name in logs}
        with self.writer.as_default(step=self.step):
            for name, value in values.items():
                tf.summary.scalar(f"train/{name}", value)
            tf.summary.scalar("progress/resolution", phase.resolution)
            tf.summary.scalar("progress/kimg", shown / 1000.0)
            tf.summary.scalar("progress/minibatch", phase.minibatch_size)
            if math.isfinite(rate):
                tf.summary.scalar("progress/images_per_second", rate)
        self.writer.flush()
        eta = self.stage_eta_seconds(shown)
        print(f"[gan] step {self.step} kimg {shown / 1000:.2f}/{self.total_images / 1000:g} {describe(phase)} "
              f"d_loss {values.get('d_loss', float('nan')):.3f} g_loss {values.get('g_loss', float('nan')):.3f} "
              f"W {values.get('wasserstein', float('nan')):.3f} gp {values.get('gp', float('nan')):.3f} "
              f"img/s {rate:.1f} stage eta {_format_seconds(eta)}", flush=True)

    def write_grid(self):
        """Samples of the EMA generator for the fixed latents at the current level and alpha, upscaled to full
        size, as one grid image."""
        if self.last_grid_step == self.step:
            return
        self.last_grid_step = self.step
        gan = self.model
        generator = gan.sampling_generator
        images = generator(self.grid_latents, level=gan.level)
        images = generator.to_uint8(generator.upscale_to_max_resolution(images)).numpy()
        from tfvgs.draw import image_grid
        resolution = gan.schedule.resolution_of(gan.level)
        with self.writer.as_default(step=self.step):
            tf.summary.image("samples/fixed_z", image_grid(images)[None],
                             description=f"EMA generator at {resolution}x{resolution}, alpha "
                                         f"{float(generator.alpha.numpy()):.2f}, step {self.step}, "
                                         f"{self._images_shown()} images shown")
        self.writer.flush()


class PhaseQuality:
    """The quality report at the end of each growth phase: the EMA generator at the finished phase's level, measured
    with the segmenter against rendered images of `gan.quality_split`
    (`tfvgs.evaluation.gan_quality.quality_report`)."""

    def __init__(self, stage: "GanStage", writer):
        self.stage, self.writer = stage, writer
        g = stage.config.gan
        self.out_dir = os.path.join(stage.stage_dir, "quality")
        self.segmenter = layout.load_model(stage.segmenter_path)
        self.reals = stage.images(g.quality_split, g.quality_samples)
        self.reported = {int(r.get("images_shown", -1)) for r in gan_quality.read_history(self.out_dir)}

    def __call__(self, gan: ProgressiveGAN, finished: GrowthPhase, step: int, during: bool = False) -> None:
        """Reports on `finished` at alpha 1, or with `during` on the phase training is in, at its current alpha."""
        shown = int(gan.images_shown.numpy())
        if shown in self.reported:   # a resumed run passing the same boundary again
            return
        start = time.time()
        # sync_phase has already set alpha for the next phase (~0 at the start of a fade-in); the finished phase's
        # level is measured fully faded in, then alpha is put back
        alpha = gan.sampling_generator.alpha
        saved_alpha = alpha.numpy()
        measured_alpha = float(saved_alpha) if during else 1.0
        alpha.assign(measured_alpha)
        try:
            report = gan_quality.quality_report(
                gan.sampling_generator, self.segmenter, self.reals, self.stage.config.gan.quality_samples,
                self.stage.config, seed=0, level=finished.level,
                info={"images_shown": shown, "step": int(step), "level": finished.level,
                      "resolution": finished.resolution, "phase": describe(finished, with_alpha=during),
                      "alpha": measured_alpha, "during_phase": bool(during)})
        finally:
            alpha.assign(saved_alpha)
        gan_quality.write_report(report, self.out_dir)
        self.reported.add(shown)
        with self.writer.as_default(step=step):
            for key in ("fid", "kid", "well_formed_fraction"):
                tf.summary.scalar(f"quality/{key}", report[key])
            for prefix, attributes in (("", report["attributes"]), ("kept_", report["kept"]["attributes"])):
                for family, value in attributes["total_variation"].items():
                    if value is not None:
                        tf.summary.scalar(f"quality/{prefix}attribute_tv_{family}", value)
        self.writer.flush()
        print(f"[gan] quality {'during' if during else 'after'} {describe(finished, with_alpha=during)} ({shown} "
              f"images, measured at alpha {measured_alpha:g}): "
              f"FID {report['fid']:.2f}, KID "
              f"{report['kid']:.4f}, well-formed {report['well_formed_fraction']:.1%} (rendered "
              f"{report['real_well_formed_fraction']:.1%}) [{time.time() - start:.0f} s] -> {self.out_dir}",
              flush=True)


class GanStage(Step):
    """Trains `ProgressiveGAN` on the train split of `data_dir` (scene or spoken-pair TFRecords) for
    `gan.total_kimg` thousand real images; see the module docstring."""

    name = "gan"
    multi_worker_ok = False   # one device: see __init__
    data_kinds = ("scenes", "pairs")
    data_splits = ("train",)
    # Everything that shapes the GAN, its data and its schedule must match when resuming; the length of the run
    # (total_kimg) and what is logged along the way may change.
    RESUME_INVARIANTS = ("seed", "world", "data", *(
        f"gan.{field.name}" for field in dataclasses.fields(GanConfig)
        if field.name not in ("total_kimg", "checkpoint_every", "grid_every", "num_grid_images", "quality_samples",
                              "quality_split", "quality_every_kimg", "max_minutes")))
    clock = staticmethod(time.monotonic)   # seconds; tests replace it to run the time budget deterministically

    def __init__(self, config, workdir: str, data_dir: str, strategy: Optional[tf.distribute.Strategy] = None):
        super().__init__(config, workdir, data_dir, strategy)
        if self.strategy.num_replicas_in_sync > 1:
            # ProgressiveGAN's train step updates images_shown, the EMA and its trackers per replica; it has not
            # been written for cross-replica aggregation, so the GAN trains on one device.
            print(f"[gan] {self.strategy.num_replicas_in_sync} replicas available; the gan stage trains on one "
                  f"device", flush=True)
            self.strategy = tf.distribute.get_strategy()
        self._num_train_images: Optional[int] = None

    @property
    def model_path(self) -> str:
        return os.path.join(self.stage_dir, gan_io.GENERATOR_FILENAME)

    # --- data -------------------------------------------------------------------------------------------------
    @property
    def num_train_images(self) -> int:
        if self._num_train_images is None:
            self._num_train_images = data.count_records(data.list_shards(self.data_dir, "train"))
            if self._num_train_images == 0:
                raise ValueError(f"The train split of data_dir {self.data_dir!r} has no records.")
        return self._num_train_images

    @property
    def segmenter_path(self) -> str:
        return layout.model_path(self.workdir, "segmenter")

    def images(self, split: str, count: int) -> np.ndarray:
        """The first `count` images of `split` (uint8 [N, S, S, 3]) in file order, for quality reports."""
        size = self.config.world.image_size
        feature = {schema.IMAGE_PNG: schema.SCENE_FEATURES[schema.IMAGE_PNG]}
        ds = tf.data.TFRecordDataset(data.list_shards(self.data_dir, split)).take(int(count)).map(
            lambda r: tf.ensure_shape(tf.io.decode_png(tf.io.parse_single_example(r, feature)[schema.IMAGE_PNG],
                                                       channels=3), [size, size, 3]))
        images = np.stack([image.numpy() for image in ds]) if count > 0 else np.zeros([0, size, size, 3], np.uint8)
        if len(images) < 2:
            raise ValueError(f"A GAN quality report needs >= 2 images in split {split!r} of data_dir "
                             f"{self.data_dir!r}. Received: {len(images)} (set gan.quality_samples=0 to skip)")
        return images

    def reals_dataset(self, start_image: int, batch_size: int) -> tf.data.Dataset:
        """Endless batches of real images (uint8 [B, S, S, 3]), starting at image `start_image` of the stream.

        The stream is epoch after epoch of the train split, each epoch shuffled with its own seed (config.seed,
        epoch), so image `i` of the stream is fixed whatever the batch sizes before it: resuming at
        `images_shown` skips at most one epoch of undecoded records, never re-reads or decodes what was consumed.
        Only the image is decoded, so scene and spoken-pair TFRecords both work.
        """
        if int(start_image) < 0 or int(batch_size) < 1:
            raise ValueError(f"`start_image` must be >= 0 and `batch_size` >= 1. Received: {start_image}, "
                             f"{batch_size}")
        files = data.list_shards(self.data_dir, "train")
        first_epoch, offset = divmod(int(start_image), self.num_train_images)
        d = self.config.data
        size = self.config.world.image_size
        records = tf.data.TFRecordDataset(files, num_parallel_reads=min(len(files), d.reader_parallelism))
        base_seed = self.config.seed * 1_000_003

        def epoch(index):
            # Traced in graph mode, so this sets the seed of this function's graph only: the order then depends on
            # (config.seed, epoch) alone, not on the process-wide seed (whose value 0 also trips TF's seed check).
            tf.random.set_seed(1)
            return records.shuffle(d.shuffle_buffer, seed=base_seed + index)   # each epoch is iterated once

        def decode(serialized):
            parsed = tf.io.parse_single_example(serialized, {schema.IMAGE_PNG: schema.SCENE_FEATURES[schema.IMAGE_PNG]})
            return tf.ensure_shape(tf.io.decode_png(parsed[schema.IMAGE_PNG], channels=3), [size, size, 3])

        ds = tf.data.Dataset.range(first_epoch, 2 ** 62).flat_map(epoch).skip(offset)
        ds = ds.map(decode, num_parallel_calls=d.reader_parallelism, deterministic=True)
        ds = ds.batch(int(batch_size), drop_remainder=True).prefetch(d.prefetch)
        return ds.with_options(data.dataset_options(self.config))

    # --- model ------------------------------------------------------------------------------------------------
    def build_model(self) -> ProgressiveGAN:
        return build_gan(self.config)

    def restore(self) -> Tuple[ProgressiveGAN, tf.train.CheckpointManager, tf.Variable]:
        """Builds the GAN and restores the latest checkpoint of this stage, if any. Returns (gan, manager, step);
        after it `gan.phase` is where training stands."""
        with self.strategy.scope():
            gan = self.build_model()
            step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        checkpoint = tf.train.Checkpoint(gan=gan, step=step)
        manager = tf.train.CheckpointManager(checkpoint, self.checkpoint_dir,
                                             max_to_keep=self.config.train.keep_checkpoints)
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
            print(f"[gan] resumed from {manager.latest_checkpoint} (step {int(step.numpy())}, "
                  f"{int(gan.images_shown.numpy())} images shown, {describe(gan.phase)})", flush=True)
        return gan, manager, step

    @staticmethod
    def _weights_finite(gan: ProgressiveGAN) -> bool:
        return all(bool(np.all(np.isfinite(v.numpy()))) for v in gan.generator.trainable_variables
                   + gan.discriminator.trainable_variables)

    # --- the driver -------------------------------------------------------------------------------------------
    def execute(self) -> Dict[str, float]:
        g = self.config.gan
        if g.quality_every_kimg < 0:
            raise ValueError(f"gan.quality_every_kimg must be >= 0 (0: reports after phases only). Received: "
                             f"{g.quality_every_kimg!r}")
        if g.max_minutes < 0:
            raise ValueError(f"gan.max_minutes must be >= 0 (0: no time budget). Received: {g.max_minutes!r}")
        started = self.clock()
        total_images = int(round(g.total_kimg * 1000))
        checkpoint_every = max(1, int(g.checkpoint_every))
        gan, manager, step_var = self.restore()
        trained_before = self.trained_seconds() if manager.latest_checkpoint else 0.0
        schedule = gan.schedule
        if total_images < schedule.images_until_full_resolution():
            print(f"[gan] warning: total_kimg {g.total_kimg:g} ends before {schedule.max_resolution} px is fully "
                  f"faded in ({schedule.images_until_full_resolution() / 1000:g} kimg)", flush=True)
        writer = tf.summary.create_file_writer(self.tensorboard_dir)
        progress = GanProgress(self, writer, int(step_var.numpy()), total_images)
        progress.set_model(gan)
        quality = self._phase_quality(writer) if int(gan.images_shown.numpy()) < total_images else None

        def shown() -> int:
            return int(gan.images_shown.numpy())

        def seconds() -> float:
            return trained_before + self.clock() - started

        if g.max_minutes > 0:
            progress.budget_left = lambda: 60.0 * g.max_minutes - seconds()

        def out_of_time() -> bool:
            return progress.budget_left is not None and progress.budget_left() <= 0

        def last_good() -> str:
            return (f"the last good checkpoint is kept: {manager.latest_checkpoint}" if manager.latest_checkpoint
                    else f"no checkpoint had been written yet in {self.checkpoint_dir}")

        def save_checkpoint():
            if not self._weights_finite(gan):
                raise training.NonFiniteLossError(
                    f"non-finite weights at step {progress.step}; stopped without saving, {last_good()}.")
            step_var.assign(progress.step)
            manager.save(checkpoint_number=progress.step)
            record_time()

        def record_time():
            atomic_files.write_text(layout.training_time_path(self.workdir, self.name),
                                    json.dumps({"step": progress.step, "seconds": seconds()}))

        phase = gan.sync_phase()
        to_train = shown() < total_images and not out_of_time()
        if shown() >= total_images:
            print(f"[gan] already trained on {shown()} images (>= {total_images}); nothing to do", flush=True)
        elif not to_train:
            print(f"[gan] the time budget gan.max_minutes={g.max_minutes:g} is spent ({trained_before / 60:.1f} min "
                  f"trained); nothing to do at {shown()} images (raise it to train on)", flush=True)
        else:
            print(f"[gan] training from {shown()} to {total_images} images on {self.num_train_images} train scenes; "
                  f"{describe(phase)}; TensorBoard: tensorboard --logdir {self.tensorboard_dir}", flush=True)
            if progress.step == 0:
                self._write_reals(writer, gan)
            progress.write_grid()
        last_logs: Dict[str, float] = {}
        quality_every = int(round(g.quality_every_kimg * 1000)) if quality is not None else 0
        stopped_by_time = shown() < total_images and not to_train
        while to_train and shown() < total_images:
            if out_of_time():
                stopped_by_time = True
                print(f"[gan] time budget gan.max_minutes={g.max_minutes:g} spent after {seconds() / 60:.1f} min: "
                      f"stopped at {shown()} of {total_images} images ({describe(gan.phase)})", flush=True)
                if shown() < gan.schedule.images_until_full_resolution():
                    print(f"[gan] warning: stopped before {gan.schedule.max_resolution} px is fully faded in; the "
                          f"saved generator is partial (raise gan.max_minutes and rerun to go on)", flush=True)
                if not (manager.latest_checkpoint or "").endswith(f"-{progress.step}"):
                    save_checkpoint()       # so that a larger budget resumes exactly here
                else:
                    record_time()           # the budget is spent for a rerun with the same one
                break
            batch = gan.real_batch_size()
            before = shown()
            steps = min(gan.steps_until_next_phase() or math.inf,
                        checkpoint_every - progress.step % checkpoint_every,
                        math.ceil((total_images - before) / batch),
                        math.ceil(((before // quality_every + 1) * quality_every - before) / batch)
                        if quality_every > 0 else math.inf)
            history = gan.fit(self.reals_dataset(shown(), batch), steps_per_epoch=int(steps), epochs=1,
                              shuffle=False, verbose=0, callbacks=[progress])
            if progress.non_finite is not None:
                raise training.NonFiniteLossError(
                    f"non-finite loss at step {progress.step} ({describe(gan.phase)}): {progress.non_finite}. "
                    f"Stopped; {last_good()}. Check the data, or lower gan.learning_rate.")
            last_logs = {k: float(v[-1]) for k, v in history.history.items() if v}
            previous, phase = phase, gan.sync_phase()   # resets Adam at a phase change *before* a checkpoint
            if (phase.level, phase.in_transition) != (previous.level, previous.in_transition):
                print(f"[gan] step {progress.step}: {shown()} images shown, now {describe(phase)}", flush=True)
                progress.write_grid()
            if progress.step % checkpoint_every == 0 or shown() >= total_images:
                save_checkpoint()
            if quality is not None and (phase.level, phase.in_transition) != (previous.level, previous.in_transition):
                quality(gan, previous, progress.step)
            elif quality_every and shown() // quality_every > before // quality_every and shown() < total_images:
                quality(gan, phase, progress.step, during=True)
        if to_train:
            progress.write_grid()
            if quality is not None:
                quality(gan, gan.phase, progress.step)
        writer.close()
        minutes = seconds() / 60.0
        self.save(gan, training_minutes=minutes, stopped_by_time_budget=stopped_by_time)
        info = gan_io.read_info(self.workdir)
        rate = progress.images_per_second()
        print(f"[gan] {shown()} images shown ({describe(gan.phase)}); generator saved to {self.model_path}"
              + (f"; {rate:.1f} img/s this run" if math.isfinite(rate) else ""), flush=True)
        return {**last_logs, "images_shown": float(shown()), "step": float(progress.step),
                "training_minutes": minutes,
                "resolution": float(info.get("resolution", gan.phase.resolution)), "images_per_second": rate}

    def _phase_quality(self, writer) -> Optional[PhaseQuality]:
        if self.config.gan.quality_samples <= 0:
            return None
        if not tf.io.gfile.exists(self.segmenter_path):
            print(f"[gan] no segmenter at {self.segmenter_path}: no quality reports after the phases (train "
                  f"`--stage segmenter` first, or run `python -m tfvgs.evaluation.gan_quality` later)", flush=True)
            return None
        return PhaseQuality(self, writer)

    def _write_reals(self, writer, gan: ProgressiveGAN):
        """A grid of real training images once, to compare the samples with."""
        count = self.config.gan.num_grid_images
        images = next(iter(self.reals_dataset(0, count))).numpy()
        from tfvgs.draw import image_grid
        with writer.as_default(step=0):
            tf.summary.image("samples/reals", image_grid(images)[None], description="real training images")
        writer.flush()

    def trained_seconds(self) -> float:
        """Wall-clock seconds of training up to the latest checkpoint (0 for a new run or one written before the
        record existed)."""
        path = layout.training_time_path(self.workdir, self.name)
        if not tf.io.gfile.exists(path):
            return 0.0
        with tf.io.gfile.GFile(path) as f:
            return float(json.load(f)["seconds"])

    def save(self, gan: ProgressiveGAN, **info) -> None:
        phase = gan.phase
        shown = int(gan.images_shown.numpy())
        full = gan.schedule.images_until_full_resolution()
        gan_io.save_generator(gan.sampling_generator, self.stage_dir, {
            "images_shown": shown, "level": phase.level, "resolution": phase.resolution, "alpha": phase.alpha,
            "fully_grown": phase.level == gan.schedule.max_level and not phase.in_transition,
            "images_until_full_resolution": full, "ema": gan.generator_ema is not None, "config": self.config.name,
            **info})
