"""The curriculum report of `python -m tfvgs.evaluate --all`: paper 000's published numbers, the report's rows
beside them, its Markdown and its figures.

Everything here works on plain dicts (the per-stage `metrics.json` of `tfvgs.evaluate` and the JSON files the
stages write), so the tables can be built and checked without a model. Rates are fractions in [0, 1] everywhere in
`report.json`, paper numbers included (the paper prints percentages; they are divided by 100 here); the Markdown
prints percentages.

    report = build_report({"davenet": metrics, "random_edits": None, ...}, caption_style="synthetic", ...)
    write_markdown(report, "W/eval/report.md"); plot_results(report, "W/eval/results.png")
"""
from __future__ import annotations

import json
import os
import textwrap
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tfvgs.evaluation import significance
from tfvgs.plotting import pyplot, save_figure

# The curriculum in report order, with the row names of paper 000 Tables 1-2 (exact_edits has no row there: it is
# the renderer-edit upper bound of sec. 6.5).
CURRICULUM: Tuple[Tuple[str, str], ...] = (
    ("davenet", "DaveNet"), ("hard_negatives", "Hard Neg"), ("random_edits", "Random Edits"),
    ("targeted_edits", "Targeted Edits"), ("hn_random_edits", "HN+Random"), ("hn_targeted_edits", "HN+Targeted"),
    ("exact_edits", "Exact Edits"))
# Optional stages outside `--stage all`, reported (after the curriculum) only when trained: the equal-steps control.
CONTROLS: Tuple[Tuple[str, str], ...] = (("no_edits_control", "DaveNet, more steps (control)"),)
ROW_NAMES: Dict[str, str] = dict(CURRICULUM + CONTROLS)
# Stages that make edited negatives and may write <stage>/edit_success.json.
EDIT_STAGES = ("random_edits", "targeted_edits", "hn_random_edits", "hn_targeted_edits", "exact_edits")

CAPTION_STYLES = ("synthetic", "natural")

TABLE1_COLUMNS = ("shape", "material", "color", "size", "mean")    # paper 000 Table 1's column order
RECALL_KS = ("1", "5", "10")

# Paper 000 Table 1 (semantic accuracy, %): shape, material, color, size, mean.
PAPER_TABLE1 = {
    "human": {"davenet": (50.3, 60.8, 86.8, 72.2, 67.6), "random_edits": (52.0, 48.9, 87.8, 91.3, 70.0),
              "targeted_edits": (54.1, 63.0, 86.2, 91.3, 73.7), "hard_negatives": (53.6, 60.8, 88.4, 87.8, 72.7),
              "hn_random_edits": (54.8, 63.0, 87.9, 87.8, 73.4),
              "hn_targeted_edits": (56.2, 67.4, 87.9, 88.7, 75.1)},
    "synthetic": {"davenet": (72.6, 63.3, 51.1, 98.0, 71.2), "random_edits": (70.9, 97.8, 54.0, 96.9, 79.9),
                  "targeted_edits": (69.3, 97.5, 57.9, 95.4, 80.1), "hard_negatives": (75.6, 91.3, 62.2, 97.6, 81.7),
                  "hn_random_edits": (73.3, 94.5, 70.5, 95.1, 83.3),
                  "hn_targeted_edits": (77.7, 96.9, 66.6, 97.1, 84.6)},
}
# Paper 000 Table 2 (recall %, mean of both directions, 500 held-out pairs): R@1, R@5, R@10.
PAPER_TABLE2 = {
    "human": {"davenet": (8.4, 26.3, 38.5), "random_edits": (12.5, 33.8, 49.8), "targeted_edits": (14.1, 37.2, 52.2),
              "hard_negatives": (20.5, 45.1, 60.7), "hn_random_edits": (19.3, 48.3, 63.0),
              "hn_targeted_edits": (20.3, 49.3, 61.9)},
    "synthetic": {"davenet": (14.9, 43.7, 62.2), "random_edits": (60.6, 89.0, 95.1),
                  "targeted_edits": (75.1, 95.5, 98.5), "hard_negatives": (73.4, 94.6, 97.6),
                  "hn_random_edits": (94.8, 99.7, 99.9), "hn_targeted_edits": (93.4, 99.6, 99.9)},
}
# Paper 000 sec. 6.5 (transfer to renderer images, %, chance 50): DaveNet 54 (trained on CLEVR renderings), a model
# trained with GAN edits 59 (the paper does not say which edit model: shown beside every GAN-edit stage), renderer
# edits 89 (the upper bound).
PAPER_TRANSFER = {"davenet": 54.0, "random_edits": 59.0, "targeted_edits": 59.0, "hn_random_edits": 59.0,
                  "hn_targeted_edits": 59.0, "exact_edits": 89.0}
