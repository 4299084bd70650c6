"""`python -m tfvgs.evaluate --all`: one report over the curriculum's trained stages, beside paper 000's numbers."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from beam_pipelines import semantic_test_set, transfer_test_set
from tfvgs import config as config_lib
from tfvgs import evaluate, workdir as layout
from tfvgs.evaluation import report_tables

TRAINED = ("davenet", "random_edits")
EDIT_SUCCESS = {"rate": 0.75, "n": 8, "any_change_rate": 0.875,
                "per_family": {"color": {"n": 4, "succeeded": 2, "changed": 3}, "size": {"n": 4, "rate": 1.0}}}


@pytest.fixture(scope="module")
def test_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_all_sets")
    dirs = {"semantic": str(root / "semantic"), "transfer": str(root / "transfer")}
    common = ["--config", "tiny", "--set", "data.num_shards=1"]
    semantic_test_set.run(["--output_dir", dirs["semantic"], "--pairs_per_value", "1", "--voices_per_word", "1",
                           *common])
    transfer_test_set.run(["--output_dir", dirs["transfer"], "--num_scenes", "4", *common])
    return dirs


def _png(path, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)


def make_workdir(root, stages=TRAINED):
    """Untrained tiny dual encoders saved as the named stages, with the stages' other outputs planted beside."""
    from tfvgs.stages.davenet import build_dual_encoder
    workdir = str(root / "w")
    config = config_lib.get_config("tiny")
    for stage in stages:
        os.makedirs(os.path.join(workdir, stage))
        build_dual_encoder(config).save(layout.model_path(workdir, stage))
        config.save(os.path.join(workdir, stage, "config.json"))
    with open(os.path.join(workdir, "random_edits", "edit_success.json"), "w") as f:
        json.dump(EDIT_SUCCESS, f)
    _png(os.path.join(workdir, "random_edits", "edits.png"))
    os.makedirs(os.path.join(workdir, "cluster"))
    with open(os.path.join(workdir, "cluster", "clusters.json"), "w") as f:
        json.dump({"clusters": [[0, 1], [2], [3, 4]]}, f)
    _png(os.path.join(workdir, "cluster", "cluster_000.png"))
    os.makedirs(os.path.join(workdir, "gan", "quality"))
    with open(os.path.join(workdir, "gan", "quality", "quality.json"), "w") as f:
        json.dump({"fid": 12.5, "kid": 0.01, "kid_std": 1.9e-16, "well_formed_fraction": 0.9, "attributes": {}}, f)
    _png(os.path.join(workdir, "gan", "quality", "history.png"))
    return workdir


def run_all(workdir, tiny_world, test_sets=None, *extra):
    argv = ["--workdir", workdir, "--all", "--data_dir", tiny_world["pairs"], "--split", "train",
            "--num_pairs", "8", *extra]
    if test_sets:
        argv += ["--semantic_dir", test_sets["semantic"], "--transfer_dir", test_sets["transfer"]]
    evaluate.main(argv)
    with open(os.path.join(workdir, "eval", "report.json")) as f:
        return json.load(f)


def rows(report, table):
    return {r["stage"]: r for r in report[table]}


