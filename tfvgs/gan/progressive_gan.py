"""Progressive GAN training (Karras et al. 2018) as a Keras model with a custom `train_step`.

Loss: WGAN-GP with PGGAN's drift term (`loss.py` of the official code): the critic minimises
`D(fake) - D(real) + lambda * (||grad D(mix)|| - 1)**2 + eps_drift * D(real)**2` with lambda = 10 and
eps_drift = 0.001, the generator minimises `-D(fake)`. `loss="logistic_r1"` is the alternative of StyleGAN
(Karras et al. 2019/2020, `loss.py` of stylegan2): the critic minimises `softplus(D(fake)) + softplus(-D(real))
+ gamma/2 * ||grad D(real)||**2`, the generator the non-saturating `softplus(-D(fake))`; the R1 term may be lazy
(every `r1_every` critic steps, scaled by `r1_every`), which saves its double backward on the other steps.
`n_critic` critic steps (each on its own slice of the real batch) per generator step, 1 as in PGGAN.
Adam(lr 0.001, beta1 0, beta2 0.99, eps 1e-8) for both networks, and an exponential moving average of the
generator weights (PGGAN's `Gs`, beta 0.999) used for sampling.

Progressive growing: `images_shown` (real images given to the critic, a checkpointed int64 variable) is the only
training-progress state; `GrowthSchedule` turns it into a level and a fade-in alpha. The level is a Python int that
selects which blocks the traced train step runs, so the trainer calls `sync_phase()` and one `fit` per phase:

    gan = ProgressiveGAN(generator, discriminator, schedule)
    while int(gan.images_shown.numpy()) < total_images:
        phase = gan.sync_phase()                   # level/alpha from images_shown; retrace + Adam reset on change
        steps = gan.steps_until_next_phase() or steps_per_log   # None once fully grown
        gan.fit(reals.batch(gan.real_batch_size()), steps_per_epoch=min(steps, steps_per_log), epochs=1)

Within a phase alpha is recomputed in the graph from `images_shown` at every step, so one graph serves a fade-in.
Reals may come at any power-of-two multiple of the phase resolution (e.g. always full size); `prepare_reals`
box-downscales them in the step.
"""
from __future__ import annotations

import math
from typing import Optional

import keras
import tensorflow as tf

from tfvgs.gan.growth_schedule import GrowthPhase, GrowthSchedule
from tfvgs.gan.progressive_discriminator import ProgressiveDiscriminator
from tfvgs.gan.progressive_generator import ProgressiveGenerator


def pggan_adam(name: Optional[str] = None, learning_rate: float = 0.001) -> keras.optimizers.Adam:
    """The optimizer of PGGAN: Adam(lr 0.001, beta1 0, beta2 0.99, epsilon 1e-8); `learning_rate` replaces the 0.001."""
    if not learning_rate > 0:
        raise ValueError(f"The GAN's learning rate must be > 0. Received: learning_rate={learning_rate!r}")
    return keras.optimizers.Adam(learning_rate=float(learning_rate), beta_1=0.0, beta_2=0.99, epsilon=1e-8,
                                 name=name)


