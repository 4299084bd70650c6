"""The `gan` training stage and the `draw` tool on the tiny world.

The tiny preset's phases are shortened to a few steps (16-32 images at minibatch 4) so the GAN grows through every
resolution up to 32 px in seconds; quality is not tested here, only training mechanics, resumption and the outputs.
"""
import contextlib
import glob
import io
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.core.util import event_pb2

from tests.conftest import sigkill_when
from tfvgs import draw, gan_io, training
from tfvgs.config import get_config
from tfvgs.stages import get_stage
from tfvgs.stages.gan import GanStage

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 16 images per stable phase and per fade-in: full 32 px after 3 * 32 + 32 = 128 images, i.e. step 32 at batch 4.
SHORT_PHASES = ["gan.lod_training_kimg=0.016", "gan.lod_transition_kimg=0.016", "gan.checkpoint_every=10",
                "gan.grid_every=20", "train.log_every=10"]


def short_config(*overrides):
    return get_config("tiny", [*SHORT_PHASES, *overrides])


def run_quietly(stage):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        logs = stage.run()
    return logs, out.getvalue()


def summary_tags(log_dir):
    tags = {}
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            for value in event_pb2.Event.FromString(record.numpy()).summary.value:
                tags[value.tag] = tags.get(value.tag, 0) + 1
    return tags


def latest_step(checkpoint_dir):
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    return int(latest.rsplit("-", 1)[1]) if latest else None


@pytest.fixture(scope="module")
def trained(tiny_world, tmp_path_factory):
    """A gan stage trained through every phase to 32 px (160 images = 40 steps)."""
    workdir = str(tmp_path_factory.mktemp("gan") / "w")
    stage = GanStage(short_config("gan.total_kimg=0.16"), workdir, tiny_world["scenes"])
    logs, console = run_quietly(stage)
    return {"workdir": workdir, "stage": stage, "logs": logs, "console": console}


# --- the stage -------------------------------------------------------------------------------------------------------

def test_stage_is_registered():
    assert get_stage("gan") is GanStage


def test_stage_grows_through_every_phase_and_saves_the_ema_generator(trained):
    logs, console, stage = trained["logs"], trained["console"], trained["stage"]
    assert logs["images_shown"] == 160 and logs["step"] == 40
    for name in ("d_loss", "g_loss", "gp", "drift", "wasserstein"):
        assert np.isfinite(logs[name]), name
    assert np.isfinite(logs["images_per_second"]) and logs["images_per_second"] > 0
    for phase in ("8x8 fade-in", "8x8 stable", "16x16 fade-in", "16x16 stable", "32x32 fade-in", "32x32 stable"):
        assert f"now {phase}" in console, phase
    assert stage.model_path == os.path.join(trained["workdir"], "gan", "generator.keras")
    assert os.path.exists(stage.model_path) and os.path.exists(os.path.join(stage.stage_dir, "config.json"))
    info = gan_io.read_info(trained["workdir"])
    assert info["fully_grown"] and info["resolution"] == 32 and info["images_shown"] == 160 and info["ema"]
    generator = gan_io.load_generator(trained["workdir"])
    assert float(generator.alpha.numpy()) == 1.0
    images = generator(gan_io.latents_for_seeds([0, 1], generator.latent_dim))
    assert images.shape == (2, 32, 32, 3) and np.all(np.isfinite(images))
    # the saved generator is the EMA copy: it equals the checkpoint's generator_ema, not the trained generator
    gan, _, _ = GanStage(stage.config, trained["workdir"], stage.data_dir).restore()
    for saved, ema, raw in zip(generator.weights, gan.generator_ema.weights, gan.generator.weights):
        np.testing.assert_array_equal(saved.numpy(), ema.numpy())
    assert any(not np.array_equal(e.numpy(), r.numpy()) for e, r in zip(gan.generator_ema.weights,
                                                                          gan.generator.weights))


