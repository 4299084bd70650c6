"""The one training loop every stage shares: Keras `fit` in checkpoint-sized chunks, resumable after a kill.

`fit` runs "epochs" of `checkpoint_every` steps over an endless, seeded dataset. After each chunk the model, optimizer
and step are saved with a `tf.train.CheckpointManager` (only when the loss is finite). On restart the latest
checkpoint is restored and the dataset is rebuilt to skip the batches already consumed, so a run killed with SIGKILL
and started again with the same command continues where its last checkpoint left off, on the same data order.
A non-finite loss stops training with `NonFiniteLossError`; the last good checkpoint is kept.
"""
from __future__ import annotations

import math
import sys
from typing import Callable, Dict, List, Optional, Tuple

import keras
import tensorflow as tf

from tfvgs import data


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


STRATEGIES = ("auto", "mirrored", "multi_worker", "default")


def wants_multi_worker(name: str) -> bool:
    """Whether `build_strategy(name)` builds a MultiWorkerMirroredStrategy (which waits for every worker of
    TF_CONFIG to start)."""
    from tfvgs import multi_worker
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}. Expected one of {STRATEGIES}")
    return name == "multi_worker" or (name == "auto" and multi_worker.cluster_from_env() is not None)


def build_strategy(name: str) -> tf.distribute.Strategy:
    """"auto": MultiWorkerMirroredStrategy when TF_CONFIG names several tasks (`tfvgs.multi_worker`), else
    MirroredStrategy over all GPUs when there are any, else the default (one-device) strategy;
    "mirrored": MirroredStrategy over all visible devices of the first kind found (GPUs, else CPUs);
    "multi_worker": MultiWorkerMirroredStrategy from TF_CONFIG; "default": no distribution."""
    from tfvgs import multi_worker
    if wants_multi_worker(name):
        return multi_worker.build()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "auto" and len(gpus) >= 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    return tf.distribute.get_strategy()


def build_optimizer(train_config, lr_scale: float = 1.0, on_plateau: bool = False) -> keras.optimizers.Optimizer:
    """SGD with momentum and step decay (paper 001 sec. 4.6) or AdamW, from the config; `lr_scale` multiplies the
    learning rate. `on_plateau`: a constant rate (a variable, saved with the optimizer) that `PlateauSchedule`
    lowers, instead of the step decay."""
    if on_plateau:
        schedule = train_config.learning_rate * float(lr_scale)
    else:
        schedule = keras.optimizers.schedules.ExponentialDecay(
            train_config.learning_rate * float(lr_scale), decay_steps=train_config.lr_decay_every,
            decay_rate=train_config.lr_decay_factor, staircase=True)
    if train_config.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=train_config.momentum,
                                    weight_decay=train_config.weight_decay or None)
    if train_config.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=train_config.weight_decay)
    raise ValueError(f"Unknown optimizer {train_config.optimizer!r}. Expected sgd or adamw")


def current_learning_rate(optimizer) -> float:
    lr = optimizer.learning_rate
    value = lr(optimizer.iterations) if callable(lr) else lr
    return float(tf.convert_to_tensor(value))   # under MultiWorkerMirroredStrategy a constant rate is a MirroredVariable


class PlateauState(tf.Module):
    """What `PlateauSchedule` has seen, as variables saved in the stage's checkpoint (a resumed run goes on where
    the killed one was): the best monitored value, evaluations since it, decays done, and whether it stopped."""

    def __init__(self):
        super().__init__(name="plateau_state")
        self.best = tf.Variable(-math.inf, dtype=tf.float64, trainable=False, name="best")
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="wait")
        self.decays = tf.Variable(0, dtype=tf.int64, trainable=False, name="decays")
        self.stopped = tf.Variable(False, trainable=False, name="stopped")


