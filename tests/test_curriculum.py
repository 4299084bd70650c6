"""The README's main command (`tfvgs.demo`: render, `--stage all`, export, report) on the tiny preset, once (the
session fixture `tiny_demo` in conftest.py)."""
import contextlib
import io
import json
import os

import numpy as np
import pytest

from tfvgs import curriculum, train

EDIT_STAGES = ("random_edits", "hn_random_edits", "targeted_edits", "hn_targeted_edits")


@pytest.fixture(scope="module")
def everything(tiny_demo):
    return tiny_demo


def read_json(*parts):
    with open(os.path.join(*parts)) as f:
        return json.load(f)


def test_every_step_ran_in_order_and_the_report_has_every_stage(everything):
    console, workdir = everything["console"], everything["workdir"]
    names = ["segmenter", "gan", "audio_clevrgan", "semantic_test_set", "transfer_test_set", "renderer_edits",
             *(name for name, _ in curriculum.STAGES), "evaluate"]
    positions = [console.index(f"{name}] starting") for name in names]
    assert positions == sorted(positions)
    report = read_json(workdir, "eval", "report.json")
    text = json.dumps(report)
    for stage in ("davenet", "hard_negatives", *EDIT_STAGES, "exact_edits"):
        assert os.path.exists(os.path.join(workdir, stage, "model.keras")), stage
        assert stage in text, stage
    assert os.path.exists(os.path.join(workdir, "eval", "report.md"))
    assert os.path.exists(os.path.join(workdir, "gan", "quality", "history.jsonl"))


def test_edit_stages_trained_with_edits_and_measured_them(everything):
    workdir = everything["workdir"]
    for stage in EDIT_STAGES:
        success = read_json(workdir, stage, "edit_success.json")
        assert success["n_edited"] > 0 and 0.0 <= success["valid_fraction"] <= 1.0, stage
        assert 0.0 <= success["rate"] <= 1.0 and success["n"] <= success["n_edited"], stage
        assert os.path.getsize(os.path.join(workdir, stage, "edits.png")) > 0
        if "targeted" in stage:     # the same edits scored against the clusters' region labels too
            assert "rate_by_region_label" in success, stage
        # the training log has the edit statistics of DualEncoder.train_step
        from tests.test_gan_stage import summary_tags
        tags = summary_tags(os.path.join(workdir, stage, "tensorboard"))
        assert any("edit_valid_fraction" in tag for tag in tags), (stage, sorted(tags))


def test_cluster_stages_partition_the_units_and_rank_every_h4_unit(everything):
    workdir = everything["workdir"]
    for stage in ("cluster", "hn_cluster"):
        result = read_json(workdir, stage, "clusters.json")
        units = sorted(u for c in result["clusters"] for u in c["units"]) + result["dead_units"]
        assert sorted(units) == list(range(32)), stage          # tiny embedding_dim
        for c in result["clusters"]:
            assert sorted(c["h4_ranking"]) == list(range(32))     # tiny h4 width
            assert np.all(np.diff(c["h4_iou"]) <= 1e-9)           # best first
            # the label is what the cluster's ablations change (or None when they change no attribute)
            label = c["label"]
            assert label is None or (label["family"] in ("shape", "color", "material", "size")
                                     and 0 < label["share"] <= label["changed_fraction"] <= 1 and label["n"] > 0)
            assert "region_label" in c
        for picture in ("dendrogram.png", "clusters.png"):
            assert os.path.getsize(os.path.join(workdir, stage, picture)) > 0


