"""The README's main command: the whole method end to end on the built-in world, with progress on the console.

    python -m tfvgs.demo --workdir runs/demo [--config demo] [--num_scenes N] [--set section.field=value ...]

  1. render scenes                    beam_pipelines.render_scenes -> W/data/scenes
  2. the curriculum (tfvgs.curriculum: segmenter, GAN, Audio CLEVRGAN, test sets, DaveNet, edits, evaluation)
  3. export SavedModels for TF Serving (python -m export) -> W/serving, with a retrieve index of the test images
  4. W/demo_report.md: GAN samples, Audio CLEVRGAN pairs with their captions, edits, clusters, matchmaps, the results
     table, an example WAV, and where TensorBoard and the SavedModels are.

The `demo` preset (32 px, small networks, short schedules) takes 15-20 minutes on 2 cores; its retrieval is well
above chance, its isolated-word figures are not yet (docs/demo.md). `--config cpu` is the reproduction (hours).
Re-running resumes: finished steps are skipped.
"""
from __future__ import annotations

import json
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from tfvgs import cli, console, config as config_lib, workdir as layout


def _step(title: str):
    print(f"\n=== {title}", flush=True)
    return time.perf_counter()


def _done(start: float, what: str) -> None:
    print(f"    done in {time.perf_counter() - start:.1f} s: {what}", flush=True)


def write_contact_sheet_and_wav(pairs_dir: str, out_png: str, out_wav: str, config: config_lib.Config,
                                count: int = 12, split: str = "train") -> List[dict]:
    """Contact sheet of the first `count` pairs of `split` and the speech of the first one, re-synthesised from its
    caption and voice (pair records keep log-mels, not waveforms)."""
    import tensorflow as tf
    from tfvgs import audio_io, data, schema, speech, world
    records = []
    for raw in tf.data.TFRecordDataset(data.list_shards(pairs_dir, split)).take(count):
        records.append(schema.read_pair_record(raw.numpy()))
    if not records:
        raise RuntimeError(f"no {split} pairs in {pairs_dir}; see {pairs_dir}/rejected.jsonl")
    records.sort(key=lambda r: r["pair_id"])
    sheet = world.make_contact_sheet([r["image"] for r in records], [r["caption"] for r in records])
    sheet.save(out_png)
    first = records[0]
    waveform = speech.synthesize(first["caption"], speech.Voice.from_spec(first["voice"]),
                                 sample_rate=config.speech.sample_rate)
    with open(out_wav, "wb") as f:
        f.write(audio_io.encode_wav(waveform, config.speech.sample_rate))
    return [{"pair_id": r["pair_id"], "caption": r["caption"], "voice": r["voice"], "nframes": r["nframes"]}
            for r in records]


def write_rendered_beside_gan(scenes_dir: str, generator, config: config_lib.Config, out_png: str,
                              count: int = 8, split: str = "val") -> None:
    """Two rows at one size and scale: the first `count` rendered `split` scenes (what the GAN learns to draw) and
    the GAN's samples for seeds 0..count-1, so a reader sees how far the drawings are from the world."""
    from tfvgs import data, draw
    batch = next(iter(data.scenes_dataset(scenes_dir, split, config, count)))
    rendered = draw.to_uint8(batch["image"].numpy())
    drawn = draw.to_uint8(draw.sample_images(generator, range(len(rendered))))
    scale = draw.default_scale(generator.max_resolution)
    draw.write_png(draw.image_grid(draw.upscale(np.concatenate([rendered, drawn]), scale), columns=len(rendered)),
                   out_png)