class PlateauSchedule(keras.callbacks.Callback):
    """Keras' ReduceLROnPlateau + EarlyStopping in one, with state that survives resume (theirs resets in every
    `fit` call, and a stage is one fit per checkpoint chunk and one process per resume). At every chunk's end reads
    `logs[monitor]` (higher is better; `RecallSummaries` puts val recall there): after `patience` evaluations
    without a gain of `min_delta` over the best, multiplies the learning rate by `factor`; once `decays` decays are
    done, the next such plateau stops training."""

    def __init__(self, state: PlateauState, monitor: str, patience: int, min_delta: float, factor: float,
                 decays: int):
        super().__init__()
        if patience < 1:
            raise ValueError(f"PlateauSchedule needs patience >= 1 (evaluations). Received: {patience}")
        self.state, self.monitor = state, monitor
        self.patience, self.min_delta, self.factor, self.decays = int(patience), float(min_delta), factor, decays

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            if self.model.stop_training:   # FiniteGuard stopped it: nothing was measured, fit_resumable raises
                return
            raise ValueError(f"PlateauSchedule monitors {self.monitor!r}, which no callback logged. Logged: "
                             f"{sorted(logs or {})}")
        s = self.state
        if float(value) > float(s.best.numpy()) + self.min_delta:
            s.best.assign(float(value))
            s.wait.assign(0)
            return
        s.wait.assign_add(1)
        if int(s.wait.numpy()) < self.patience:
            return
        s.wait.assign(0)
        step = int(self.model.optimizer.iterations.numpy())
        if int(s.decays.numpy()) >= self.decays:
            s.stopped.assign(True)
            self.model.stop_training = True
            print(f"  plateau: {self.monitor} {100 * float(value):.1f}, best {100 * float(s.best.numpy()):.1f}; "
                  f"stopped at step {step}", flush=True)
            return
        s.decays.assign_add(1)
        rate = self.model.optimizer.learning_rate
        rate.assign(float(rate.numpy()) * self.factor)
        print(f"  plateau: {self.monitor} {100 * float(value):.1f}, best {100 * float(s.best.numpy()):.1f}; "
              f"learning rate -> {float(rate.numpy()):.3g} at step {step}", flush=True)


class FiniteGuard(keras.callbacks.Callback):
    """Stops training on a non-finite loss, or at a chunk's end on non-finite weights (the loss is computed before
    the update, so the update itself may have broken them). First in the list, so that the callbacks after it see
    `stop_training` and measure nothing, and `CheckpointEveryChunk`, last, saves nothing."""

    def __init__(self):
        super().__init__()
        self.finite = True

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.finite = False
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.finite and not all(bool(tf.reduce_all(tf.math.is_finite(w))) for w in self.model.trainable_weights):
            self.finite = False
            self.model.stop_training = True


class CheckpointEveryChunk(keras.callbacks.Callback):
    """Saves model + optimizer at the end of each chunk ("epoch") while `guard` has seen only finite values; last in
    the list, so what the other callbacks record at the chunk's end (`PlateauState`) is in the checkpoint."""

    def __init__(self, manager: tf.train.CheckpointManager, guard: FiniteGuard,
                 after_save: Optional[Callable[[], None]] = None):
        super().__init__()
        self.manager, self.guard, self.after_save = manager, guard, after_save

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.finite:
            self.manager.save(checkpoint_number=int(self.model.optimizer.iterations.numpy()))
            if self.after_save is not None:
                self.after_save()


class ScalarSummaries(keras.callbacks.Callback):
    """Every `every` steps: all logged values and the learning rate to TensorBoard, keyed by optimizer step.
    Keras' logged values are running means since the start of the current checkpoint chunk."""

    def __init__(self, log_dir: str, every: int):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.every = max(1, int(every))

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every:
            return
        with self.writer.as_default(step=step):
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"train/{name}", float(value))
            tf.summary.scalar("train/learning_rate", current_learning_rate(self.model.optimizer))
        self.writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        with self.writer.as_default(step=step):
            for name, value in (logs or {}).items():
                if name.startswith("val_"):
                    tf.summary.scalar(f"val/{name[4:]}", float(value))
        self.writer.flush()


def _by_position(variables) -> Dict[str, tf.Variable]:
    return {f"v{i:05d}": v for i, v in enumerate(variables)}


def model_checkpoint(model: keras.Model, plateau: Optional[PlateauState] = None) -> tf.train.Checkpoint:
    """A checkpoint of every model variable (BatchNorm statistics included) and every optimizer variable, in Keras'
    own variable order (as .weights.h5 files), plus the plateau schedule's state when there is one.
    tf.train.Checkpoint(model=model) would miss Keras 3 layers held in Python lists, and variable paths change when
    a process builds the model twice ("dual_encoder_1/...")."""
    extra = {} if plateau is None else {"plateau": plateau}
    return tf.train.Checkpoint(model=_by_position(model.weights),
                               optimizer=_by_position(model.optimizer.variables), **extra)


def check_plateau_state(checkpoint_path: str, wants_plateau: bool) -> None:
    """Refuses, by name, a checkpoint of the other schedule: the plateau one has a variable learning rate (one more
    optimizer variable, so every later position shifts) and its `PlateauState`."""
    has_plateau = any(name.startswith("plateau/") for name, _ in tf.train.list_variables(checkpoint_path))
    if has_plateau != wants_plateau:
        raise ValueError(
            f"{checkpoint_path} was saved {'with' if has_plateau else 'without'} the plateau schedule, and this run "
            f"asks for train.plateau_patience {'0' if has_plateau else '> 0'}: resume with the setting it was "
            f"started with, or start the stage in a new workdir.")