# Paper 000 sec. 6.4: "our system successfully changes the caption content in 88% of the edits" (targeted edits).
PAPER_EDIT_SUCCESS = {"targeted_edits": 88.0, "hn_targeted_edits": 88.0}

NOT_TRAINED = "not trained"


def _fraction(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value / 100.0, 6)


def paper_table1(stage: str, dataset: str) -> Optional[Dict[str, float]]:
    """Paper 000 Table 1's row for `stage` in `dataset` ("synthetic" | "human") as fractions, or None."""
    row = PAPER_TABLE1[dataset].get(stage)
    return None if row is None else {c: _fraction(v) for c, v in zip(TABLE1_COLUMNS, row)}


def paper_table2(stage: str, dataset: str) -> Optional[Dict[str, float]]:
    """Paper 000 Table 2's mean recall of `stage` in `dataset` as fractions {"1", "5", "10"}, or None."""
    row = PAPER_TABLE2[dataset].get(stage)
    return None if row is None else {k: _fraction(v) for k, v in zip(RECALL_KS, row)}


def paper_datasets(caption_style: str) -> Tuple[str, ...]:
    """The paper datasets to print beside our rows: synthetic always, human too for natural captions."""
    if caption_style not in CAPTION_STYLES:
        raise ValueError(f"`caption_style` must be one of {CAPTION_STYLES}. Received: caption_style={caption_style!r}")
    return ("synthetic",) if caption_style == "synthetic" else ("synthetic", "human")


# ---------------------------------------------------------------------------------------------------------------
# Files the stages write besides their models

def _read_json(path: str) -> Optional[Any]:
    import tensorflow as tf
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _glob(pattern: str) -> List[str]:
    import tensorflow as tf
    return sorted(tf.io.gfile.glob(pattern))


def _count_clusters(clusters: Any) -> Optional[int]:
    if isinstance(clusters, Mapping):
        clusters = clusters.get("clusters", clusters)
    return len(clusters) if isinstance(clusters, (list, tuple, Mapping)) else None