def test_demo_writes_its_report_pictures_and_savedmodels(everything):
    workdir, console = everything["workdir"], everything["console"]
    for path in ("demo_report.md", "gan_samples.png", "contact_sheet.png", "example.wav", "serving/models.config",
                 "serving/audio_visual/1/saved_model.pb", "serving/generator/1/saved_model.pb"):
        assert os.path.getsize(os.path.join(workdir, path)) > 0, path
    with open(os.path.join(workdir, "demo_report.md")) as f:
        report = f.read()
    for picture in ("rendered_vs_gan.png", "gan_samples.png", "contact_sheet.png", "random_edits/edits.png",
                    "cluster/clusters.png", "eval/results.png"):
        assert f"]({picture})" in report, picture
    # rendered scenes and GAN samples at one size: two equal rows of equal tiles
    from PIL import Image
    sheet = np.asarray(Image.open(os.path.join(workdir, "rendered_vs_gan.png")))
    pad, size = 2, 32 * 4                                    # tiny: 32 px images drawn at scale 4, 2 px padding
    assert (sheet.shape[0] - 3 * pad) == 2 * size and (sheet.shape[1] - pad) % (size + pad) == 0, sheet.shape
    assert "tensorboard --logdir" in console and "demo_report.md" in console
    # every evaluated figure is placed above or at chance, with its interval (the tiny run's are at chance)
    shows = report.split("## What this run shows", 1)[1].split("\n## ", 1)[0]
    with open(os.path.join(workdir, "eval", "report.json")) as f:
        evaluated = json.load(f)
    figures = sum(1 for table in ("table1", "table2", "transfer") for row in evaluated[table] if row.get("vs_chance"))
    assert figures >= 9 and shows.count("95% interval") == figures
    assert shows.count("above chance (p") + shows.count("at chance (p") == figures
    assert "at the `tiny` preset" in report                  # the report names the preset it ran, not `demo`


def test_demo_rerun_keeps_the_first_runs_export_and_time(everything, tmp_path):
    """A re-run that retrains nothing exports no new SavedModel version and keeps the first run's minutes; without
    --config it takes the preset saved in the workdir (tiny), not the demo's default."""
    import shutil

    from tfvgs import demo
    workdir = str(tmp_path / "w")
    shutil.copytree(everything["workdir"], workdir)          # copy2 keeps the models' mtimes
    first = read_json(workdir, "demo_summary.json")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        summary = demo.run(["--workdir", workdir])
    console = out.getvalue()
    assert summary["config"] == "tiny"
    assert "no model changed since the export of the first run" in console
    assert not os.path.exists(os.path.join(workdir, "serving", "audio_visual", "2"))
    assert summary["minutes"] == first["minutes"] and summary["serving"] == first["serving"]
    with open(os.path.join(workdir, "demo_report.md")) as f:
        assert f.readline().strip() == f"# tfvgs demo ({first['minutes']:.1f} min, `tiny` preset)"
    assert f"(the first run took {first['minutes']:.1f})" in console


def test_stage_all_rerun_skips_what_is_done(everything):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train.main(["--stage", "all", "--config", "tiny", "--data_dir", everything["scenes"], "--workdir",
                    everything["workdir"]])
    console = out.getvalue()
    assert console.count("done already, skipped") == 15


def test_config_flags_carry_every_override_to_the_pipelines(tmp_path):
    from tfvgs.config import get_config
    config = get_config("tiny", ["seed=3", "edits.steps=7"])
    flags = curriculum.Curriculum(config, str(tmp_path), str(tmp_path)).config_flags()
    assert flags[:2] == ["--config", "tiny"]
    assert {"seed=3", "edits.steps=7"} == {flags[i + 1] for i in range(2, len(flags), 2)}


def test_config_flags_reproduce_a_renamed_config(tmp_path):
    """`--set name=mine` is a supported override: the pipelines' flags must rebuild that config, not crash on it."""
    from tfvgs.config import get_config
    config = get_config("tiny", ["name=mine", "seed=5"])
    flags = curriculum.Curriculum(config, str(tmp_path), str(tmp_path)).config_flags()
    assert flags[0] == "--config"
    overrides = [flags[i + 1] for i in range(2, len(flags), 2)]
    assert all(flags[i] == "--set" for i in range(2, len(flags), 2))
    assert get_config(flags[1], overrides) == config


def test_a_stage_counts_as_done_only_when_it_finished(tiny_demo, tmp_path):
    """model.keras alone (e.g. killed during its after-training evaluation) is not done; done.json is written last."""
    import shutil

    from tfvgs.config import get_config
    workdir = tmp_path / "w"
    shutil.copytree(os.path.join(tiny_demo["workdir"], "random_edits"), workdir / "random_edits")
    steps = {name: done for name, done, _ in curriculum.Curriculum(get_config("tiny"), "", str(workdir)).steps()}
    assert steps["random_edits"]()
    os.remove(workdir / "random_edits" / "done.json")
    assert (workdir / "random_edits" / "model.keras").exists() and not steps["random_edits"]()


