"""DaveNet's schedule from val recall (train.plateau_patience): the learning rate drops and the stage stops on a
plateau, the state survives a resume, and a checkpoint of the other schedule is refused by name."""
import os

import keras
import pytest
import tensorflow as tf

from tfvgs import config as config_lib
from tfvgs import evaluate, train, training
from tfvgs import workdir as tfvgs_layout


def _model(learning_rate=1e-3, step_decay=False):
    """A small built model; `step_decay`: the fixed schedule's optimizer (no learning-rate variable)."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    if step_decay:
        learning_rate = keras.optimizers.schedules.ExponentialDecay(learning_rate, 10, 0.1, staircase=True)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _feed(callback, model, values):
    """One evaluation per value; returns after which evaluation (1-based) training was stopped, else None."""
    callback.set_model(model)
    for i, value in enumerate(values, 1):
        callback.on_epoch_end(i - 1, {"val_recall@10": value})
        if model.stop_training:
            return i
    return None


def test_the_rate_drops_after_patience_evaluations_without_a_gain_then_training_stops():
    model, state = _model(), training.PlateauState()
    callback = training.PlateauSchedule(state, "val_recall@10", patience=2, min_delta=0.01, factor=0.1, decays=1)
    # 0.10 -> 0.30 -> 0.305 (gain < min_delta: wait 1) -> 0.30 (wait 2: decay) -> 0.40 (best) -> 0.40, 0.405 (stop)
    stopped_at = _feed(callback, model, [0.10, 0.30, 0.305, 0.30, 0.40, 0.40, 0.405, 0.9])
    assert stopped_at == 7
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    assert int(state.decays.numpy()) == 1 and bool(state.stopped.numpy())
    assert float(state.best.numpy()) == pytest.approx(0.40)


def test_steady_gains_never_stop_training():
    model, state = _model(), training.PlateauState()
    callback = training.PlateauSchedule(state, "val_recall@10", patience=1, min_delta=0.01, factor=0.1, decays=1)
    assert _feed(callback, model, [0.1 * i for i in range(1, 9)]) is None
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-3)


def test_a_missing_monitor_is_named():
    model = _model()
    callback = training.PlateauSchedule(training.PlateauState(), "val_recall@10", patience=1, min_delta=0.0,
                                        factor=0.1, decays=1)
    callback.set_model(model)
    with pytest.raises(ValueError, match="val_recall@10.*Logged: \\['val_loss'\\]"):
        callback.on_epoch_end(0, {"val_loss": 1.0})
    with pytest.raises(ValueError, match="patience >= 1.*Received: 0"):
        training.PlateauSchedule(training.PlateauState(), "m", patience=0, min_delta=0.0, factor=0.1, decays=1)


def test_the_state_and_the_lowered_rate_are_restored_from_the_checkpoint(tmp_path):
    model, state = _model(), training.PlateauState()
    manager = training.restore_or_initialize(model, str(tmp_path), 2, plateau=state)
    callback = training.PlateauSchedule(state, "val_recall@10", patience=1, min_delta=0.01, factor=0.1, decays=1)
    assert _feed(callback, model, [0.5, 0.5]) is None            # one decay, not yet stopped
    manager.save(checkpoint_number=1)
    resumed, resumed_state = _model(), training.PlateauState()
    training.restore_or_initialize(resumed, str(tmp_path), 2, plateau=resumed_state)
    assert float(resumed.optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    assert (float(resumed_state.best.numpy()), int(resumed_state.decays.numpy())) == (pytest.approx(0.5), 1)
    # the next plateau after the resume stops it, as it would have without the kill
    callback = training.PlateauSchedule(resumed_state, "val_recall@10", patience=1, min_delta=0.01, factor=0.1,
                                        decays=1)
    assert _feed(callback, resumed, [0.5]) == 1


def test_a_checkpoint_of_the_other_schedule_is_refused_by_name(tmp_path):
    fixed_dir, plateau_dir = str(tmp_path / "fixed"), str(tmp_path / "plateau")
    training.restore_or_initialize(_model(step_decay=True), fixed_dir, 2).save(checkpoint_number=3)
    training.restore_or_initialize(_model(), plateau_dir, 2, plateau=training.PlateauState()).save(
        checkpoint_number=5)
    with pytest.raises(ValueError, match=r"ckpt-3 was saved without the plateau schedule.*plateau_patience > 0"):
        training.restore_or_initialize(_model(), fixed_dir, 2, plateau=training.PlateauState())
    with pytest.raises(ValueError, match=r"ckpt-5 was saved with the plateau schedule.*plateau_patience 0"):
        training.restore_or_initialize(_model(step_decay=True), plateau_dir, 2)
    # each resumes with its own schedule
    training.restore_or_initialize(_model(step_decay=True), fixed_dir, 2)
    training.restore_or_initialize(_model(), plateau_dir, 2, plateau=training.PlateauState())


class _BreaksItsWeights(keras.Model):
    """Reports a finite loss but sets its weights to NaN at step `break_at` (an update that overflowed)."""

    def __init__(self, break_at):
        super().__init__()
        self.dense, self.break_at = keras.layers.Dense(1), break_at

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        self.optimizer.iterations.assign_add(1)
        if int(self.optimizer.iterations.numpy()) == self.break_at:
            self.dense.kernel.assign(tf.fill(self.dense.kernel.shape, float("nan")))
        return {"loss": 0.0}


def test_weights_broken_by_a_chunk_s_last_update_stop_before_any_callback_measures_them(tmp_path):
    model = _BreaksItsWeights(break_at=4)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), run_eagerly=True)
    model(tf.zeros([1, 2]))
    model.optimizer.build(model.trainable_variables)
    measured = []

    class Probe(keras.callbacks.Callback):   # as RecallSummaries: measures unless training was stopped
        def on_epoch_end(self, epoch, logs=None):
            if not self.model.stop_training:
                measured.append(int(self.model.optimizer.iterations.numpy()))

    manager = training.restore_or_initialize(model, str(tmp_path), 3)
    with pytest.raises(training.NonFiniteLossError, match="non-finite loss at step 4"):
        training.fit_resumable(model, lambda skip: tf.data.Dataset.from_tensors(tf.zeros([1, 2])).repeat(),
                               steps=6, checkpoint_every=2, manager=manager, callbacks=[Probe()], verbose=0)
    assert measured == [2]                                   # the broken chunk was not measured
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")   # nor saved


def test_davenet_stops_on_a_plateau_before_its_step_ceiling_and_a_rerun_keeps_it(tiny_world, tmp_path, capsys):
    # min_delta 1.0 (a gain of 100 points) cannot be met: eval 1 sets the best, eval 2 lowers the rate, eval 3
    # stops, so 3 checkpoint chunks of 2 steps train of the 40 allowed
    workdir = str(tmp_path / "w")
    argv = ["--stage", "davenet", "--config", "tiny", "--data_dir", tiny_world["pairs"], "--workdir", workdir,
            "--set", "train.steps=40", "--set", "train.checkpoint_every=2", "--set", "train.plateau_patience=1",
            "--set", "train.plateau_min_delta=1.0", "--set", "train.plateau_decays=1"]
    train.main(argv)
    out = capsys.readouterr().out
    assert "learning rate -> 0.0001 at step 4" in out and "stopped at step 6" in out, out[-2000:]
    assert tf.train.latest_checkpoint(os.path.join(workdir, "davenet", "checkpoints")).endswith("ckpt-6")
    model = keras.models.load_model(tfvgs_layout.model_path(workdir, "davenet"), compile=False)
    assert model is not None
    os.remove(tfvgs_layout.done_path(workdir, "davenet"))     # as if killed after the last checkpoint
    train.main(argv)
    assert "stopped on a plateau" in capsys.readouterr().out
    assert tf.train.latest_checkpoint(os.path.join(workdir, "davenet", "checkpoints")).endswith("ckpt-6")
    # the checkpoint evaluates as the final model does
    common = ["--workdir", workdir, "--data_dir", tiny_world["pairs"], "--stage", "davenet", "--split", "train",
              "--num_pairs", "16"]
    final = evaluate.main(common)
    assert evaluate.main(common + ["--from_checkpoint", "--force"])["recall"] == final["recall"]
    # the fixed schedule on this checkpoint is refused before the stage's config.json is replaced
    with pytest.raises(ValueError, match="ckpt-6 was saved with the plateau schedule"):
        train.main(argv[:-6] + ["--set", "train.plateau_patience=0"])
    assert config_lib.Config.load(tfvgs_layout.config_path(workdir, "davenet")).train.plateau_patience == 1


def test_plateau_max_steps_is_the_ceiling_of_davenet_alone_and_hard_negatives_keeps_train_steps(tmp_path):
    from tfvgs.stages.davenet import DavenetStage, HardNegativesStage
    overrides = ["train.steps=40", "train.plateau_patience=1", "train.plateau_max_steps=6"]
    config = config_lib.get_config("tiny", overrides)
    assert DavenetStage(config, str(tmp_path), str(tmp_path)).schedule()[0] == 6
    assert HardNegativesStage(config, str(tmp_path), str(tmp_path)).schedule()[0] == 40   # fixed fine-tuning length
    fixed = config_lib.get_config("tiny", overrides[:1] + ["train.plateau_max_steps=6"])  # no plateau: no ceiling
    assert DavenetStage(fixed, str(tmp_path), str(tmp_path)).schedule()[0] == 40
    wrong = config_lib.get_config("tiny", overrides[:2] + ["train.plateau_max_steps=-1"])
    with pytest.raises(ValueError, match=r"train.plateau_max_steps must be >= 0.*Received: -1"):
        DavenetStage(wrong, str(tmp_path), str(tmp_path)).schedule()


def test_the_plateau_schedule_is_refused_by_name_under_several_workers(tmp_path, monkeypatch):
    # only the chief measures val recall, so workers could stop at different steps: refused before any training
    from tfvgs.stages import stage as stage_module
    from tfvgs.stages.davenet import DavenetStage
    monkeypatch.setattr(stage_module.multi_worker, "num_workers", lambda strategy: 2)
    config = config_lib.get_config("tiny", ["train.plateau_patience=2"])
    with pytest.raises(ValueError, match=r"train.plateau_patience=0.*Received: train.plateau_patience=2"):
        DavenetStage(config, str(tmp_path), str(tmp_path)).execute()
    assert not os.listdir(tmp_path)                                   # nothing written