def what_the_run_shows(report_json: str) -> List[str]:
    """Markdown lines saying, for every learned figure of `evaluate --all`'s report, whether it is above chance
    (one-sided binomial test, p < 0.01; tfvgs.evaluation.significance): a figure at chance is named so and is not a
    result."""
    if not os.path.exists(report_json):
        return ["## What this run shows", "", "No evaluation report (eval/report.json) yet.", ""]
    with open(report_json) as f:
        report = json.load(f)
    from tfvgs.evaluation import significance
    above, at = [], []
    for table, what, value in (("table2", "retrieval R@10", lambda r: r["ours"]["mean"]["10"]),
                               ("table1", "semantic accuracy (isolated words)", lambda r: r["ours"]["mean"]),
                               ("transfer", "transfer accuracy", lambda r: r["ours"]["accuracy"])):
        for row in report.get(table, []):
            result = row.get("vs_chance")
            if not result or row.get("ours") is None:
                continue
            lo, hi = result["ci95"]
            text = (f"{row['stage']} {what}: {100 * value(row):.1f}% (95% interval {100 * lo:.1f}-{100 * hi:.1f}, "
                    f"chance {100 * result['chance']:.1f}, {result['trials']} trials), "
                    f"{significance.verdict(result)}")
            (above if result["above_chance"] else at).append(text)
    lines = ["## What this run shows", "",
             "Each learned figure against chance (one-sided exact binomial test; above chance means p < "
             f"{significance.ALPHA:g}; retrieval counts one trial per held-out pair). A figure at chance is not a "
             "result of this run: the demo shows that every step runs and writes its outputs; reproducing the "
             "paper's numbers is what the `cpu` preset is for (docs/results.md).", ""]
    lines += ["Above chance:", ""] + [f"- {t}" for t in above or ["nothing"]] + [""]
    lines += ["At chance (not yet learned at this scale):", ""] + [f"- {t}" for t in at or ["nothing"]] + [""]
    return lines


def trained_models(workdir: str) -> Dict[str, int]:
    """{path under W: mtime in ns} of every saved model of the run: whether a re-run retrained anything."""
    import glob

    from tfvgs import gan_io
    paths = glob.glob(layout.model_path(workdir, "*")) + glob.glob(gan_io.generator_path(workdir))
    return {os.path.relpath(p, workdir): os.stat(p).st_mtime_ns for p in sorted(paths)}


