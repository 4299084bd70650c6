"""Evaluates trained stages: retrieval recall@1/5/10 in both directions on held-out pairs (paper 000 Table 2), and
with the test sets the semantic accuracy (Table 1) and the transfer accuracy (sec. 6.5).

    python -m tfvgs.evaluate --workdir W --data_dir PAIRS [--stage davenet] [--num_pairs 500] [--similarity misa]
    python -m tfvgs.evaluate --workdir W --all --data_dir PAIRS [--semantic_dir S] [--transfer_dir T] [--force]
    python -m tfvgs.evaluate --workdir W --data_dir PAIRS --semantic_dir S --words_dir RECORDED

--words_dir also scores the image pairs of S against other spoken words: recordings brought in by
`beam_pipelines.import_words` (people's voices instead of espeak-ng's), as "semantic_accuracy_recorded" beside the
set's own "semantic_accuracy", with each speaker's accuracy ("per_speaker"). Pairs of values nobody recorded are left
out and listed; the mean over families is given only when every family was recorded.

One stage: writes W/eval/<stage>/metrics.json ({"n_pairs", "recall": {"audio_to_image": {"1","5","10"},
"image_to_audio", "mean", "chance"}, "settings", ...}) and a readable report.md beside it. audio_to_image means the
caption is the query and the images are ranked.

--all: evaluates every stage of the curriculum whose model.keras exists (reusing W/eval/<stage>/metrics.json when it
measured the model.keras there now - its time and size - with the same settings, unless --force), then writes
W/eval/report.md and report.json with paper 000's Tables 1-2, the transfer accuracy and the edit success rates
beside the paper's numbers, and the pictures results.png (our numbers per stage, the paper's as markers) and
matchmaps.png (matchmap overlays of the best stage on held-out pairs), with links to the edit, cluster and GAN
pictures the stages wrote. Stages without a model are listed as "not trained".
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tfvgs import cli, console, config as config_lib, workdir as layout
from tfvgs.evaluation import report_tables

PAPER_TABLE2_SYNTHETIC = {report_tables.ROW_NAMES[s]: v for s, v in report_tables.PAPER_TABLE2["synthetic"].items()}
MATCHMAP_PAIRS = 4


def load_stage_model(workdir: str, stage: str, config: config_lib.Config, from_checkpoint: bool = False):
    """The stage's final model.keras, or (with from_checkpoint, e.g. while it still trains) its latest checkpoint."""
    if not from_checkpoint:
        return layout.load_step_model(workdir, stage, compile=True, hint=", or pass --from_checkpoint")
    import tensorflow as tf

    from tfvgs import stages, training
    checkpoint_dir = layout.checkpoint_dir(workdir, stage)
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is None:
        raise FileNotFoundError(f"no checkpoint of stage {stage!r} in {checkpoint_dir}")
    step = stages.get_stage(stage)(config, workdir, data_dir="")
    model = step.build_model()
    plateau = training.PlateauState() if step.uses_plateau else None   # saved beside the weights (DaveNet's schedule)
    training.check_plateau_state(latest, plateau is not None)
    training.model_checkpoint(model, plateau).restore(latest).assert_consumed()
    print(f"evaluating checkpoint {latest}")
    return model


def _normalized_path(path: Optional[str]) -> Optional[str]:
    if not path:
        return None
    return path.rstrip("/") if "://" in path else os.path.abspath(path)


def eval_settings(data_dir: str, *, split: str, num_pairs: int, similarity: str, semantic_dir: Optional[str],
                  transfer_dir: Optional[str], from_checkpoint: bool = False,
                  words_dir: Optional[str] = None) -> Dict[str, Any]:
    """What makes two evaluations of one model comparable; stored in metrics.json to decide whether to re-run.
    ("words_dir" only when given, so metrics written before it existed still compare equal.)"""
    settings = {"data_dir": _normalized_path(data_dir), "split": split, "num_pairs": int(num_pairs),
                "similarity": similarity, "semantic_dir": _normalized_path(semantic_dir),
                "transfer_dir": _normalized_path(transfer_dir), "from_checkpoint": bool(from_checkpoint)}
    if words_dir:
        settings["words_dir"] = _normalized_path(words_dir)
    return settings