def test_all_reports_trained_stages_as_evaluated_alone(tiny_world, test_sets, tmp_path):
    workdir = make_workdir(tmp_path)
    report = run_all(workdir, tiny_world, test_sets)
    curriculum = [s for s, _ in report_tables.CURRICULUM]
    assert [s["stage"] for s in report["stages"]] == curriculum
    assert report["not_trained"] == [s for s in curriculum if s not in TRAINED]
    assert {s["stage"]: s["status"] for s in report["stages"]}["hn_targeted_edits"] == "not trained"
    assert report["caption_style"] == "synthetic" and report["paper_datasets"] == ["synthetic"]

    table1, table2, transfer = rows(report, "table1"), rows(report, "table2"), rows(report, "transfer")
    for stage in TRAINED:
        alone = evaluate.evaluate_stage(workdir, stage, tiny_world["pairs"], split="train", num_pairs=8,
                                        semantic_dir=test_sets["semantic"], transfer_dir=test_sets["transfer"])
        assert table2[stage]["n_pairs"] == alone["n_pairs"] == 8
        assert table2[stage]["chance"] == alone["recall"]["chance"]
        for direction in ("mean", "audio_to_image", "image_to_audio"):
            assert table2[stage]["ours"][direction] == alone["recall"][direction]
        for column in report_tables.TABLE1_COLUMNS:
            assert table1[stage]["ours"][column] == alone["semantic_accuracy"][column]
        assert transfer[stage]["ours"]["accuracy"] == alone["transfer_accuracy"]["accuracy"]
    for stage in report["not_trained"]:
        assert table2[stage]["ours"] is None and table1[stage]["ours"] is None and transfer[stage]["ours"] is None

    # the paper's numbers beside ours (fractions of the percentages it prints)
    assert table2["davenet"]["paper"]["synthetic"] == pytest.approx({"1": 0.149, "5": 0.437, "10": 0.622})
    assert table2["hn_random_edits"]["paper"]["synthetic"]["10"] == pytest.approx(0.999)
    assert table1["hn_targeted_edits"]["paper"]["synthetic"]["mean"] == pytest.approx(0.846)
    assert table1["exact_edits"]["paper"]["synthetic"] is None
    assert transfer["davenet"]["paper"] == pytest.approx(0.54)
    assert transfer["exact_edits"]["paper"] == pytest.approx(0.89)
    edits = rows(report, "edit_success")
    assert edits["random_edits"]["ours"] == EDIT_SUCCESS
    assert edits["targeted_edits"]["ours"] is None and edits["targeted_edits"]["paper"] == pytest.approx(0.88)

    assert report["clusters"] == {"count": 3} and report["gan_quality"]["fid"] == 12.5
    pictures = report["pictures"]
    assert pictures["edits"] == {"random_edits": [os.path.join("..", "random_edits", "edits.png")]}
    assert pictures["matchmaps_stage"] in TRAINED
    eval_dir = os.path.join(workdir, "eval")
    for picture in (pictures["results"], pictures["matchmaps"], *pictures["clusters"], *pictures["gan"]):
        assert Image.open(os.path.join(eval_dir, picture)).size[0] > 0, picture
    markdown = open(os.path.join(eval_dir, "report.md")).read()
    for text in ("not trained", "Exact Edits", "14.9", "| Random Edits | 75.0 | 8 | 87.5 | color 50.0 (n=4), size 100.0 "
                 "(n=4) | — |", "../random_edits/edits.png", "matchmaps.png"):
        assert text in markdown, text
    # the header gives the pairs each stage was evaluated on, not only the cap that was asked for
    used = sorted({r["n_pairs"] for r in report["table2"] if r["n_pairs"] is not None})
    assert (f"{used[0]} pairs (at most" if len(used) == 1 else f"{used[0]}-{used[-1]} pairs") in markdown
    assert "`random` in *per family* counts" in markdown
    # kid_std is explained and left to quality.json, not printed as an unexplained 1.9e-16
    gan_line = next(line for line in markdown.splitlines() if line.startswith("- GAN quality"))
    assert "kid_std 1.9e-16" not in gan_line and "(FID/KID: distances" in gan_line, gan_line


def test_rerun_reuses_up_to_date_metrics(tiny_world, tmp_path):
    workdir = make_workdir(tmp_path)
    quick = ("--matchmap_pairs", "0")
    first = run_all(workdir, tiny_world, None, *quick)
    assert {s["stage"]: s["status"] for s in first["stages"] if s["stage"] in TRAINED} == dict.fromkeys(
        TRAINED, "evaluated")
    metrics_file = os.path.join(workdir, "eval", "davenet", "metrics.json")
    written = os.stat(metrics_file).st_mtime_ns

    again = run_all(workdir, tiny_world, None, *quick)
    assert [s["status"] for s in again["stages"] if s["stage"] in TRAINED] == ["reused", "reused"]
    assert os.stat(metrics_file).st_mtime_ns == written
    assert rows(again, "table2")["davenet"] == rows(first, "table2")["davenet"]
    settings = json.load(open(metrics_file))["settings"]
    assert evaluate.up_to_date_metrics(workdir, "davenet", settings) is not None
    assert evaluate.up_to_date_metrics(workdir, "davenet", {**settings, "similarity": "sisa"}) is None

    # a model saved after its metrics, or --force: evaluated again
    evaluated = os.stat(os.path.join(workdir, "eval", "random_edits", "metrics.json")).st_mtime_ns
    os.utime(layout.model_path(workdir, "random_edits"), ns=(evaluated + 1000, evaluated + 1000))
    statuses = {s["stage"]: s["status"] for s in run_all(workdir, tiny_world, None, *quick)["stages"]}
    assert (statuses["davenet"], statuses["random_edits"]) == ("reused", "evaluated")
    statuses = {s["stage"]: s["status"] for s in run_all(workdir, tiny_world, None, *quick, "--force")["stages"]}
    assert (statuses["davenet"], statuses["random_edits"]) == ("evaluated", "evaluated")
    # a model replaced by an older file (a copy that kept its time, a clock that stepped back): evaluated again too,
    # as the metrics name the file they measured rather than trusting that metrics newer than a model measured it
    evaluated = os.stat(os.path.join(workdir, "eval", "random_edits", "metrics.json")).st_mtime_ns
    os.utime(layout.model_path(workdir, "random_edits"), ns=(evaluated - 10**9, evaluated - 10**9))
    statuses = {s["stage"]: s["status"] for s in run_all(workdir, tiny_world, None, *quick)["stages"]}
    assert (statuses["davenet"], statuses["random_edits"]) == ("reused", "evaluated")