@keras.saving.register_keras_serializable(package="tfvgs")
class ProgressiveGAN(keras.Model):
    """Holds G, D, their optimizers, the generator EMA and the growth state; `fit` trains one phase.

    Args:
        generator: a `ProgressiveGenerator`.
        discriminator: a `ProgressiveDiscriminator` with the same `max_resolution` and `num_channels`.
        schedule: a `GrowthSchedule` (or its config dict) with the same `max_resolution`.
        n_critic: critic steps per generator step; the real batch is split into this many equal slices.
        loss: "wgan_gp" (PGGAN) or "logistic_r1" (StyleGAN's non-saturating logistic loss with R1).
        gp_weight: lambda of the gradient penalty (wgan_gp).
        drift_weight: eps_drift, keeps critic scores of reals near zero (wgan_gp).
        r1_gamma: gamma of the R1 penalty on reals (logistic_r1).
        r1_every: apply R1 on every this many critic steps, weighted by it (logistic_r1; 1 = every step).
        ema_beta: generator weight smoothing for `generator_ema`; None disables the EMA copy.
        reset_optimizers_on_phase_change: zero the Adam state when a fade-in starts or ends (PGGAN default).
        g_optimizer, d_optimizer: optimizers; default `pggan_adam()`.
        seed: seed of the latent and mixing-factor draws in `train_step`.

    Metrics: `gp` is the loss's gradient penalty (WGAN-GP's on mixes, or R1's mean squared norm on reals, averaged
    over the steps that computed it), `wasserstein` the mean critic score gap D(real) - D(fake) under either loss.
    """

    LOSSES = ("wgan_gp", "logistic_r1")

    def __init__(self, generator: ProgressiveGenerator, discriminator: ProgressiveDiscriminator, schedule,
                 n_critic: int = 1, gp_weight: float = 10.0, drift_weight: float = 0.001,
                 loss: str = "wgan_gp", r1_gamma: float = 10.0, r1_every: int = 1,
                 ema_beta: Optional[float] = 0.999, reset_optimizers_on_phase_change: bool = True,
                 g_optimizer: Optional[keras.optimizers.Optimizer] = None,
                 d_optimizer: Optional[keras.optimizers.Optimizer] = None, seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(schedule, GrowthSchedule):
            schedule = GrowthSchedule.from_config(schedule)
        if not generator.max_resolution == discriminator.max_resolution == schedule.max_resolution:
            raise ValueError(f"Generator, discriminator and schedule must share max_resolution. Received: "
                             f"{generator.max_resolution}, {discriminator.max_resolution}, {schedule.max_resolution}")
        if generator.num_channels != discriminator.num_channels:
            raise ValueError(f"Generator and discriminator must share num_channels. Received: "
                             f"{generator.num_channels}, {discriminator.num_channels}")
        if int(n_critic) != n_critic or n_critic < 1:
            raise ValueError(f"`n_critic` must be a positive integer. Received: n_critic={n_critic!r}")
        if loss not in self.LOSSES:
            raise ValueError(f"`loss` must be one of {self.LOSSES}. Received: loss={loss!r}")
        if int(r1_every) != r1_every or r1_every < 1:
            raise ValueError(f"`r1_every` must be a positive integer. Received: r1_every={r1_every!r}")
        if r1_gamma < 0:
            raise ValueError(f"`r1_gamma` must be >= 0. Received: r1_gamma={r1_gamma!r}")
        if ema_beta is not None and not 0.0 <= ema_beta < 1.0:
            raise ValueError(f"`ema_beta` must be in [0, 1) or None. Received: ema_beta={ema_beta!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.schedule = schedule
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)
        self.drift_weight = float(drift_weight)
        self.loss_name = loss
        self.r1_gamma = float(r1_gamma)
        self.r1_every = int(r1_every)
        self.ema_beta = None if ema_beta is None else float(ema_beta)
        self.reset_optimizers_on_phase_change = bool(reset_optimizers_on_phase_change)
        self.seed = seed

        self.generator_ema = None
        if self.ema_beta is not None:
            config = dict(generator.get_config(), name=f"{generator.name}_ema")
            self.generator_ema = ProgressiveGenerator.from_config(config)
            self.generator_ema.set_weights(generator.get_weights())
            self.generator_ema.trainable = False

        self.images_shown = self.add_weight(name="images_shown", shape=(), dtype="int64", initializer="zeros",
                                            trainable=False)
        self.seed_generator = keras.random.SeedGenerator(seed, name="train_step_seed")
        self.rng_state = self.seed_generator.state   # an attribute so tf.train.Checkpoint resumes the random stream
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.gp_tracker = keras.metrics.Mean(name="gp")
        self.drift_tracker = keras.metrics.Mean(name="drift")
        self.wasserstein_tracker = keras.metrics.Mean(name="wasserstein")

        self.level = schedule.phase_at(0).level   # Python int: which blocks the traced train step runs
        self._synced_phase = None                 # (level, in_transition) of the last sync_phase()
        self.built = True
        self.compile(g_optimizer=g_optimizer or pggan_adam("g_adam"),
                     d_optimizer=d_optimizer or pggan_adam("d_adam"))

    # --- setup ------------------------------------------------------------------------------------------------
    def compile(self, g_optimizer: Optional[keras.optimizers.Optimizer] = None,
                d_optimizer: Optional[keras.optimizers.Optimizer] = None, **kwargs):
        """Sets (or keeps) the two optimizers; other kwargs (e.g. `jit_compile`) go to `keras.Model.compile`."""
        for key in ("optimizer", "loss", "metrics"):
            if kwargs.get(key) is not None:
                raise ValueError(f"ProgressiveGAN.compile takes g_optimizer/d_optimizer and defines its own loss and "
                                 f"metrics. Received: {key}={kwargs[key]!r}")
            kwargs.pop(key, None)
        if g_optimizer is not None:
            self.g_optimizer = g_optimizer
        if d_optimizer is not None:
            self.d_optimizer = d_optimizer
        # Built on every variable up front: each phase then updates just the subset it uses.
        if not self.g_optimizer.built:
            self.g_optimizer.build(self.generator.trainable_variables)
        if not self.d_optimizer.built:
            self.d_optimizer.build(self.discriminator.trainable_variables)
        # Keras' own `optimizer` slot gets the critic's, so fit() finds a built optimizer and builds nothing.
        super().compile(optimizer=self.d_optimizer, **kwargs)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.gp_tracker, self.drift_tracker,
                self.wasserstein_tracker]

    @property
    def sampling_generator(self) -> ProgressiveGenerator:
        """The EMA generator if there is one (PGGAN's Gs, smoother samples), else the trained generator."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    # --- growth state -----------------------------------------------------------------------------------------
    @property
    def phase(self) -> GrowthPhase:
        return self.schedule.phase_at(int(self.images_shown.numpy()))

    def sync_phase(self) -> GrowthPhase:
        """Moves the Python-side state to the phase `images_shown` is in. Call before each `fit`.

        Sets `level` (dropping the traced train function when it changes), assigns alpha to every network, and
        resets the optimizer state when the phase changed since the last sync (not on the first sync, so a
        restored checkpoint keeps its Adam moments).
        """
        phase = self.phase
        key = (phase.level, phase.in_transition)
        if self._synced_phase is not None and key != self._synced_phase and self.reset_optimizers_on_phase_change:
            self.reset_optimizer_state()
        if phase.level != self.level:
            self.level = phase.level
            self.train_function = None   # Keras retraces train_step with the new level on the next fit
        self._synced_phase = key
        self._assign_alpha(phase.alpha)
        return phase

    def real_batch_size(self) -> int:
        """Real images per `train_step` now: the phase's minibatch for each of the `n_critic` critic steps."""
        return self.n_critic * self.phase.minibatch_size

    def steps_until_next_phase(self, batch_size: Optional[int] = None) -> Optional[int]:
        """Train steps of `batch_size` reals (default `real_batch_size()`) before the phase changes; None if never."""
        shown = int(self.images_shown.numpy())
        boundary = self.schedule.next_boundary(shown)
        if boundary is None:
            return None
        batch_size = batch_size or self.real_batch_size()
        return max(1, math.ceil((boundary - shown) / batch_size))

    def reset_optimizer_state(self):
        """Zeroes Adam's moments and step counters of both optimizers (learning rates stay)."""
        for optimizer in (self.g_optimizer, self.d_optimizer):
            learning_rate = getattr(optimizer, "_learning_rate", None)
            for variable in optimizer.variables:
                if variable is not learning_rate:
                    variable.assign(keras.ops.zeros(variable.shape, variable.dtype))

    def _networks(self):
        return [net for net in (self.generator, self.discriminator, self.generator_ema) if net is not None]

    def _assign_alpha(self, alpha):
        for net in self._networks():
            net.alpha.assign(alpha)

    def _alpha_tensor(self, level: int):
        """The schedule's alpha ramp for `level` from the current `images_shown`, as a float32 tensor."""
        if level <= self.schedule.base_level or self.schedule.transition_images == 0:
            return tf.constant(1.0)
        shown = tf.cast(self.images_shown.value, tf.float64)
        ramp = (shown - self.schedule.transition_start(level)) / self.schedule.transition_images
        return tf.cast(tf.clip_by_value(ramp, 0.0, 1.0), tf.float32)

    # --- data -------------------------------------------------------------------------------------------------
    def prepare_reals(self, images, level: int, alpha):
        """Real images -> the critic's input at `level`: [-1, 1] floats, box-downscaled, faded like the fakes.

        Accepts uint8 [0, 255] or float [-1, 1] images at the phase resolution or any power-of-two multiple of it.
        During a fade-in reals are blended with their 2x down-and-up-sampled version by the same alpha
        (PGGAN `process_reals`), so the critic cannot tell fakes by the missing detail of the half-faded block.
        """
        images = keras.ops.convert_to_tensor(images)
        if "int" in keras.backend.standardize_dtype(images.dtype):
            images = keras.ops.cast(images, "float32") / 127.5 - 1.0
        images = keras.ops.cast(images, "float32")
        resolution = self.schedule.resolution_of(level)
        shape = tuple(images.shape)
        if (len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] != self.generator.num_channels
                or shape[1] % resolution or (shape[1] // resolution) & (shape[1] // resolution - 1)):
            raise ValueError(f"Real images must be [batch, R, R, {self.generator.num_channels}] with R = {resolution} "
                             f"times a power of two. Received: {shape}")
        factor = shape[1] // resolution
        if factor > 1:
            images = keras.ops.average_pool(images, pool_size=factor, strides=factor, padding="valid")
        if level > 0:
            coarse = keras.ops.average_pool(images, pool_size=2, strides=2, padding="valid")
            coarse = keras.ops.repeat(keras.ops.repeat(coarse, 2, axis=1), 2, axis=2)
            images = (1.0 - alpha) * coarse + alpha * images
        return images

    # --- training ---------------------------------------------------------------------------------------------
    def _latents(self, batch_size):
        return keras.random.normal((batch_size, self.generator.latent_dim), seed=self.seed_generator)

    @staticmethod
    def _apply(optimizer, tape, loss, variables):
        grads = tape.gradient(loss, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]   # blocks unused at this level
        optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        return [v for _, v in pairs]

    def _critic_step(self, reals, level: int, alpha):
        """One critic update; returns (loss, penalty, penalty weight 0/1 for the metric, drift, score gap)."""
        if self.loss_name == "logistic_r1":
            return self._logistic_r1_critic_step(reals, level, alpha)
        batch_size = tf.shape(reals)[0]
        fakes = self.generator(self._latents(batch_size), level=level, alpha=alpha)
        mix = keras.random.uniform((batch_size, 1, 1, 1), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            real_scores = self.discriminator(reals, level=level, alpha=alpha)[:, 0]
            fake_scores = self.discriminator(fakes, level=level, alpha=alpha)[:, 0]
            mixed = reals + (fakes - reals) * mix
            with tf.GradientTape() as penalty_tape:
                penalty_tape.watch(mixed)
                mixed_score_sum = tf.reduce_sum(self.discriminator(mixed, level=level, alpha=alpha))
            mixed_grads = penalty_tape.gradient(mixed_score_sum, mixed)
            norms = tf.sqrt(tf.reduce_sum(tf.square(mixed_grads), axis=[1, 2, 3]))
            penalty = tf.square(norms - 1.0)
            drift = tf.square(real_scores)
            loss = tf.reduce_mean(fake_scores - real_scores + self.gp_weight * penalty + self.drift_weight * drift)
        self._apply(self.d_optimizer, tape, loss, self.discriminator.trainable_variables)
        return (loss, tf.reduce_mean(penalty), tf.constant(1.0), tf.reduce_mean(drift),
                tf.reduce_mean(real_scores - fake_scores))

    def _r1_penalty(self, reals, level: int, alpha):
        """Mean over the batch of ||grad_x D(x)||^2 at the reals (Mescheder et al. 2018), differentiable in D."""
        with tf.GradientTape() as r1_tape:
            r1_tape.watch(reals)
            real_score_sum = tf.reduce_sum(self.discriminator(reals, level=level, alpha=alpha))
        real_grads = r1_tape.gradient(real_score_sum, reals)
        return tf.reduce_mean(tf.reduce_sum(tf.square(real_grads), axis=[1, 2, 3]))

    def _logistic_r1_critic_step(self, reals, level: int, alpha):
        batch_size = tf.shape(reals)[0]
        fakes = self.generator(self._latents(batch_size), level=level, alpha=alpha)
        # Lazy R1: Adam's step counter picks the steps that regularise (it restarts with the optimizer state).
        regularise = tf.equal(self.d_optimizer.iterations % self.r1_every, 0)
        with tf.GradientTape() as tape:
            real_scores = self.discriminator(reals, level=level, alpha=alpha)[:, 0]
            fake_scores = self.discriminator(fakes, level=level, alpha=alpha)[:, 0]
            loss = tf.reduce_mean(tf.nn.softplus(fake_scores) + tf.nn.softplus(-real_scores))
            if self.r1_every == 1:
                penalty = self._r1_penalty(reals, level, alpha)
            else:
                penalty = tf.cond(regularise, lambda: self._r1_penalty(reals, level, alpha),
                                  lambda: tf.constant(0.0))
            loss = loss + (0.5 * self.r1_gamma * self.r1_every) * penalty
        self._apply(self.d_optimizer, tape, loss, self.discriminator.trainable_variables)
        return (loss, penalty, tf.cast(regularise, tf.float32), tf.constant(0.0),
                tf.reduce_mean(real_scores - fake_scores))

    def _generator_step(self, batch_size, level: int, alpha):
        with tf.GradientTape() as tape:
            fakes = self.generator(self._latents(batch_size), level=level, alpha=alpha)
            fake_scores = self.discriminator(fakes, level=level, alpha=alpha)
            if self.loss_name == "logistic_r1":
                loss = tf.reduce_mean(tf.nn.softplus(-fake_scores))   # non-saturating
            else:
                loss = -tf.reduce_mean(fake_scores)
        updated = self._apply(self.g_optimizer, tape, loss, self.generator.trainable_variables)
        if self.generator_ema is not None:
            # Only variables used at this level change, and the EMA of an unchanged variable is itself.
            # Both generators come from one config, so their weights pair up in order.
            ema_of = {id(v): e for v, e in zip(self.generator.weights, self.generator_ema.weights)}
            for variable in updated:
                average = ema_of[id(variable)]
                average.assign(variable + self.ema_beta * (average - variable))
        return loss

    def train_step(self, data):
        """One generator step after `n_critic` critic steps on a batch of real images at the current level."""
        reals = data[0] if isinstance(data, (tuple, list)) else data
        level = self.level
        alpha = self._alpha_tensor(level)
        self._assign_alpha(alpha)
        reals = self.prepare_reals(reals, level, alpha)
        static_batch = reals.shape[0]
        if static_batch is not None and static_batch % self.n_critic:
            raise ValueError(f"The real batch must split evenly into n_critic={self.n_critic} critic steps. "
                             f"Received batch size: {static_batch}")
        chunks = tf.split(reals, self.n_critic, axis=0) if self.n_critic > 1 else [reals]
        for chunk in chunks:
            d_loss, penalty, penalty_weight, drift, wasserstein = self._critic_step(chunk, level, alpha)
            self.d_loss_tracker.update_state(d_loss)
            self.gp_tracker.update_state(penalty, sample_weight=penalty_weight)
            self.drift_tracker.update_state(drift)
            self.wasserstein_tracker.update_state(wasserstein)
        g_loss = self._generator_step(tf.shape(chunks[0])[0], level, alpha)
        self.g_loss_tracker.update_state(g_loss)
        self.images_shown.assign_add(tf.cast(tf.shape(reals)[0], tf.int64))
        logs = {metric.name: metric.result() for metric in self.metrics}
        logs["alpha"] = alpha
        return logs

    # --- inference --------------------------------------------------------------------------------------------
    def call(self, z, training=None):
        """Samples of the sampling generator at the current level and alpha."""
        return self.sampling_generator(z, level=self.level)

    def get_config(self):
        config = super().get_config()
        config.update({
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "schedule": self.schedule.get_config(), "n_critic": self.n_critic, "gp_weight": self.gp_weight,
            "drift_weight": self.drift_weight, "loss": self.loss_name, "r1_gamma": self.r1_gamma,
            "r1_every": self.r1_every, "ema_beta": self.ema_beta,
            "reset_optimizers_on_phase_change": self.reset_optimizers_on_phase_change, "seed": self.seed})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)