def earlier_run(workdir: str, models: Dict[str, int]) -> Optional[dict]:
    """The previous demo_summary.json of W when its models were `models` (trained_models: nothing retrained since)
    and its export exists, else None (then the run exports a new version and is timed anew)."""
    path = os.path.join(workdir, "demo_summary.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        previous = json.load(f)
    exported = list(previous.get("serving", {}).values())
    if previous.get("models") != models or not exported or not all(os.path.exists(p) for p in exported):
        return None
    return previous


def write_report(workdir: str, serving: dict, minutes: float, preset: str = "demo") -> str:
    """W/demo_report.md: the pictures and where everything is (paths relative to W); `preset` is the config's name."""
    def exists(*parts):
        return os.path.exists(os.path.join(workdir, *parts))

    scale = ("Its numbers show that every step runs; see docs/results.md for reproduction-scale figures."
             if preset == "demo" else "docs/results.md compares its numbers with earlier runs and the paper's.")
    lines = [f"# tfvgs demo ({minutes:.1f} min, `{preset}` preset)", "",
             f"The whole method on the built-in world at the `{preset}` preset. {scale}", "",
             "- Results table (paper 000 Tables 1-2 beside ours): [eval/report.md](eval/report.md)",
             f"- SavedModels for TF Serving: `serving/` ({', '.join(sorted(k for k in serving if k != 'models.config'))})"
             ", `serving/models.config`; serve with `docker run --rm -p 8501:8501 -v \"$PWD/serving\":/models "
             "tensorflow/serving --model_config_file=/models/models.config`",
             f"- TensorBoard: `tensorboard --logdir {workdir}`", "- An example spoken caption: [example.wav](example.wav)",
             ""]
    lines += what_the_run_shows(os.path.join(workdir, "eval", "report.json"))
    pictures = [("Rendered val scenes (top) and GAN samples (bottom), same size", "rendered_vs_gan.png"),
                ("GAN samples (fixed seeds)", "gan_samples.png"),
                ("Audio CLEVRGAN: GAN images with the captions made from the segmenter's descriptions",
                 "contact_sheet.png"),
                ("GAN quality over training (FID/KID on segmenter features, well-formed fraction)",
                 "gan/quality/history.png"),
                ("Results per stage (paper's as markers)", "eval/results.png"),
                ("Matchmaps of the best stage", "eval/matchmaps.png"),
                ("Random edits (original with ablated h4 cells | edited | difference)", "random_edits/edits.png"),
                ("Targeted edits", "targeted_edits/edits.png"),
                ("Concept clusters", "cluster/clusters.png"), ("Cluster dendrogram", "cluster/dendrogram.png")]
    for title, path in pictures:
        if exists(path):
            lines += [f"## {title}", "", f"![{title}]({path})", ""]
    out = os.path.join(workdir, "demo_report.md")
    with open(out, "w") as f:
        f.write("\n".join(lines))
    return out


def run(argv: Optional[Sequence[str]] = None) -> dict:
    parser = cli.command_parser("tfvgs.demo", __doc__)
    parser.add_argument("--workdir", default="runs/demo")
    parser.add_argument("--num_scenes", type=int, default=None,
                        help="rendered scenes for the GAN and segmenter (default: the preset's data.num_scenes)")
    config_lib.add_config_flags(parser, default="demo", workdir_flag="--workdir")
    args = parser.parse_args(argv)
    config = config_lib.config_from_args(args, saved=layout.saved_config(args.workdir))
    console.quiet_startup()
    start = time.perf_counter()
    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    config_flags = config_lib.config_to_flags(config)
    scenes_dir = os.path.join(workdir, "data", "scenes")
    num_scenes = args.num_scenes or config.data.num_scenes
    summary = {"workdir": workdir, "config": config.name}

    t = _step(f"1/4 render {num_scenes} scenes ({config.world.image_size} px) -> {scenes_dir}")
    if os.path.exists(os.path.join(scenes_dir, "summary.json")):
        print("    done already, skipped", flush=True)
    else:
        from beam_pipelines import render_scenes
        render_scenes.run(["--output_dir", scenes_dir, "--num_scenes", str(num_scenes)] + config_flags)
    _done(t, "scene TFRecords + scenes_<split>.json")

    t = _step("2/4 the curriculum: segmenter, GAN, Audio CLEVRGAN, test sets, DaveNet, edits, evaluation")
    from tfvgs.curriculum import Curriculum
    curriculum = Curriculum(config, scenes_dir, workdir)
    curriculum.run()
    _done(t, f"stages under {workdir}, report {workdir}/eval/report.md")

    t = _step(f"3/4 export SavedModels -> {workdir}/serving")
    serving_dir = os.path.join(workdir, "serving")
    summary["models"] = trained_models(workdir)
    previous = earlier_run(workdir, summary["models"])
    if previous is not None:
        print("    done already, skipped: no model changed since the export of the first run", flush=True)
        serving = previous["serving"]
    else:
        from export.exporter import export_all
        serving = export_all(workdir, serving_dir, index_data_dir=curriculum.data_dir("pairs"), index_split="test")
    summary["serving"] = serving
    _done(t, ", ".join(f"{k}: {v}" for k, v in serving.items()))

    t = _step("4/4 pictures and the demo report")
    from tfvgs import draw, gan_io
    generator = gan_io.load_generator(workdir)
    grid = draw.image_grid(draw.upscale(draw.to_uint8(draw.sample_images(generator, range(16))),
                                        draw.default_scale(generator.max_resolution)), columns=8)
    draw.write_png(grid, os.path.join(workdir, "gan_samples.png"))
    write_rendered_beside_gan(scenes_dir, generator, config, os.path.join(workdir, "rendered_vs_gan.png"))
    summary["examples"] = write_contact_sheet_and_wav(curriculum.data_dir("pairs"),
                                                      os.path.join(workdir, "contact_sheet.png"),
                                                      os.path.join(workdir, "example.wav"), config)
    # a re-run that retrained nothing keeps the first run's time: the report says what the whole run cost
    minutes = previous["minutes"] if previous is not None else (time.perf_counter() - start) / 60
    report = write_report(workdir, serving, minutes, config.name)
    summary["minutes"] = minutes
    with open(os.path.join(workdir, "demo_summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
    _done(t, report)
    took = (time.perf_counter() - start) / 60
    first = f" (the first run took {minutes:.1f})" if previous is not None else ""
    print(f"\nDone in {took:.1f} min{first}. Open {report} (pictures, links), {workdir}/eval/report.md (the paper's "
          f"tables beside ours).\nTensorBoard: tensorboard --logdir {workdir}\nSavedModels: {serving_dir} "
          f"(models.config for TF Serving)", flush=True)
    return summary


if __name__ == "__main__":
    run()
