"""The training CLI on the tiny world: a stage trains, saves, evaluates; resumes after SIGKILL; stops on NaN."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import sigkill_when
from tfvgs import evaluate, train, training
from tfvgs.evaluation import retrieval

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_recall_at_k_on_a_hand_built_matrix():
    # rows: images, columns: captions; the true pair is on the diagonal
    scores = np.array([[5.0, 1.0, 0.0],     # image 0: its caption ranks 1st
                       [6.0, 2.0, 0.0],     # image 1: caption 1 ranks 2nd
                       [9.0, 8.0, 1.0]])    # image 2: caption 2 ranks 3rd
    r = retrieval.recall_at_k(scores, ks=(1, 2))
    assert r["image_to_audio"] == {"1": 1 / 3, "2": 2 / 3}
    # caption 0 ranks images 2 (9) and 1 (6) above image 0 (5): 3rd; caption 1 ranks image 2 (8) above image 1
    # (2): 2nd; caption 2 ranks its image first
    assert r["audio_to_image"] == {"1": 1 / 3, "2": 2 / 3}
    assert r["chance"]["1"] == pytest.approx(1 / 3)


def test_console_shows_progress_bars_only_on_a_terminal():
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    assert training.console_verbosity(Terminal()) == 1
    assert training.console_verbosity(io.StringIO()) == 2


def test_chunk_plan_ends_exactly_at_the_step_count():
    # (first epoch, epochs, steps per epoch) of each fit call
    assert training.chunk_plan(0, 600, 200) == [(0, 3, 200)]
    assert training.chunk_plan(0, 40, 200) == [(0, 1, 40)]             # not rounded up to a whole chunk
    assert training.chunk_plan(0, 500, 200) == [(0, 2, 200), (0, 1, 100)]
    assert training.chunk_plan(200, 500, 200) == [(1, 2, 200), (0, 1, 100)]   # resumed after the first chunk
    assert training.chunk_plan(400, 500, 200) == [(0, 1, 100)]
    assert training.chunk_plan(500, 500, 200) == [] == training.chunk_plan(600, 500, 200)
    for done, steps, chunk in [(0, 7, 3), (3, 7, 3), (6, 7, 3), (0, 1, 5), (4, 12, 4)]:
        plan = training.chunk_plan(done, steps, chunk)
        assert done + sum(e_steps * (epochs - first) for first, epochs, e_steps in plan) == steps


def test_steps_not_a_multiple_of_the_checkpoint_interval_train_exactly(tiny_world, tmp_path):
    import warnings
    workdir = str(tmp_path / "w")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train.main(["--stage", "davenet", "--config", "tiny", "--data_dir", tiny_world["pairs"], "--workdir",
                    workdir, "--set", "train.steps=6", "--set", "train.checkpoint_every=4"])
    checkpoints = tf.train.get_checkpoint_state(os.path.join(workdir, "davenet", "checkpoints"))
    steps = sorted(int(p.rsplit("-", 1)[1]) for p in checkpoints.all_model_checkpoint_paths)
    assert steps == [4, 6], steps                       # one chunk of 4, then the last 2; not 8
    # Keras warns that shuffle=True is ignored for a tf.data input unless fit is told shuffle=False
    assert not [w for w in caught if "shuffle" in str(w.message)], [str(w.message) for w in caught]


def test_davenet_stage_trains_saves_and_evaluates(tiny_world, tmp_path, capsys):
    workdir = str(tmp_path / "w")
    logs = train.main(["--stage", "davenet", "--config", "tiny", "--data_dir", tiny_world["pairs"],
                       "--workdir", workdir])
    # stdout is captured (not a terminal): one line per checkpoint chunk, no progress-bar redraws
    out = capsys.readouterr().out
    assert "\u2501" not in out and "\r" not in out and out.count("Epoch 3/3") == 1, out[-2000:]
    # val recall is printed with its chance level, R@10 chance = 10 / pairs
    import re
    printed = re.findall(r"val recall over (\d+) pairs \(misa\): .*\(chance R@10 ([\d.]+)\)", out)
    assert printed, out[-2000:]
    for pairs, chance in printed:
        assert float(chance) == pytest.approx(100 * min(1.0, 10 / int(pairs)), abs=0.05)
    assert np.isfinite(logs["loss"]) and "semi_hard_loss" in logs and "val_loss" in logs
    assert os.path.exists(os.path.join(workdir, "davenet", "model.keras"))
    saved = json.load(open(os.path.join(workdir, "davenet", "config.json")))
    assert saved["name"] == "tiny"
    assert tf.train.latest_checkpoint(os.path.join(workdir, "davenet", "checkpoints")).endswith("-12")
    tags, plugins = set(), {}
    for event_file in tf.io.gfile.glob(os.path.join(workdir, "davenet", "tensorboard", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            tags.update(v.tag for v in event.summary.value)
            plugins.update({v.tag: v.metadata.plugin_data.plugin_name for v in event.summary.value
                            if v.metadata.plugin_data.plugin_name})
    for tag in ("train/loss", "train/learning_rate", "val/recall/mean@10", "val/recall_sisa/mean@10",
                "matchmap_overlay", "caption_text", "caption_audio"):
        assert any(t.startswith(tag) for t in tags), (tag, sorted(tags))
    # text and audio under tags of their own: TensorBoard shows one plugin's data per tag
    assert {t: p for t, p in plugins.items() if t.startswith("caption")} == {
        "caption_text": "text", "caption_audio": "audio"}, plugins
    metrics = evaluate.main(["--workdir", workdir, "--data_dir", tiny_world["pairs"], "--stage", "davenet",
                             "--split", "train", "--num_pairs", "16"])
    written = json.load(open(os.path.join(workdir, "eval", "davenet", "metrics.json")))
    assert written["n_pairs"] == metrics["n_pairs"] == 16
    for direction in ("audio_to_image", "image_to_audio"):
        r = written["recall"][direction]
        assert 0.0 <= r["1"] <= r["5"] <= r["10"] <= 1.0
    assert os.path.exists(os.path.join(workdir, "eval", "davenet", "report.md"))
    # the last checkpoint holds the final weights: evaluating it gives the same recall as model.keras
    from_checkpoint = evaluate.main(["--workdir", workdir, "--data_dir", tiny_world["pairs"], "--stage", "davenet",
                                     "--split", "train", "--num_pairs", "16", "--from_checkpoint"])
    assert from_checkpoint["recall"] == metrics["recall"]


def test_recall_counts_ties_against_the_query_and_refuses_nan():
    collapsed = retrieval.recall_at_k(np.ones((3, 3)), ks=(1, 2, 3))
    assert collapsed["audio_to_image"] == {"1": 0.0, "2": 0.0, "3": 1.0}
    with pytest.raises(ValueError, match="NaN or infinite"):
        retrieval.recall_at_k(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_hard_negatives_starts_from_davenet_weights_with_a_fresh_optimizer(tiny_world, tmp_path):
    workdir = str(tmp_path / "w")
    common = ["--config", "tiny", "--data_dir", tiny_world["pairs"], "--workdir", workdir]
    train.main(["--stage", "davenet", *common, "--set", "train.steps=4"])
    logs = train.main(["--stage", "hard_negatives", *common, "--set", "train.steps=4"])
    assert "hardest_loss" in logs
    assert tf.train.latest_checkpoint(os.path.join(workdir, "hard_negatives", "checkpoints")).endswith("-4")


def test_resuming_with_other_settings_is_refused(tiny_world, tmp_path):
    workdir = str(tmp_path / "w")
    common = ["--stage", "davenet", "--config", "tiny", "--data_dir", tiny_world["pairs"], "--workdir", workdir]
    train.main([*common, "--set", "train.steps=4"])
    with pytest.raises(ValueError, match="train.batch_size=8"):
        train.main([*common, "--set", "train.steps=8", "--set", "train.batch_size=4"])
    train.main([*common, "--set", "train.steps=8"])  # more steps with the same settings resumes


@pytest.mark.parametrize("case", ["missing", "empty", "scenes"])
def test_a_data_dir_it_cannot_read_fails_in_one_line_and_writes_nothing(case, tiny_world, tmp_path, capsys):
    data_dir = {"missing": str(tmp_path / "nowhere"), "empty": str(tmp_path / "empty"),
                "scenes": tiny_world["scenes"]}[case]
    os.makedirs(tmp_path / "empty")
    workdir = tmp_path / "w"
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--stage", "davenet", "--config", "tiny", "--data_dir", data_dir, "--workdir", str(workdir)])
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[davenet]")]
    assert len(err) == 1 and data_dir in err[0], err
    expected = {"missing": "does not exist", "empty": "has no 'train' shards",
                "scenes": "holds scenes records written by render_scenes"}[case]
    assert expected in err[0] and "python -m beam_pipelines.spoken_captions" in err[0], err[0]
    assert not workdir.exists()


def test_hard_negatives_needs_davenet_first(tiny_world, tmp_path):
    with pytest.raises(FileNotFoundError, match="stage 'hard_negatives' needs stage 'davenet', but .* is missing "
                                                "\\(run `python -m tfvgs.train --stage davenet` first"):
        train.main(["--stage", "hard_negatives", "--config", "tiny", "--data_dir", tiny_world["pairs"],
                    "--workdir", str(tmp_path / "w")])


def test_non_finite_loss_stops_with_a_clear_message(tiny_world, tmp_path, capsys):
    workdir = str(tmp_path / "w")
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--stage", "davenet", "--config", "tiny", "--data_dir", tiny_world["pairs"],
                    "--workdir", workdir, "--set", "train.learning_rate=1e30", "--set", "train.steps=40"])
    assert exit_info.value.code == 2
    assert "non-finite loss" in capsys.readouterr().err
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "davenet", "checkpoints"))
    if latest:  # whatever was saved before the blow-up holds finite weights only
        reader = tf.train.load_checkpoint(latest)
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                assert np.all(np.isfinite(value)), name


def test_sigkill_and_rerun_resumes_from_the_last_checkpoint(tiny_world, tmp_path):
    workdir = str(tmp_path / "w")
    ckpt_dir = os.path.join(workdir, "davenet", "checkpoints")
    cmd = [sys.executable, "-m", "tfvgs.train", "--stage", "davenet", "--config", "tiny", "--data_dir",
           tiny_world["pairs"], "--workdir", workdir, "--set", "train.steps=400", "--set",
           "train.checkpoint_every=2"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sigkill_when(proc, lambda: int((tf.train.latest_checkpoint(ckpt_dir) or "-0").rsplit("-", 1)[1]) >= 4,
                 timeout=120)
    killed_at = int(tf.train.latest_checkpoint(ckpt_dir).rsplit("-", 1)[1])
    done = subprocess.run(cmd[:-4] + ["--set", f"train.steps={killed_at + 4}", "--set", "train.checkpoint_every=2"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resumed from" in done.stdout and f"(step {killed_at})" in done.stdout
    assert tf.train.latest_checkpoint(ckpt_dir).endswith(f"-{killed_at + 4}")


def test_hardest_impostor_stages_train_at_the_scaled_learning_rate():
    from tfvgs.config import get_config
    from tfvgs.stages.davenet import build_dual_encoder
    config = get_config("tiny", ["train.hardest_lr_scale=0.1"])
    base = config.train.learning_rate
    hardest = build_dual_encoder(config, loss="hardest")
    default = build_dual_encoder(config)
    assert training.current_learning_rate(hardest.optimizer) == pytest.approx(0.1 * base)
    assert training.current_learning_rate(default.optimizer) == pytest.approx(base)