def _resolve(workdir: str, stage: str, config: Optional[config_lib.Config], overrides: Sequence[str],
             num_pairs: Optional[int], similarity: Optional[str]) -> Tuple[config_lib.Config, int, str]:
    config = layout.step_config(workdir, stage, config)
    if overrides:
        config = config_lib.apply_overrides(config, overrides)
    return config, int(num_pairs or config.train.eval_pairs), similarity or config.model.eval_similarity


def _semantic_section(words: str, s: Dict[str, Any]) -> List[str]:
    """The lines of one semantic result: all speakers, then each speaker, then the pairs left out."""
    lines = [f"Words: {words} ({s.get('words', '?')} words); each cell is accuracy +- its 95% interval (n pairs); "
             "the mean needs all four families.", "",
             "| speaker | shape | material | color | size | mean |", "|---|---|---|---|---|---|",
             _semantic_cells("all", s)]
    lines += [_semantic_cells(speaker, r) for speaker, r in sorted(s.get("per_speaker", {}).items())]
    if s.get("skipped_pairs"):
        lines += ["", "Pairs left out, their value has no recorded word: "
                  + ", ".join(f"{k} ({n})" for k, n in s["skipped_pairs"].items()) + "."]
    return lines + [""]


def _semantic_cells(who: str, summary: Dict[str, Any]) -> str:
    """A markdown row "| who | shape | ... | mean |" of accuracy +- 95% half-width (n) per family."""
    def cell(key: str) -> str:
        n = sum(summary["n"].values()) if key == "mean" else summary["n"].get(key, 0)
        if not n or summary.get(key) is None:
            return "-"
        ci = summary.get("ci95", {}).get(key)
        spread = f" +- {100 * ci:.1f}" if ci is not None else ""
        return f"{100 * summary[key]:.1f}{spread} ({n})"
    return f"| {who} | " + " | ".join(cell(k) for k in report_tables.TABLE1_COLUMNS) + " |"


def write_report(path: str, stage: str, metrics: dict) -> None:
    """The readable report.md of one stage's metrics, with the paper's row for the stage where there is one."""
    r = metrics["recall"]
    row = report_tables.ROW_NAMES.get(stage, stage)
    lines = [f"# Evaluation of stage `{stage}`", "",
             f"{metrics['n_pairs']} held-out pairs of split `{metrics['split']}`, similarity "
             f"{metrics['similarity'].upper()}, {metrics['seconds']:.1f} s.", "",
             "| direction | R@1 | R@5 | R@10 |", "|---|---|---|---|"]
    for name in ("audio_to_image", "image_to_audio", "mean", "chance"):
        lines.append(f"| {name} | " + " | ".join(f"{100 * r[name][k]:.1f}" for k in ("1", "5", "10")) + " |")
    lines += ["", "Paper 000 Table 2 (synthetic captions, mean of both directions, 500 pairs): "
              + "; ".join(f"{k} {v[0]}/{v[1]}/{v[2]}" for k, v in PAPER_TABLE2_SYNTHETIC.items()), ""]
    if "semantic_accuracy" in metrics:
        paper = report_tables.PAPER_TABLE1["synthetic"]
        rows = [(row, paper[stage])] if stage in paper and stage != "davenet" else []
        rows = [("DaveNet", paper["davenet"])] + rows + [("HN+Targeted", paper["hn_targeted_edits"])]
        lines += ["## Semantic accuracy (isolated spoken attribute words; chance 50%)", ""]
        lines += _semantic_section("the semantic set's own", metrics["semantic_accuracy"])
        if "semantic_accuracy_recorded" in metrics:
            words_dir = metrics.get("settings", {}).get("words_dir")
            lines += ["### The same image pairs with recorded words", ""]
            lines += _semantic_section(f"`{words_dir}` (imported recordings)", metrics["semantic_accuracy_recorded"])
        lines += ["Paper 000 Table 1, synthetic captions: "
                  + "; ".join(f"{name} " + " / ".join(map(str, values)) for name, values in rows) + ".", ""]
    if "transfer_accuracy" in metrics:
        t = metrics["transfer_accuracy"]
        lines += [f"Transfer accuracy (original vs single-attribute renderer edit): {100 * t['accuracy']:.1f}% over "
                  f"{t['n']} scenes (chance 50%; paper 000 sec. 6.5: 54% DaveNet on CLEVR, 59% GAN edits, 89% "
                  "renderer edits).", ""]
    import tensorflow as tf
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("\n".join(lines))