def test_edit_stages_refuse_pairs_drawn_by_another_generator(tiny_demo):
    import keras

    from tfvgs.config import get_config
    from tfvgs.gan import ProgressiveGenerator
    from tfvgs.stages.edits import RandomEditsStage
    config = get_config("tiny")
    stage = RandomEditsStage(config, tiny_demo["workdir"], os.path.join(tiny_demo["workdir"], "data", "pairs"))
    from tfvgs import gan_io
    stage.check_generator_drew_the_data(gan_io.load_generator(tiny_demo["workdir"]))   # the one that drew them
    keras.utils.set_random_seed(123)
    other = ProgressiveGenerator(latent_dim=config.gan.latent_dim, max_resolution=config.world.image_size,
                                 fmap_base=config.gan.fmap_base, fmap_max=config.gan.fmap_max)
    with pytest.raises(ValueError, match="not drawn by"):
        stage.check_generator_drew_the_data(other)


def test_the_no_edits_control_trains_on_from_davenet_and_is_reported_only_once_trained(tiny_demo, tmp_path):
    """The equal-steps control starts from DaveNet's weights, trains edits.steps steps with no edited negative, and
    `evaluate --all` adds its row after the curriculum only when it exists (the tiny demo's report has none)."""
    import shutil

    import tensorflow as tf

    from tfvgs import evaluate
    from tfvgs import workdir as layout
    from tfvgs.config import get_config
    from tfvgs.evaluation import report_tables
    assert "no_edits_control" not in json.dumps(read_json(tiny_demo["workdir"], "eval", "report.json")["stages"])
    workdir = str(tmp_path / "w")
    for part in ("data", "davenet"):            # what the control needs; the other stages stay untrained (cheaper)
        shutil.copytree(os.path.join(tiny_demo["workdir"], part), os.path.join(workdir, part))
    pairs = os.path.join(workdir, "data", "pairs")
    train.main(["--stage", "no_edits_control", "--config", "tiny", "--data_dir", pairs, "--workdir", workdir])
    control = layout.load_model(layout.model_path(workdir, "no_edits_control"))
    davenet = layout.load_model(layout.model_path(workdir, "davenet"))
    assert getattr(control, "negative_source", None) is None
    last = tf.train.latest_checkpoint(os.path.join(workdir, "no_edits_control", "checkpoints"))
    assert last.endswith(f"ckpt-{get_config('tiny').edits.steps}")       # edits.steps, as an edit stage trains
    moved = [not np.allclose(a, b) for a, b in zip(control.get_weights(), davenet.get_weights())]
    assert len(moved) == len(davenet.get_weights()) and any(moved)     # same architecture, trained on from it
    assert not os.path.exists(os.path.join(workdir, "no_edits_control", "edit_success.json"))
    data = os.path.join(workdir, "data")
    evaluate.main(["--workdir", workdir, "--all", "--data_dir", pairs, "--config", "tiny",
                   "--semantic_dir", os.path.join(data, "semantic"), "--transfer_dir", os.path.join(data, "transfer")])
    stages = [s["stage"] for s in read_json(workdir, "eval", "report.json")["stages"]]
    assert stages == [name for name, _ in report_tables.CURRICULUM] + ["no_edits_control"]
    assert "DaveNet, more steps (control)" in open(os.path.join(workdir, "eval", "report.md")).read()


def test_edit_sweep_reports_each_value_of_the_change_threshold(everything, tmp_path):
    from tfvgs.edits import edit_sweep
    workdir = everything["workdir"]
    rows = edit_sweep.sweep(workdir, "targeted_edits", os.path.join(workdir, "data", "pairs"),
                            "min_changed_fraction", [0.0, 0.9], str(tmp_path), pairs=8)
    assert [row["value"] for row in rows] == [0.0, 0.9]
    # any redraw counts at 0; no ablation at the salient cells moves 90% of the pixels
    assert rows[0]["valid_fraction"] == 1.0 and rows[1]["valid_fraction"] == 0.0
    assert 0 < rows[0]["n_edited"] == rows[1]["n_edited"] <= 8     # the same val pairs for each value
    for value in ("0", "0.9"):
        assert os.path.getsize(tmp_path / f"min_changed_fraction={value}" / "edits.png") > 0
    with pytest.raises(ValueError, match="GAN edit stage"):
        edit_sweep.sweep(workdir, "davenet", os.path.join(workdir, "data", "pairs"), "min_changed_fraction",
                         [0.1], str(tmp_path))