def collect_artifacts(workdir: str, stages: Sequence[str]) -> Dict[str, Any]:
    """What the stages left for the report, as read from disk: edit success rates and edit pictures per stage,
    cluster summary and pictures, GAN quality and its plots, segmenter metrics. Paths as found under `workdir`;
    what is missing is absent (or None)."""
    found: Dict[str, Any] = {"edit_success": {}, "edits_pictures": {}}
    for stage in stages:
        success = _read_json(os.path.join(workdir, stage, "edit_success.json"))
        if success is not None:
            found["edit_success"][stage] = success
        pictures = _glob(os.path.join(workdir, stage, "edits*.png"))
        if pictures:
            found["edits_pictures"][stage] = pictures
    clusters = _read_json(os.path.join(workdir, "cluster", "clusters.json"))
    found["clusters"] = None if clusters is None else {"count": _count_clusters(clusters)}
    found["cluster_pictures"] = _glob(os.path.join(workdir, "cluster", "*.png"))
    quality = _read_json(os.path.join(workdir, "gan", "quality", "quality.json"))
    found["gan_quality"] = None if quality is None else {
        k: quality[k] for k in ("fid", "kid", "kid_std", "well_formed_fraction", "real_well_formed_fraction",
                                "images_shown", "num_samples") if k in quality}
    found["gan_pictures"] = _glob(os.path.join(workdir, "gan", "quality", "*.png"))
    segmenter = _read_json(os.path.join(workdir, "segmenter", "eval.json"))
    found["segmenter"] = None if segmenter is None else {
        k: v for k, v in segmenter.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    return found


# ---------------------------------------------------------------------------------------------------------------
# The report as data

def _semantic_row(metrics: Optional[Mapping]) -> Optional[Dict[str, Any]]:
    s = (metrics or {}).get("semantic_accuracy")
    if s is None:
        return None
    row = {c: s.get(c) for c in TABLE1_COLUMNS}
    row["n"] = s.get("n", {})
    return row


def _recall_row(metrics: Optional[Mapping]) -> Optional[Dict[str, Any]]:
    if metrics is None:
        return None
    r = metrics["recall"]
    return {d: dict(r[d]) for d in ("mean", "audio_to_image", "image_to_audio")}


def _semantic_vs_chance(row: Optional[Mapping]) -> Optional[Dict[str, Any]]:
    """The mean accuracy against 50%, over every image pair of the four families."""
    if not row or row.get("mean") is None:
        return None
    trials = sum(int(v) for v in (row.get("n") or {}).values())
    return significance.above_chance(row["mean"], trials, 0.5) if trials else None


def build_report(stage_metrics: Mapping[str, Optional[Mapping]], *, caption_style: str,
                 caption_style_source: str = "", settings: Optional[Mapping] = None,
                 statuses: Optional[Mapping[str, str]] = None, artifacts: Optional[Mapping] = None,
                 metrics_paths: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """The report as a JSON-able dict.

    `stage_metrics` maps every stage of the report, in order, to its metrics (the dict `tfvgs.evaluate` writes to
    metrics.json) or None when it is not trained. `statuses` says per stage how its metrics were obtained
    ("evaluated" | "reused"); `artifacts` is `collect_artifacts`' result.
    """
    datasets = paper_datasets(caption_style)
    statuses, artifacts, metrics_paths = statuses or {}, artifacts or {}, metrics_paths or {}
    report: Dict[str, Any] = {
        "caption_style": caption_style, "caption_style_source": caption_style_source,
        "paper_datasets": list(datasets), "settings": dict(settings or {}),
        "stages": [], "not_trained": [], "table1": [], "table2": [], "transfer": [], "edit_success": []}
    for stage, metrics in stage_metrics.items():
        row = ROW_NAMES.get(stage, stage)
        trained = metrics is not None
        report["stages"].append({"stage": stage, "row": row,
                                 "status": statuses.get(stage, "evaluated") if trained else NOT_TRAINED,
                                 "metrics": metrics_paths.get(stage)})
        if not trained:
            report["not_trained"].append(stage)
        common = {"stage": stage, "row": row, "trained": trained}
        semantic = _semantic_row(metrics)
        report["table1"].append({**common, "ours": semantic,
                                 "vs_chance": _semantic_vs_chance(semantic),
                                 "paper": {d: paper_table1(stage, d) for d in datasets}})
        report["table2"].append({**common, "ours": _recall_row(metrics),
                                 "n_pairs": metrics["n_pairs"] if trained else None,
                                 "chance": dict(metrics["recall"]["chance"]) if trained else None,
                                 "vs_chance": significance.above_chance(
                                     metrics["recall"]["mean"]["10"], metrics["n_pairs"],
                                     metrics["recall"]["chance"]["10"]) if trained else None,
                                 "paper": {d: paper_table2(stage, d) for d in datasets}})
        transfer = (metrics or {}).get("transfer_accuracy")
        report["transfer"].append({**common, "ours": None if transfer is None else {
            "accuracy": transfer["accuracy"], "n": transfer["n"],
            "by_attribute": transfer.get("by_attribute", {})},
            "vs_chance": None if transfer is None else significance.above_chance(
                transfer["accuracy"], transfer["n"], 0.5),
            "paper": _fraction(PAPER_TRANSFER.get(stage))})
    edit_success = artifacts.get("edit_success", {})
    for stage in stage_metrics:
        if stage in EDIT_STAGES or stage in edit_success:
            report["edit_success"].append({"stage": stage, "row": ROW_NAMES.get(stage, stage),
                                           "trained": stage_metrics[stage] is not None,
                                           "ours": edit_success.get(stage),
                                           "paper": _fraction(PAPER_EDIT_SUCCESS.get(stage))})
    for key in ("clusters", "gan_quality", "segmenter"):
        report[key] = artifacts.get(key)
    report["pictures"] = {}
    return report


def best_stage(report: Mapping[str, Any]) -> Optional[str]:
    """The trained stage with the highest mean R@10 (then R@5, R@1; the later curriculum stage on a full tie)."""
    best, best_key = None, None
    for row in report["table2"]:
        if row["ours"] is None:
            continue
        mean = row["ours"]["mean"]
        key = (mean["10"], mean["5"], mean["1"])
        if best_key is None or key >= best_key:
            best, best_key = row["stage"], key
    return best


# ---------------------------------------------------------------------------------------------------------------
# Markdown

def _pct(value: Optional[float]) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{100 * value:.1f}"


def _link(path: str) -> str:
    return f"[{os.path.basename(path)}]({path})"


def _per_family(per_family: Any) -> str:
    """"color 50.0 (n=4), ..." from {family: rate} or {family: {"rate" | "succeeded", "n"}}."""
    if not isinstance(per_family, Mapping) or not per_family:
        return ""
    parts = []
    for family, value in per_family.items():
        n = value.get("n") if isinstance(value, Mapping) else None
        rate = value.get("rate") if isinstance(value, Mapping) else value
        if rate is None and isinstance(value, Mapping) and value.get("succeeded") is not None and n:
            rate = value["succeeded"] / n
        if isinstance(rate, (int, float)):
            parts.append(f"{family} {_pct(rate)}" + (f" (n={n})" if n is not None else ""))
    return ", ".join(parts)


def format_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown. Paths in the report (pictures, metrics) are linked as they are: relative to the
    report's folder when the report is written by `tfvgs.evaluate`."""
    settings, datasets = report["settings"], report["paper_datasets"]
    paper_names = {"synthetic": "paper, synthetic", "human": "paper, human"}
    lines = ["# Evaluation of the curriculum (paper 000 Tables 1-2, sec. 6.4-6.5)", ""]
    if settings:
        used = sorted({r["n_pairs"] for r in report.get("table2", []) if r.get("n_pairs") is not None})
        counted = (f"{used[0]} pairs" if len(used) == 1 else
                   f"{used[0]}-{used[-1]} pairs (per stage in Table 2)" if used else
                   "no pairs evaluated yet")
        lines += [f"Held-out pairs: split `{settings.get('split')}` of `{settings.get('data_dir')}`, {counted} "
                  f"(at most {settings.get('num_pairs')} asked), similarity "
                  f"{str(settings.get('similarity')).upper()}. "
                  f"Semantic set: `{settings.get('semantic_dir') or 'none'}`; transfer set: "
                  f"`{settings.get('transfer_dir') or 'none'}`.", ""]
    lines += [f"Caption style: **{report['caption_style']}** ({report['caption_style_source'] or 'given'}); "
              f"paper rows shown: {', '.join(paper_names[d] for d in datasets)}. All numbers are percentages; "
              "the paper's are beside ours.", "", "## Stages", "", "| stage | paper row | status | metrics |",
              "|---|---|---|---|"]
    for s in report["stages"]:
        metrics = _link(s["metrics"]) if s.get("metrics") else ""
        lines.append(f"| `{s['stage']}` | {s['row']} | {s['status']} | {metrics} |")

    lines += ["", "## Table 1: semantic accuracy (isolated spoken attribute words; chance 50)", ""]
    if not any(r["ours"] for r in report["table1"]):
        lines += ["Not measured: pass `--semantic_dir` (the output of `beam_pipelines.semantic_test_set`).", ""]
    lines += ["| method | source | shape | material | color | size | mean | pairs | mean vs chance |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in report["table1"]:
        ours = r["ours"]
        if ours is not None:
            cells = [_pct(ours.get(c)) for c in TABLE1_COLUMNS] + [str(sum(ours.get("n", {}).values())),
                                                                    significance.verdict(r.get("vs_chance"))]
        else:
            cells = [NOT_TRAINED if not r["trained"] else "not measured"] + [""] * 6
        lines.append(f"| {r['row']} | ours | " + " | ".join(cells) + " |")
        for d in datasets:
            paper = r["paper"][d]
            cells = [_pct(paper[c]) for c in TABLE1_COLUMNS] if paper else ["no row"] + [""] * 4
            lines.append(f"| | {paper_names[d]} | " + " | ".join(cells) + " | | |")

    lines += ["", "## Table 2: retrieval recall (mean of both directions)", "",
              "| method | source | R@1 | R@5 | R@10 | caption→image R@1/5/10 | image→caption R@1/5/10 | pairs | "
              "chance R@1/5/10 | R@10 vs chance |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["table2"]:
        ours = r["ours"]
        if ours is not None:
            cells = [_pct(ours["mean"][k]) for k in RECALL_KS]
            cells += ["/".join(_pct(ours[d][k]) for k in RECALL_KS) for d in ("audio_to_image", "image_to_audio")]
            cells += [str(r["n_pairs"]), "/".join(_pct(r["chance"][k]) for k in RECALL_KS),
                      significance.verdict(r.get("vs_chance"))]
        else:
            cells = [NOT_TRAINED] + [""] * 7
        lines.append(f"| {r['row']} | ours | " + " | ".join(cells) + " |")
        for d in datasets:
            paper = r["paper"][d]
            cells = [_pct(paper[k]) for k in RECALL_KS] if paper else ["no row", "", ""]
            lines.append(f"| | {paper_names[d]} | " + " | ".join(cells) + " | | | " +
                         ("500" if paper else "") + " | | |")

    lines += ["", "## Transfer to renderer images (sec. 6.5; original vs one-attribute renderer edit, chance 50)", "",
              "Paper: 54 DaveNet trained on CLEVR renderings, 59 a model trained with GAN edits (which one is not "
              "said), 89 with renderer edits (the upper bound, our `exact_edits`).", "",
              "| method | ours | scenes | by attribute | vs chance | paper |", "|---|---|---|---|---|---|"]
    for r in report["transfer"]:
        ours = r["ours"]
        if ours is not None:
            by = ", ".join(f"{a} {_pct(v['accuracy'])}" for a, v in ours.get("by_attribute", {}).items())
            cells = [_pct(ours["accuracy"]), str(ours["n"]), by, significance.verdict(r.get("vs_chance"))]
        else:
            cells = [NOT_TRAINED if not r["trained"] else "not measured", "", "", ""]
        lines.append(f"| {r['row']} | " + " | ".join(cells) + f" | {_pct(r['paper'])} |")

    lines += ["", "## Edit success (sec. 6.4: the segmenter's description changes in the edited attribute only)", "",
              "| method | success | edits | any change | per family | paper |", "|---|---|---|---|---|---|"]
    edit_rows = report["edit_success"]
    for r in edit_rows:
        ours = r["ours"]
        if ours is not None:
            cells = [_pct(ours.get("rate")), str(ours.get("n", "")), _pct(ours.get("any_change_rate")),
                     _per_family(ours.get("per_family"))]
        else:
            cells = [NOT_TRAINED if not r["trained"] else
                     "not measured (renderer edits: exact by construction)" if r["stage"] == "exact_edits" else
                     "not measured (no edit_success.json)", "", "", ""]
        lines.append(f"| {r['row']} | " + " | ".join(cells) + f" | {_pct(r['paper'])} |")

    if any(r["ours"] for r in edit_rows):
        lines += ["", "Success: a targeted edit changes the segmenter's description of the edited image in exactly "
                  "its cluster's attribute family; an edit with no family to aim at (every random edit) succeeds "
                  "on any change. Any change: an attribute of the object nearest the ablated cells, or the number "
                  "of objects, differs. `random` in *per family* counts the edits with no family: random edits, "
                  "and targeted edits from clusters the cluster stage could not label."]
    if report.get("gan_quality") or report.get("segmenter") or report.get("clusters"):
        lines += ["", "## Other stages", ""]
        if report.get("gan_quality"):
            q = report["gan_quality"]
            lines.append("- GAN quality (segmenter features): " + ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in q.items()
                if k != "kid_std") + (" (FID/KID: distances between GAN and rendered images' segmenter features, "
                                       "0 = same distribution; kid_std, the spread of KID over subsets, is in "
                                       "gan/quality/quality.json)" if "kid_std" in q else ""))
        if report.get("segmenter"):
            lines.append("- Segmenter: " + ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in report["segmenter"].items()))
        if report.get("clusters"):
            lines.append(f"- Concept clusters: {report['clusters'].get('count')}")

    pictures = report.get("pictures", {})
    lines += ["", "## Pictures", ""]
    if pictures.get("results"):
        lines += [f"![results]({pictures['results']})", "",
                  "Bars: ours; markers: the paper's.", ""]
    if pictures.get("matchmaps"):
        lines += [f"![matchmaps]({pictures['matchmaps']})", "",
                  f"Matchmap overlays of the best stage (`{pictures.get('matchmaps_stage')}`) on held-out pairs: "
                  "each region's peak similarity over the caption's frames, in red.", ""]
    for title, key in (("Edits before/after", "edits"), ("Concept clusters", "clusters"), ("GAN quality", "gan")):
        entries = pictures.get(key)
        if isinstance(entries, Mapping):
            entries = [(f"`{stage}`: ", p) for stage, paths in entries.items() for p in paths]
        else:
            entries = [("", p) for p in entries or []]
        if entries:
            lines.append(f"- {title}: " + "; ".join(f"{prefix}{_link(p)}" for prefix, p in entries))
    return "\n".join(lines) + "\n"


def _write_text(path: str, text: str) -> None:
    import tensorflow as tf
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(text)


def write_markdown(report: Mapping[str, Any], path: str) -> None:
    _write_text(path, format_markdown(report))


def _json_safe(value: Any) -> Any:
    """NaN/inf (e.g. the accuracy of a family without pairs) -> None, so report.json is strict JSON."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(report: Mapping[str, Any], path: str) -> None:
    _write_text(path, json.dumps(_json_safe(report), indent=2, sort_keys=True, allow_nan=False) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# Figures

def plot_results(report: Mapping[str, Any], path: str) -> None:
    """Bars of our mean R@10, semantic mean and transfer accuracy per stage, the paper's numbers as markers."""
    plt = pyplot()
    rows = [(r2, r1, rt) for r2, r1, rt in zip(report["table2"], report["table1"], report["transfer"])]
    names = [r2["row"] for r2, _, _ in rows]
    x = np.arange(len(names))
    panels = (
        ("Retrieval R@10 (Table 2)", [r2["ours"]["mean"]["10"] if r2["ours"] else None for r2, _, _ in rows],
         {d: [(r2["paper"][d] or {}).get("10") for r2, _, _ in rows] for d in report["paper_datasets"]}),
        ("Semantic accuracy, mean (Table 1)", [r1["ours"]["mean"] if r1["ours"] else None for _, r1, _ in rows],
         {d: [(r1["paper"][d] or {}).get("mean") for _, r1, _ in rows] for d in report["paper_datasets"]}),
        ("Transfer accuracy (sec. 6.5)", [rt["ours"]["accuracy"] if rt["ours"] else None for _, _, rt in rows],
         {"synthetic": [rt["paper"] for _, _, rt in rows]}),       # sec. 6.5 uses synthetic captions
    )
    chance_r10 = next((r2["chance"]["10"] for r2, _, _ in rows if r2["chance"]), None)
    markers = {"synthetic": ("D", "black"), "human": ("o", "tab:orange")}
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    for ax, (title, ours, paper) in zip(axes, panels):
        heights = [np.nan if v is None else 100 * v for v in ours]
        ax.bar(x, np.nan_to_num(heights), 0.6, color="tab:blue", label="ours")
        for i, v in enumerate(ours):
            if v is None:
                status = NOT_TRAINED if not rows[i][0]["trained"] else "not measured"
                ax.text(i, 2, status, rotation=90, ha="center", va="bottom", fontsize=8, color="gray")
        for dataset, values in paper.items():
            y = [np.nan if v is None else 100 * v for v in values]
            marker, color = markers[dataset]
            ax.scatter(x, y, marker=marker, color=color, zorder=3, label=f"paper, {dataset}")
        chance = 100 * chance_r10 if title.startswith("Retrieval") and chance_r10 else 50.0
        ax.axhline(chance, color="gray", linestyle=":", linewidth=1, label="chance")
        ax.set_title(title)
        ax.set_ylim(0, 105)
        ax.set_xticks(x, names, rotation=40, ha="right")
        ax.set_ylabel("%")
    legend = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="upper center", ncol=len(legend), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    save_figure(fig, path)
    plt.close(fig)


def plot_matchmaps(images: np.ndarray, overlays: np.ndarray, captions: Sequence[str], path: str,
                   title: str = "") -> None:
    """A grid with one column per pair: the image above its matchmap overlay, the caption below.
    `images` and `overlays` are uint8 [N, H, W, 3]."""
    images, overlays = np.asarray(images), np.asarray(overlays)
    if images.ndim != 4 or images.shape != overlays.shape or len(captions) != len(images):
        raise ValueError(f"`images` and `overlays` must be [N, H, W, 3] of one shape with N captions. Received: "
                         f"{images.shape}, {overlays.shape}, {len(captions)} captions")
    plt = pyplot()
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(3 * n, 7.2), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(images[i])
        axes[1, i].imshow(overlays[i])
        caption = textwrap.shorten(captions[i], 240, placeholder=" ...")
        axes[1, i].set_xlabel("\n".join(textwrap.wrap(caption, 34)), fontsize=7)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel("matchmap peak")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