def restore_or_initialize(model: keras.Model, checkpoint_dir: str, max_to_keep: int,
                          initialize: Optional[Callable[[], None]] = None,
                          write_dir: Optional[str] = None,
                          plateau: Optional[PlateauState] = None) -> tf.train.CheckpointManager:
    """Restores the latest checkpoint in `checkpoint_dir`; without one, calls `initialize` (e.g. warm start from
    the previous stage). The model and its optimizer must already be built. The manager saves to `write_dir`
    (default `checkpoint_dir`; a non-chief worker's temporary folder, `tfvgs.multi_worker`)."""
    checkpoint = model_checkpoint(model, plateau)
    manager = tf.train.CheckpointManager(checkpoint, write_dir or checkpoint_dir, max_to_keep=max_to_keep)
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest:
        check_plateau_state(latest, plateau is not None)
        checkpoint.restore(latest).assert_consumed()
        print(f"resumed from {latest} (step {int(model.optimizer.iterations.numpy())})", flush=True)
    elif initialize is not None:
        initialize()
    return manager


def console_verbosity(stream=None) -> int:
    """Keras `verbose` for the console: progress bars (1) on a terminal, one line per checkpoint chunk (2) when
    the output goes to a file or pipe, where every bar redraw would become a line of the log."""
    stream = sys.stdout if stream is None else stream
    return 1 if getattr(stream, "isatty", lambda: False)() else 2


def chunk_plan(done: int, steps: int, chunk: int) -> List[Tuple[int, int, int]]:
    """The fit calls that take a model from step `done` to exactly `steps`: (first epoch, epochs, steps per epoch).

    Checkpoints fall every `chunk` steps and at `steps` itself: a last chunk shorter than the rest is its own fit
    call (Keras' steps_per_epoch is fixed within a call), so 40 steps at checkpoint_every 200 train 40, not 200."""
    chunk = max(1, int(chunk))
    full = steps // chunk
    plan = []
    if done < full * chunk:
        plan.append((done // chunk, full, chunk))
    remainder = steps - full * chunk
    if remainder and done < steps:
        plan.append((0, 1, steps - max(done, full * chunk)))
    return plan


def fit_resumable(model: keras.Model, make_train_dataset: Callable[[int], tf.data.Dataset], *, steps: int,
                  checkpoint_every: int, manager: tf.train.CheckpointManager, callbacks: List = (),
                  validation_data: Optional[tf.data.Dataset] = None,
                  verbose: Optional[int] = None,
                  after_save: Optional[Callable[[], None]] = None,
                  stopped: Callable[[], bool] = lambda: False) -> Dict[str, float]:
    """Trains from wherever the restored optimizer step is to exactly `steps`, checkpointing every
    `checkpoint_every` steps and at the end (`chunk_plan`).

    `make_train_dataset(skip_batches)` must return the endless training dataset with its first `skip_batches`
    batches skipped. Returns the last logs; raises NonFiniteLossError on a NaN/inf loss, and a DataLossError naming
    the shard when a TFRecord shard read through `tfvgs.data` is corrupt. `after_save` runs after every checkpoint.
    `stopped()` true (a `PlateauSchedule` stopped it, in this process or before a resume) ends training early.
    Callbacks run before the checkpoint save at each chunk's end, so what they record is saved with it.
    """
    verbose = console_verbosity() if verbose is None else verbose
    done = int(model.optimizer.iterations.numpy())
    plan = chunk_plan(done, int(steps), checkpoint_every)
    if not plan or stopped():
        print(f"already trained {done} steps ({'stopped on a plateau' if stopped() else f'>= {steps}'}); nothing "
              f"to do", flush=True)
        return {}
    guard = FiniteGuard()
    saver = CheckpointEveryChunk(manager, guard, after_save)
    logs: Dict[str, float] = {}
    for initial_epoch, epochs, steps_per_epoch in plan:
        if stopped():
            break
        with data.corrupt_shards_named():  # tf.data's DataLossError names no file
            # shuffle=False: the dataset is shuffled (seeded, resumable) by tfvgs.data; Keras would warn it ignores it
            history = model.fit(make_train_dataset(int(model.optimizer.iterations.numpy())), epochs=epochs,
                                initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                                callbacks=[guard, *callbacks, saver], validation_data=validation_data, verbose=verbose,
                                shuffle=False)
        if not guard.finite:
            raise NonFiniteLossError(
                f"non-finite loss at step {int(model.optimizer.iterations.numpy())}; stopped. The last good "
                f"checkpoint is kept: {manager.latest_checkpoint}. Lower train.learning_rate or check the data.")
        logs = {k: float(v[-1]) for k, v in history.history.items() if v}
    return logs