def test_a_narrower_critic_than_generator_trains_through_every_phase(tiny_world, tmp_path):
    # gan.discriminator_fmap_base sets the critic's width alone; the generator (and its h4) keeps gan.fmap_base
    config = short_config("gan.total_kimg=0.16", "gan.fmap_base=256", "gan.discriminator_fmap_base=64")
    stage = GanStage(config, str(tmp_path / "w"), tiny_world["scenes"])
    logs, _ = run_quietly(stage)
    assert logs["images_shown"] == 160 and np.isfinite(logs["d_loss"]) and np.isfinite(logs["g_loss"])
    gan, _, _ = stage.restore()
    # tiny: fmap_max 32; nf(s) = min(base / 2**s, 32) at 4-32 px: generator 32/32/32/16, critic 32/16/8/4
    assert [gan.generator.channels_at(level) for level in range(4)] == [32, 32, 32, 16]
    assert [gan.discriminator.from_rgb_32x32.kernel.shape[-1], gan.discriminator.from_rgb_4x4.kernel.shape[-1]] \
        == [4, 32]
    assert gan_io.load_generator(stage.workdir).channels_at(3) == 16


def test_a_negative_critic_width_is_refused_by_name():
    with pytest.raises(ValueError, match=r"gan.discriminator_fmap_base.*Received: -1"):
        GanStage(short_config("gan.discriminator_fmap_base=-1"), "unused", "unused").build_model()


def test_gan_learning_rate_sets_both_adams_and_outlives_the_phase_resets(tiny_world, tmp_path):
    stage = GanStage(short_config("gan.total_kimg=0.16", "gan.learning_rate=0.003"), str(tmp_path / "w"),
                     tiny_world["scenes"])
    run_quietly(stage)            # six phase changes, each resetting Adam's moments
    gan, _, _ = stage.restore()
    assert [float(keras.ops.convert_to_numpy(o.learning_rate)) for o in (gan.g_optimizer, gan.d_optimizer)] \
        == pytest.approx([0.003, 0.003])
    default = GanStage(short_config(), "unused", "unused").build_model()
    assert float(keras.ops.convert_to_numpy(default.g_optimizer.learning_rate)) == pytest.approx(0.001)


@pytest.mark.parametrize("rate", ["0", "-0.001"])
def test_a_non_positive_gan_learning_rate_is_refused(rate):
    with pytest.raises(ValueError, match=rf"learning rate must be > 0. Received: learning_rate={rate}"):
        GanStage(short_config(f"gan.learning_rate={rate}"), "unused", "unused").build_model()