def test_all_without_trained_stages_lists_them_all(tiny_world, tmp_path):
    workdir = str(tmp_path / "empty")
    report = run_all(workdir, tiny_world, None, "--caption_style", "natural")
    assert report["not_trained"] == [s for s, _ in report_tables.CURRICULUM]
    assert report["pictures"]["matchmaps"] is None
    assert os.path.exists(os.path.join(workdir, "eval", "results.png"))
    assert report["caption_style_source"] == "given by --caption_style"
    assert rows(report, "table2")["davenet"]["paper"]["human"] == pytest.approx({"1": 0.084, "5": 0.263,
                                                                                  "10": 0.385})


def test_caption_style_is_read_from_the_data(tiny_world, tmp_path):
    assert evaluate.detect_caption_style(tiny_world["pairs"], "train")[0] == "synthetic"
    bare = tmp_path / "bare"       # no summary.json: the records' caption/style decides
    shutil.copytree(tiny_world["pairs"], bare, ignore=shutil.ignore_patterns("summary.json"))
    style, source = evaluate.detect_caption_style(str(bare), "train")
    assert style == "synthetic" and "records" in source
    assert evaluate.detect_caption_style(str(tmp_path / "nothing"), "train")[1].startswith("assumed")


def planted_metrics(r10, semantic_mean, nan_family=False):
    recall = {"1": r10 / 4, "5": r10 / 2, "10": r10}
    semantic = {"shape": 0.6, "material": float("nan") if nan_family else 0.7, "color": 0.8, "size": 0.9,
                "mean": semantic_mean, "n": {"shape": 3, "material": 0 if nan_family else 2, "color": 8, "size": 2}}
    return {"n_pairs": 100, "recall": {"audio_to_image": recall, "image_to_audio": recall, "mean": recall,
                                       "chance": {"1": 0.01, "5": 0.05, "10": 0.1}},
            "semantic_accuracy": semantic, "settings": {"split": "test"}}


def test_tables_of_planted_metrics_with_human_rows(tmp_path):
    stage_metrics = {s: None for s, _ in report_tables.CURRICULUM}
    stage_metrics.update(davenet=planted_metrics(0.4, 0.75, nan_family=True), hard_negatives=planted_metrics(0.8, 0.6))
    report = report_tables.build_report(stage_metrics, caption_style="natural", caption_style_source="test",
                                        statuses={"davenet": "reused"})
    assert report["paper_datasets"] == ["synthetic", "human"]
    table1 = rows(report, "table1")
    assert table1["davenet"]["paper"]["human"]["shape"] == pytest.approx(0.503)
    assert table1["random_edits"]["paper"]["human"]["material"] == pytest.approx(0.489)
    assert table1["davenet"]["ours"]["mean"] == 0.75
    assert report_tables.best_stage(report) == "hard_negatives"
    assert report["edit_success"][0]["stage"] == "random_edits"

    markdown = report_tables.format_markdown(report)
    assert "| DaveNet | ours | 60.0 | — | 80.0 | 90.0 | 75.0 | 13 |" in markdown
    assert "| | paper, human | 50.3 | 60.8 | 86.8 | 72.2 | 67.6 | |" in markdown
    assert "| Hard Neg | ours | 20.0 | 40.0 | 80.0 |" in markdown
    # one per stage in Tables 1 and 2 (Exact Edits' says "no row")
    assert markdown.count("| paper, human |") == 2 * len(report_tables.CURRICULUM)
    assert "| | paper, human | no row |" in markdown
    for table in markdown.split("\n\n"):                 # every row of a table has as many cells as its header
        lines = [line for line in table.splitlines() if line.startswith("|")]
        assert len({line.count("|") for line in lines}) <= 1, lines
    path = str(tmp_path / "report.json")
    report_tables.write_json(report, path)
    assert json.load(open(path))["table1"][0]["ours"]["material"] is None   # NaN -> null, strict JSON
    report_tables.plot_results(report, str(tmp_path / "results.png"))
    assert Image.open(tmp_path / "results.png").size[0] > 0
    with pytest.raises(ValueError, match="caption_style"):
        report_tables.build_report(stage_metrics, caption_style="human")