def evaluate_stage(workdir: str, stage: str, data_dir: str, *, split: str = "test", num_pairs: Optional[int] = None,
                   similarity: Optional[str] = None, semantic_dir: Optional[str] = None,
                   transfer_dir: Optional[str] = None, config: Optional[config_lib.Config] = None,
                   overrides: Sequence[str] = (), from_checkpoint: bool = False,
                   force: bool = False, words_dir: Optional[str] = None) -> Dict[str, Any]:
    """Evaluates one stage's model and writes W/eval/<stage>/metrics.json and report.md; returns the metrics.

    The stage's saved config.json is used when it exists, else `config`; `overrides` ("section.field=value") apply
    on top. `num_pairs` and `similarity` default to the config's train.eval_pairs and model.eval_similarity.
    A metrics.json of the same model with semantic or transfer results this evaluation would not compute is not
    overwritten (ValueError before any work) unless `force`: eval/report.md is built from those files.
    `words_dir` (with `semantic_dir`): also the semantic test with the spoken words of `words_dir`
    ("semantic_accuracy_recorded", per speaker).
    """
    from tfvgs import data
    from tfvgs.evaluation import retrieval
    if words_dir and not semantic_dir:
        raise ValueError(f"--words_dir needs --semantic_dir (the image pairs its words are scored on). Received: "
                         f"--words_dir {words_dir}, --semantic_dir None")
    # --split val reads the transfer set's val twin, so that choosing on val never reads a test scene; test (and the
    # train-pair diagnostic) read its test split, the renderer-edit training set being no held-out set
    transfer_split = "val" if split == "val" else "test"
    if transfer_dir:
        try:      # before any work
            data.list_shards(transfer_dir, transfer_split)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"--transfer_dir {transfer_dir} has no {transfer_split!r} split, which --split "
                                    f"{split} reads (python -m beam_pipelines.transfer_test_set --split "
                                    f"{transfer_split}). Received: {error}") from None
    config, num_pairs, kind = _resolve(workdir, stage, config, overrides, num_pairs, similarity)
    settings = eval_settings(data_dir, split=split, num_pairs=num_pairs, similarity=kind, semantic_dir=semantic_dir,
                             transfer_dir=transfer_dir, from_checkpoint=from_checkpoint, words_dir=words_dir)
    fingerprint = model_fingerprint(workdir, stage)    # before loading: a model saved meanwhile counts as new
    dropped = [] if force else results_it_would_drop(workdir, stage, fingerprint, semantic_dir=semantic_dir,
                                                     transfer_dir=transfer_dir)
    if dropped:
        path = layout.metrics_path(workdir, stage)
        held = ", ".join(f"{key} ({flag} {where})" for key, flag, where in dropped)
        raise ValueError(f"{path} holds {held} of this same model, which this evaluation would drop. Pass "
                         + " and ".join(f"{flag} {where}" for _, flag, where in dropped)
                         + " too, or --force to overwrite. Received: "
                         + ", ".join(f"{flag} None" for _, flag, _ in dropped))
    model = load_stage_model(workdir, stage, config, from_checkpoint)
    start = time.perf_counter()
    dataset = data.pairs_dataset(data_dir, split, config, batch_size=min(64, num_pairs))
    metrics = retrieval.evaluate_retrieval(model, dataset, num_pairs, kind)
    if semantic_dir or transfer_dir:
        from tfvgs.evaluation import semantic_eval
        if semantic_dir:
            metrics["semantic_accuracy"] = semantic_eval.semantic_accuracy(model, semantic_dir, semantic_dir, config,
                                                                           kind=kind)
            if words_dir:     # its own key: Table 1 stays the set's own words, comparable with the paper's
                metrics["semantic_accuracy_recorded"] = semantic_eval.semantic_accuracy(
                    model, words_dir, semantic_dir, config, kind=kind, missing_words="skip")
        if transfer_dir:
            metrics["transfer_accuracy"] = semantic_eval.transfer_accuracy(model, transfer_dir, config,
                                                                           split=transfer_split, kind=kind)
    metrics.update({"stage": stage, "split": split, "seconds": time.perf_counter() - start, "settings": settings,
                    "model_file": fingerprint})
    if metrics["n_pairs"] < num_pairs:
        print(f"note: only {metrics['n_pairs']} pairs in split {split!r} (asked for {num_pairs})")
    import tensorflow as tf
    out_dir = layout.eval_dir(workdir, stage)
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(layout.metrics_path(workdir, stage), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    write_report(os.path.join(out_dir, "report.md"), stage, metrics)
    m = metrics["recall"]["mean"]
    print(f"[evaluate {stage}] {metrics['n_pairs']} pairs, {kind}: mean R@1 {100 * m['1']:.1f} "
          f"R@5 {100 * m['5']:.1f} R@10 {100 * m['10']:.1f} -> {layout.metrics_path(workdir, stage)}", flush=True)
    return metrics


def model_fingerprint(workdir: str, stage: str) -> Optional[Dict[str, int]]:
    """{"mtime_nsec", "length"} of the stage's model.keras (None when missing): which file a metrics.json measured.

    Compared for equality, not "metrics newer than model": two files' timestamps are only as ordered as the clock
    and the filesystem's granularity, and a rerun was once seen re-evaluating a model it had just measured."""
    import tensorflow as tf
    path = layout.model_path(workdir, stage)
    if not tf.io.gfile.exists(path):
        return None
    stat = tf.io.gfile.stat(path)
    return {"mtime_nsec": int(stat.mtime_nsec), "length": int(stat.length)}


def metrics_of_this_model(workdir: str, stage: str,
                          fingerprint: Optional[Dict[str, int]]) -> Optional[Dict[str, Any]]:
    """The stage's metrics.json if it measured the model file `fingerprint` (model_fingerprint), else None."""
    import tensorflow as tf
    path = layout.metrics_path(workdir, stage)
    if fingerprint is None or not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        metrics = json.load(f)
    return metrics if metrics.get("model_file") == fingerprint else None


def results_it_would_drop(workdir: str, stage: str, fingerprint: Optional[Dict[str, int]], *,
                          semantic_dir: Optional[str], transfer_dir: Optional[str]) -> list:
    """[(key, flag, its earlier dir)] for each result of the stage's metrics.json, made on the model file
    `fingerprint`, that an evaluation without that flag would not compute again."""
    metrics = metrics_of_this_model(workdir, stage, fingerprint)
    if metrics is None:
        return []
    earlier = metrics.get("settings", {})
    return [(key, flag, earlier.get(setting)) for key, flag, setting, given in (
        ("semantic_accuracy", "--semantic_dir", "semantic_dir", semantic_dir),
        ("transfer_accuracy", "--transfer_dir", "transfer_dir", transfer_dir)) if key in metrics and not given]


def up_to_date_metrics(workdir: str, stage: str, settings: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The stage's metrics.json if it measured the model.keras there now and was made with `settings`, else None."""
    metrics = metrics_of_this_model(workdir, stage, model_fingerprint(workdir, stage))
    return metrics if metrics is not None and metrics.get("settings") == settings else None


def detect_caption_style(data_dir: str, split: str, max_records: int = 64) -> Tuple[str, str]:
    """(style, where it was read): the "style" of the pipeline's summary.json in `data_dir`, else the most common
    caption/style of the split's first `max_records` records, else "synthetic" (an assumption, and said so)."""
    from collections import Counter

    import tensorflow as tf

    from tfvgs import data, schema
    summary_path = os.path.join(data_dir, "summary.json")
    if tf.io.gfile.exists(summary_path):
        with tf.io.gfile.GFile(summary_path) as f:
            style = json.load(f).get("style")
        if style in report_tables.CAPTION_STYLES:
            return style, f"from {summary_path}"
    try:
        files = data.list_shards(data_dir, split)
    except (FileNotFoundError, ValueError):
        files = []
    styles = Counter()
    if files:
        for record in tf.data.TFRecordDataset(files).take(max_records):
            style = schema.read_pair_record(record.numpy())["caption_style"]
            if style in report_tables.CAPTION_STYLES:
                styles[style] += 1
    if styles:
        return styles.most_common(1)[0][0], f"from the caption/style of {sum(styles.values())} {split} records"
    return "synthetic", "assumed: neither summary.json nor the records say"


def write_matchmaps(workdir: str, stage: str, data_dir: str, split: str, config: config_lib.Config, path: str,
                    count: int = MATCHMAP_PAIRS) -> None:
    """matchmap overlays (`tfvgs.summaries.heatmap_overlay`) of `stage`'s model on the first `count` pairs."""
    from tfvgs import data, summaries
    model = load_stage_model(workdir, stage, config)
    batch = next(iter(data.pairs_dataset(data_dir, split, config, batch_size=count)))
    image_feats, audio_feats, frames = model({k: batch[k] for k in ("image", "logmel", "nframes")}, training=False)
    overlays = summaries.heatmap_overlay(batch["image"], image_feats, audio_feats, frames).numpy()
    images = data.image_to_uint8(batch["image"]).numpy()
    captions = [c.decode() for c in batch["caption"].numpy()]
    report_tables.plot_matchmaps(images, overlays, captions, path,
                                 title=f"{report_tables.ROW_NAMES.get(stage, stage)} ({stage}), split {split}")


def evaluate_all(workdir: str, data_dir: str, *, split: str = "test", num_pairs: Optional[int] = None,
                 similarity: Optional[str] = None, semantic_dir: Optional[str] = None,
                 transfer_dir: Optional[str] = None, config: Optional[config_lib.Config] = None,
                 overrides: Sequence[str] = (), caption_style: Optional[str] = None, force: bool = False,
                 stages: Optional[Sequence[str]] = None, matchmap_pairs: int = MATCHMAP_PAIRS,
                 words_dir: Optional[str] = None) -> Dict[str, Any]:
    """Evaluates every stage of `stages` (default: the curriculum, then the controls that are trained) that has a
    model.keras, reusing up-to-date metrics unless `force`, and writes W/eval/report.md, report.json, results.png and
    matchmaps.png. Returns the report dict (as report.json)."""
    import tensorflow as tf
    trained_controls = [s for s, _ in report_tables.CONTROLS if tf.io.gfile.exists(layout.model_path(workdir, s))]
    stages = list(stages or [s for s, _ in report_tables.CURRICULUM] + trained_controls)
    stage_metrics: Dict[str, Optional[Dict[str, Any]]] = {}
    statuses, metrics_paths, configs = {}, {}, {}
    for stage in stages:
        if not tf.io.gfile.exists(layout.model_path(workdir, stage)):
            print(f"[evaluate --all] {stage}: not trained ({layout.model_path(workdir, stage)} is missing)",
                  flush=True)
            stage_metrics[stage] = None
            continue
        stage_cfg, n, kind = _resolve(workdir, stage, config, overrides, num_pairs, similarity)
        configs[stage] = stage_cfg
        settings = eval_settings(data_dir, split=split, num_pairs=n, similarity=kind, semantic_dir=semantic_dir,
                                 transfer_dir=transfer_dir, words_dir=words_dir)
        metrics = None if force else up_to_date_metrics(workdir, stage, settings)
        if metrics is not None:
            print(f"[evaluate --all] {stage}: metrics up to date, reused (--force re-evaluates)", flush=True)
            statuses[stage] = "reused"
        else:
            metrics = evaluate_stage(workdir, stage, data_dir, split=split, num_pairs=n, similarity=kind,
                                     semantic_dir=semantic_dir, transfer_dir=transfer_dir, config=stage_cfg,
                                     force=force, words_dir=words_dir)
            statuses[stage] = "evaluated"
        stage_metrics[stage] = metrics
        metrics_paths[stage] = layout.metrics_path(workdir, stage)

    if caption_style:
        style, source = caption_style, "given by --caption_style"
    else:
        style, source = detect_caption_style(data_dir, split)
    out_dir = os.path.join(workdir, "eval")
    tf.io.gfile.makedirs(out_dir)

    def relative(path: str) -> str:      # report.md and report.json link relative to W/eval, so W can move
        return os.path.relpath(path, out_dir)

    artifacts = report_tables.collect_artifacts(workdir, stages)
    evaluated = [m for m in stage_metrics.values() if m is not None]
    settings = dict(evaluated[0]["settings"]) if evaluated else eval_settings(
        data_dir, split=split, num_pairs=num_pairs or 0, similarity=similarity or "", semantic_dir=semantic_dir,
        transfer_dir=transfer_dir, words_dir=words_dir)
    report = report_tables.build_report(
        stage_metrics, caption_style=style, caption_style_source=source, settings=settings, statuses=statuses,
        artifacts=artifacts, metrics_paths={s: relative(p) for s, p in metrics_paths.items()})
    pictures: Dict[str, Any] = {
        "results": "results.png", "matchmaps": None, "matchmaps_stage": None,
        "edits": {s: [relative(p) for p in paths] for s, paths in artifacts["edits_pictures"].items()},
        "clusters": [relative(p) for p in artifacts["cluster_pictures"]],
        "gan": [relative(p) for p in artifacts["gan_pictures"]]}
    report_tables.plot_results(report, os.path.join(out_dir, pictures["results"]))
    best = report_tables.best_stage(report)
    if best is not None and matchmap_pairs > 0:
        pictures["matchmaps"], pictures["matchmaps_stage"] = "matchmaps.png", best
        write_matchmaps(workdir, best, data_dir, split, configs[best], os.path.join(out_dir, "matchmaps.png"),
                        matchmap_pairs)
    report["pictures"] = pictures
    report_tables.write_json(report, os.path.join(out_dir, "report.json"))
    report_tables.write_markdown(report, os.path.join(out_dir, "report.md"))
    trained = len(stages) - len(report["not_trained"])
    print(f"[evaluate --all] {trained} of {len(stages)} stages trained -> {out_dir}/report.md", flush=True)
    return report


def main(argv: Optional[Sequence[str]] = None) -> dict:
    console.quiet_startup()
    parser = cli.command_parser("tfvgs.evaluate", __doc__)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--data_dir", required=True, help="spoken-pair TFRecords with the held-out split")
    parser.add_argument("--stage", default="davenet",
                        choices=[name for name, _ in report_tables.CURRICULUM + report_tables.CONTROLS],
                        help="a trained audio-visual stage of W (default: davenet); the gan, segmenter and cluster "
                             "stages write their own reports")
    parser.add_argument("--all", action="store_true",
                        help="evaluate every trained stage of the curriculum and write W/eval/report.md")
    parser.add_argument("--force", action="store_true",
                        help="with --all: re-evaluate up-to-date stages too; both: overwrite a metrics.json whose "
                             "semantic or transfer results this evaluation would drop")
    parser.add_argument("--caption_style", default=None, choices=report_tables.CAPTION_STYLES,
                        help="with --all: which paper rows to compare with (default: read from DATA's summary.json "
                             "or records; natural adds the paper's human-caption rows)")
    parser.add_argument("--matchmap_pairs", type=int, default=MATCHMAP_PAIRS,
                        help="with --all: held-out pairs in matchmaps.png (0: no matchmap picture)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--num_pairs", type=int, default=None, help="default: config train.eval_pairs (500)")
    parser.add_argument("--from_checkpoint", action="store_true",
                        help="evaluate the stage's latest checkpoint instead of its final model.keras")
    parser.add_argument("--similarity", default=None, choices=("sisa", "misa", "sima"),
                        help="default: config model.eval_similarity (misa)")
    parser.add_argument("--semantic_dir", default=None,
                        help="output of beam_pipelines.semantic_test_set: adds semantic_accuracy (paper 000 Table 1)")
    parser.add_argument("--transfer_dir", default=None,
                        help="output of beam_pipelines.transfer_test_set: adds transfer_accuracy (paper 000 sec. 6.5); "
                             "--split val reads its val split (transfer_test_set --split val), any other its test "
                             "split")
    parser.add_argument("--words_dir", default=None,
                        help="with --semantic_dir: also score its image pairs against these spoken words "
                             "(output of beam_pipelines.import_words: your recordings) as "
                             "semantic_accuracy_recorded")
    config_lib.add_config_flags(parser, workdir_flag="--workdir")
    args = parser.parse_args(argv)
    if args.all and args.from_checkpoint:
        parser.error("--all evaluates final models only; drop --from_checkpoint")
    if args.words_dir and not args.semantic_dir:
        parser.error(f"--words_dir needs --semantic_dir (the image pairs its words are scored on). Received: "
                     f"--words_dir {args.words_dir}")
    common = dict(split=args.split, num_pairs=args.num_pairs, similarity=args.similarity,
                  semantic_dir=args.semantic_dir, transfer_dir=args.transfer_dir, words_dir=args.words_dir,
                  config=config_lib.config_from_args(args, saved=layout.saved_config(args.workdir)),
                  overrides=args.overrides)
    from tfvgs import data
    try:
        data.check_data_dir(args.data_dir, ("pairs",), (args.split,), "evaluate")
    except data.DataDirError as e:           # a usage error: one line, not a traceback
        print(f"[evaluate] error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    if args.all:
        return evaluate_all(args.workdir, args.data_dir, caption_style=args.caption_style, force=args.force,
                            matchmap_pairs=args.matchmap_pairs, **common)
    return evaluate_stage(args.workdir, args.stage, args.data_dir, from_checkpoint=args.from_checkpoint,
                          force=args.force, **common)


if __name__ == "__main__":
    main()