class TickingClock:
    """A stand-in for time.monotonic that advances one second per call: the budget then ends at a fixed step."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 1.0
        return self.now


def test_time_budget_stops_saves_and_counts_minutes_across_resumes(tiny_world, tmp_path):
    workdir = str(tmp_path / "w")

    def stage_with(minutes):
        stage = GanStage(short_config("gan.total_kimg=0.16", f"gan.max_minutes={minutes}"), workdir,
                         tiny_world["scenes"])
        stage.clock = TickingClock()
        return stage

    logs, console = run_quietly(stage_with(0.1))           # 6 ticks of the clock
    assert "time budget gan.max_minutes=0.1 spent" in console and "the saved generator is partial" in console
    assert 0 < logs["images_shown"] < 160 and logs["training_minutes"] >= 0.1
    info = gan_io.read_info(workdir)
    assert info["stopped_by_time_budget"] and not info["fully_grown"]
    assert info["images_shown"] == logs["images_shown"] and info["training_minutes"] == logs["training_minutes"]
    stage = stage_with(0.1)
    assert latest_step(stage.checkpoint_dir) == logs["step"]     # checkpointed where it stopped
    with open(os.path.join(stage.checkpoint_dir, "training_time.json")) as f:
        record = json.load(f)
    assert record["step"] == logs["step"] and record["seconds"] >= 6.0

    again, console = run_quietly(stage)                     # the same budget: spent already
    assert "is spent" in console and "nothing to do" in console and "stopped at" not in console
    assert again["images_shown"] == logs["images_shown"] and gan_io.read_info(workdir)["stopped_by_time_budget"]

    rest, console = run_quietly(stage_with(0))              # no budget: trains on to total_kimg from the checkpoint
    assert rest["images_shown"] == 160 and gan_io.read_info(workdir)["fully_grown"]
    assert not gan_io.read_info(workdir)["stopped_by_time_budget"]
    assert rest["training_minutes"] > logs["training_minutes"]


def test_a_negative_time_budget_is_refused(tiny_world, tmp_path):
    with pytest.raises(ValueError, match=r"gan.max_minutes must be >= 0 .*Received: -1"):
        GanStage(short_config("gan.max_minutes=-1"), str(tmp_path / "w"), tiny_world["scenes"]).run()


def test_stage_writes_checkpoints_and_tensorboard(trained):
    stage = trained["stage"]
    assert latest_step(stage.checkpoint_dir) == 40
    tags = summary_tags(stage.tensorboard_dir)
    for tag in ("train/d_loss", "train/g_loss", "train/gp", "train/drift", "train/wasserstein", "train/alpha",
                "progress/resolution", "progress/kimg", "progress/images_per_second"):
        assert tags.get(tag, 0) >= 3, tag            # logged every 10 of 40 steps
    assert tags["samples/reals"] == 1
    assert tags["samples/fixed_z"] >= 7              # start, 6 phase changes, end (grid steps coincide with them)


def test_no_segmenter_means_no_quality_reports_and_says_so(trained):
    assert "no segmenter at" in trained["console"]
    assert not os.path.exists(os.path.join(trained["stage"].stage_dir, "quality"))


def test_quality_report_after_every_phase_when_a_segmenter_exists(tiny_world, tmp_path):
    import json

    from tfvgs.models.attribute_segmenter import AttributeSegmenter
    config = short_config("gan.total_kimg=0.048", "gan.quality_samples=6")
    workdir = str(tmp_path / "w")
    segmenter = AttributeSegmenter(width=config.segmenter.width, depth=config.segmenter.depth, seed=0)
    segmenter(np.zeros([1, 32, 32, 3], np.float32))
    os.makedirs(os.path.join(workdir, "segmenter"))
    segmenter.save(os.path.join(workdir, "segmenter", "model.keras"))
    stage = GanStage(config, workdir, tiny_world["scenes"])
    _, console = run_quietly(stage)
    out = os.path.join(stage.stage_dir, "quality")
    with open(os.path.join(out, "history.jsonl")) as f:
        history = [json.loads(line) for line in f]
    # 4x4 stable for images 0-16 (its report comes after the step that leaves it, at 20), 8x8 fade-in until 32,
    # then 8x8 stable until the end at 48 images
    assert [(r["images_shown"], r["resolution"]) for r in history] == [(20, 4), (32, 8), (48, 8)]
    for report in history:
        assert np.isfinite(report["fid"]) and report["num_samples"] == 6 and 0 <= report["well_formed_fraction"] <= 1
    assert os.path.exists(os.path.join(out, "history.png")) and console.count("[gan] quality after") == 3
    assert summary_tags(stage.tensorboard_dir)["quality/fid"] == 3
    # a rerun of the finished stage adds no report
    run_quietly(GanStage(config, workdir, tiny_world["scenes"]))
    with open(os.path.join(out, "history.jsonl")) as f:
        assert len(f.readlines()) == 3


def test_quality_reports_inside_phases_at_the_alpha_training_is_at(tiny_world, tmp_path):
    """gan.quality_every_kimg adds reports every so many images inside a phase, a fade-in measured at its current
    alpha; the reports after phases stay as they were, and none is written twice for the same images."""
    import json

    from tfvgs.models.attribute_segmenter import AttributeSegmenter
    config = short_config("gan.total_kimg=0.048", "gan.quality_samples=6", "gan.quality_every_kimg=0.008")
    workdir = str(tmp_path / "w")
    segmenter = AttributeSegmenter(width=config.segmenter.width, depth=config.segmenter.depth, seed=0)
    segmenter(np.zeros([1, 32, 32, 3], np.float32))
    os.makedirs(os.path.join(workdir, "segmenter"))
    segmenter.save(os.path.join(workdir, "segmenter", "model.keras"))
    _, console = run_quietly(GanStage(config, workdir, tiny_world["scenes"]))
    with open(os.path.join(workdir, "gan", "quality", "history.jsonl")) as f:
        history = [json.loads(line) for line in f]
    after = [(r["images_shown"], r["resolution"]) for r in history if not r["during_phase"]]
    during = [r for r in history if r["during_phase"]]
    shown = [r["images_shown"] for r in history]
    assert len(shown) == len(set(shown)) and shown == sorted(shown)
    assert console.count("[gan] quality after") == 3 and console.count("[gan] quality during") == len(during) >= 2
    assert after == [(20, 4), (32, 8), (48, 8)]                   # as without the option
    fade = [r for r in during if "fade-in" in r["phase"]]
    assert fade and all(0.0 < r["alpha"] < 1.0 for r in fade)
    assert all(r["images_shown"] % 8 < 4 for r in during)      # cut at the step that reaches a multiple of 8
    with pytest.raises(ValueError, match="quality_every_kimg must be >= 0 .*Received: -1"):
        GanStage(short_config("gan.quality_every_kimg=-1"), str(tmp_path / "bad"), tiny_world["scenes"]).run()


def test_rerun_of_a_finished_stage_trains_no_further(trained):
    stage = GanStage(trained["stage"].config, trained["workdir"], trained["stage"].data_dir)
    logs, console = run_quietly(stage)
    assert "nothing to do" in console
    assert logs["images_shown"] == 160 and logs["step"] == 40
    assert latest_step(stage.checkpoint_dir) == 40


def test_reals_stream_is_indexed_by_images_shown(tiny_world, tmp_path):
    stage = GanStage(short_config(), str(tmp_path / "w"), tiny_world["scenes"])
    n = stage.num_train_images
    stream = np.concatenate([b.numpy() for b in stage.reals_dataset(0, 4).take(-(-2 * n // 4))])
    assert stream.dtype == np.uint8 and stream.shape[1:] == (32, 32, 3)
    # resuming at any image, with any batch size, continues the same stream (also across the epoch boundary)
    for start, batch in ((5, 3), (n - 2, 4), (n + 1, 2)):
        first = next(iter(stage.reals_dataset(start, batch))).numpy()
        np.testing.assert_array_equal(first, stream[start:start + batch])
    # each epoch is a new order of the same images
    first_epoch, second_epoch = stream[:n], stream[n:2 * n]
    assert not np.array_equal(first_epoch, second_epoch)
    key = lambda images: sorted(image.tobytes() for image in images)  # noqa: E731
    assert key(first_epoch) == key(second_epoch)


def checkpoint_values(path):
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter"))}   # bookkeeping of saves


@pytest.mark.parametrize("override,key", [("seed=11", "seed"), ("gan.gp_weight=5.0", "gan.gp_weight")])
def test_resuming_with_other_settings_is_refused_and_keeps_the_saved_config(trained, tiny_world, override, key):
    config_path = os.path.join(trained["stage"].stage_dir, "config.json")
    saved = open(config_path).read()
    other = GanStage(short_config("gan.total_kimg=0.16", override), trained["workdir"], tiny_world["scenes"])
    with pytest.raises(ValueError, match=re.escape(key) + ".*Resume with the same settings"):
        other.run()
    assert open(config_path).read() == saved


def test_resume_continues_phase_alpha_and_data_as_if_never_stopped(trained, tiny_world, tmp_path):
    # Stop after 24 images (6 steps): 20 at 4x4, then halfway into the 16-image 8x8 fade-in.
    workdir = str(tmp_path / "w")
    run_quietly(GanStage(short_config("gan.total_kimg=0.024"), workdir, tiny_world["scenes"]))
    with pytest.raises(ValueError, match="stopped growing at 8x8"):
        gan_io.load_generator(workdir)            # stopped mid fade-in: not a usable generator yet

    resumed = GanStage(short_config("gan.total_kimg=0.08"), workdir, tiny_world["scenes"])
    gan, _, step = resumed.restore()
    phase = gan.phase
    assert int(gan.images_shown.numpy()) == 24 and int(step.numpy()) == 6
    assert (phase.level, phase.in_transition) == (1, True) and phase.alpha == pytest.approx(0.5)
    logs, console = run_quietly(resumed)
    assert "resumed from" in console and "(step 6, 24 images shown, 8x8 fade-in alpha 0.50" in console
    assert logs["images_shown"] == 80 and logs["step"] == 20     # 14 more steps, not 20 from scratch

    # The uninterrupted run of the `trained` fixture (same config) passed step 20 too: every variable of both
    # checkpoints - weights, EMA, Adam moments, images_shown, random stream - agrees.
    straight = os.path.join(trained["stage"].checkpoint_dir, "ckpt-20")
    assert os.path.exists(straight + ".index"), "the fixture keeps its last 3 checkpoints: 20, 30, 40"
    expected, actual = checkpoint_values(straight), checkpoint_values(os.path.join(resumed.checkpoint_dir, "ckpt-20"))
    assert expected.keys() == actual.keys() and any("images_shown" in name for name in actual)
    for name, value in expected.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            np.testing.assert_allclose(actual[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(actual[name], value, err_msg=name)


class _PoisonedAfterFirstChunk(GanStage):
    """Real images become NaN after the first checkpoint, as if the data or the optimisation had blown up."""

    def reals_dataset(self, start_image, batch_size):
        ds = super().reals_dataset(start_image, batch_size)
        if start_image == 0:
            return ds
        return ds.map(lambda images: tf.cast(images, tf.float32) * np.nan)


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tiny_world, tmp_path):
    workdir = str(tmp_path / "w")
    stage = _PoisonedAfterFirstChunk(short_config("gan.checkpoint_every=3", "gan.total_kimg=0.1"), workdir,
                                     tiny_world["scenes"])
    with pytest.raises(training.NonFiniteLossError, match="non-finite loss at step 4") as error:
        run_quietly(stage)
    assert "ckpt-3" in str(error.value)
    assert latest_step(stage.checkpoint_dir) == 3
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(stage.checkpoint_dir))
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), name
    assert not os.path.exists(stage.model_path)


@pytest.mark.slow
def test_sigkill_and_rerun_continues_growth_from_the_last_checkpoint(tiny_world, tmp_path):
    workdir = str(tmp_path / "w")
    ckpt_dir = os.path.join(workdir, "gan", "checkpoints")
    cmd = [sys.executable, "-m", "tfvgs.train", "--stage", "gan", "--config", "tiny", "--data_dir",
           tiny_world["scenes"], "--workdir", workdir, "--set", "gan.checkpoint_every=5"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(cmd + ["--set", "gan.total_kimg=100"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # past the 4x4 phase (51 steps): into the 8x8 fade-in
    sigkill_when(proc, lambda: (latest_step(ckpt_dir) or 0) >= 60, timeout=180)
    killed_at = latest_step(ckpt_dir)
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(ckpt_dir))
    shown = int(next(reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "images_shown" in k))
    phase = GanStage(get_config("tiny"), workdir, tiny_world["scenes"]).restore()[0].phase
    assert shown == 4 * killed_at and phase.level >= 1
    total = shown + 20
    done = subprocess.run(cmd + ["--set", f"gan.total_kimg={total / 1000}"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"(step {killed_at}, {shown} images shown, {phase.resolution}x{phase.resolution}" in done.stdout
    assert latest_step(ckpt_dir) == killed_at + 5


# --- the critic-fit benchmark ---------------------------------------------------------------------------------------

def test_critic_fit_benchmark_scores_train_val_and_generated_images(trained, tiny_world, capsys):
    from benchmarks import gan_critic_fit
    lines = gan_critic_fit.main(["--workdir", trained["workdir"], "--data_dir", tiny_world["scenes"],
                                 "--images", "8", "--batch", "4"])
    assert [line["set"] for line in lines] == ["train_reals", "val_reals", "fakes_ema"]
    printed = [json.loads(row) for row in capsys.readouterr().out.splitlines() if row.startswith("{")]
    assert printed == lines
    for line in lines:
        assert 2 <= line["images"] <= 8 and line["images_shown"] == 160 and line["resolution"] == 32
        assert np.isfinite(line["score_mean"]) and line["score_sd"] >= 0
        assert line["r_t"] == pytest.approx(2 * line["fraction_real"] - 1, abs=1e-3)   # float scores: no zeros


def test_critic_fit_benchmark_names_a_workdir_without_a_gan(tmp_path):
    from benchmarks import gan_critic_fit
    with pytest.raises(SystemExit, match=re.escape(str(tmp_path))):
        gan_critic_fit.main(["--workdir", str(tmp_path), "--data_dir", str(tmp_path)])


# --- the draw tool ---------------------------------------------------------------------------------------------------

def png_array(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_draw_samples_writes_a_grid_of_the_generators_images(trained, tmp_path):
    out = str(tmp_path / "grid.png")
    summary = draw.main(["--workdir", trained["workdir"], "samples", "--seeds", "0-4,9", "--columns", "3",
                         "--scale", "2", "--out", out])
    grid = png_array(out)
    tile = 32 * 2
    assert grid.shape == (2 * tile + 3 * draw.GRID_PAD, 3 * tile + 4 * draw.GRID_PAD, 3)
    assert summary["seeds"] == [0, 1, 2, 3, 4, 9]
    generator = gan_io.load_generator(trained["workdir"])
    # The expected tile comes from the same batch of six latents: a float32 generator's output differs by ~1e-5
    # between batch sizes (oneDNN picks kernels by shape), enough to move a pixel by one uint8 level on some CPUs
    # (issue 15), while one batch shape gives bitwise the same image.
    latents = gan_io.latents_for_seeds(summary["seeds"], generator.latent_dim)
    expected = draw.to_uint8(generator.generate(latents))[5]
    top, left = draw.GRID_PAD + tile + draw.GRID_PAD, draw.GRID_PAD + 2 * (tile + draw.GRID_PAD)   # row 1, col 2
    np.testing.assert_array_equal(grid[top:top + tile:2, left:left + tile:2], expected)


def test_draw_edit_writes_original_mask_edited_and_difference(trained, tmp_path):
    out = str(tmp_path / "edit.png")
    summary = draw.main(["--workdir", trained["workdir"], "edit", "--seeds", "3,7", "--units", "0-31",
                         "--locations", "2,3", "4,4", "--scale", "2", "--out", out])
    view = png_array(out)
    layout = draw.EditLayout(rows=2, tile=64)
    assert view.shape == (layout.height, layout.width, 3)
    assert summary["units"] == list(range(32)) and summary["locations"] == [(2, 3), (4, 4)]

    def tile(row, column):
        left, top = layout.tile_box(row, column)
        return view[top:top + 64, left:left + 64].astype(int)

    generator = gan_io.load_generator(trained["workdir"])
    # from the same batch (seeds 3 and 7) as the tool: see the comment in the samples test above
    original = draw.to_uint8(generator.generate(gan_io.latents_for_seeds([3, 7], generator.latent_dim)))[1]
    np.testing.assert_array_equal(tile(1, 0)[::2, ::2], original)
    for row in range(2):
        changed = np.abs(tile(row, 2) - tile(row, 0)).max(axis=-1) > 0
        assert changed.any() and summary["rows"][row]["mean_abs_diff"] > 0
        # the red ablated cells of the mask: cell (2, 3) at 2x scale covers rows 16-23, columns 24-31
        mask = tile(row, 1)
        assert mask[17:23, 25:31, 0].mean() > mask[17:23, 25:31, 1].mean() + 60
        assert abs(mask[1:7, 1:7, 0].mean() - mask[1:7, 1:7, 1].mean()) < abs(
            mask[17:23, 25:31, 0].mean() - mask[17:23, 25:31, 1].mean())


def test_draw_edit_with_random_units_is_seeded(trained, tmp_path):
    args = ["--workdir", trained["workdir"], "edit", "--seed", "1", "--random_units", "0.25", "--out"]
    first = draw.main(args + [str(tmp_path / "a.png"), "--unit_seed", "4"])
    again = draw.main(args + [str(tmp_path / "b.png"), "--unit_seed", "4"])
    other = draw.main(args + [str(tmp_path / "c.png"), "--unit_seed", "5"])
    assert first["units"] == again["units"] != other["units"]
    assert all(0 <= u < 32 for u in first["units"]) and first["locations"] is None
    assert png_array(str(tmp_path / "a.png")).shape == (draw.EditLayout(1, 128).height, draw.EditLayout(1, 128).width,
                                                        3)   # default scale: 32 px -> 128 px tiles


@pytest.mark.parametrize("args, message", [
    (["--units", "1,32"], r"Unit indices must be in \[0, 31\]: h4 of this generator has 32 channels. Received: \[32\]"),
    (["--units", "1", "--locations", "8,0"], r"row and col in \[0, 7\]"),
    (["--units", "1", "--locations", "3"], "ROW,COL"),
    (["--units", "a-b"], "integers and inclusive ranges"),
    (["--random_units", "1.5"], r"probability in \(0, 1\]"),
])
def test_draw_edit_rejects_bad_units_and_locations(trained, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        draw.main(["--workdir", trained["workdir"], "edit", "--seed", "0", *args, "--out", str(tmp_path / "x.png")])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not os.path.exists(tmp_path / "x.png")


def test_draw_needs_a_trained_generator(tmp_path, capsys):
    with pytest.raises(SystemExit):
        draw.main(["--workdir", str(tmp_path), "samples", "--out", str(tmp_path / "grid.png")])
    err = capsys.readouterr().err
    assert "No trained generator" in err and "--stage gan" in err


def test_parse_helpers():
    assert draw.parse_int_list("0-3,8, 10-11,2", "seeds") == [0, 1, 2, 3, 8, 10, 11]
    assert draw.parse_location("2,5") == (2, 5)
    assert draw.image_grid(np.zeros((5, 4, 4, 3), np.uint8), columns=2, pad=1).shape == (3 * 4 + 4, 2 * 4 + 3, 3)
    z = gan_io.latents_for_seeds([3, 1], 8)
    np.testing.assert_array_equal(z[0], gan_io.latents_for_seeds([3], 8)[0])   # independent of the batch
    assert not np.array_equal(z[0], z[1])
