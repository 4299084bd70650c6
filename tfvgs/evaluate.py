"""Evaluates a trained stage: retrieval recall@1/5/10 in both directions on held-out pairs (paper 000 Table 2).

    python -m tfvgs.evaluate --workdir W --data_dir DATA [--stage davenet] [--num_pairs 500] [--similarity misa]

Writes W/eval/<stage>/metrics.json ({"n_pairs", "recall": {"audio_to_image": {"1","5","10"}, "image_to_audio",
"mean", "chance"}, ...}) and a readable report.md beside it. audio_to_image means the caption is the query and the
images are ranked.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Optional, Sequence

from tfvgs import config as config_lib

PAPER_TABLE2_SYNTHETIC = {"DaveNet": (14.9, 43.7, 62.2), "Hard Neg": (73.4, 94.6, 97.6)}


def load_stage_model(workdir: str, stage: str, config: config_lib.Config, from_checkpoint: bool = False):
    """The stage's final model.keras, or (with from_checkpoint, e.g. while it still trains) its latest checkpoint."""
    import keras
    import tensorflow as tf
    import tfvgs.models  # noqa: F401  registers the serialisable classes
    path = os.path.join(workdir, stage, "model.keras")
    if not from_checkpoint:
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"no trained model for stage {stage!r}: {path} is missing (run python -m "
                                    f"tfvgs.train --stage {stage} first, or pass --from_checkpoint)")
        return keras.saving.load_model(path)
    from tfvgs import stages, training
    checkpoint_dir = os.path.join(workdir, stage, "checkpoints")
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is None:
        raise FileNotFoundError(f"no checkpoint of stage {stage!r} in {checkpoint_dir}")
    model = stages.get_stage(stage)(config, workdir, data_dir="").build_model()
    training.model_checkpoint(model).restore(latest).assert_consumed()
    print(f"evaluating checkpoint {latest}")
    return model


def stage_config(workdir: str, stage: str, fallback: config_lib.Config) -> config_lib.Config:
    path = os.path.join(workdir, stage, "config.json")
    import tensorflow as tf
    return config_lib.Config.load(path) if tf.io.gfile.exists(path) else fallback


def write_report(path: str, stage: str, metrics: dict) -> None:
    r = metrics["recall"]
    lines = [f"# Evaluation of stage `{stage}`", "",
             f"{metrics['n_pairs']} held-out pairs of split `{metrics['split']}`, similarity "
             f"{metrics['similarity'].upper()}, {metrics['seconds']:.1f} s.", "",
             "| direction | R@1 | R@5 | R@10 |", "|---|---|---|---|"]
    for name in ("audio_to_image", "image_to_audio", "mean", "chance"):
        lines.append(f"| {name} | " + " | ".join(f"{100 * r[name][k]:.1f}" for k in ("1", "5", "10")) + " |")
    lines += ["", "Paper 000 Table 2 (synthetic captions, mean of both directions, 500 pairs): "
              + "; ".join(f"{k} {v[0]}/{v[1]}/{v[2]}" for k, v in PAPER_TABLE2_SYNTHETIC.items()), ""]
    if "semantic_accuracy" in metrics:
        s = metrics["semantic_accuracy"]
        lines += ["## Semantic accuracy (isolated spoken attribute words; chance 50%)", "",
                  "| shape | material | color | size | mean |", "|---|---|---|---|---|",
                  "| " + " | ".join(f"{100 * s[k]:.1f}" for k in ("shape", "material", "color", "size", "mean")) + " |",
                  "", "Paper 000 Table 1, synthetic captions: DaveNet 72.6 / 63.3 / 51.1 / 98.0 / 71.2; "
                  "HN+Target Edits 77.7 / 96.9 / 66.6 / 97.1 / 84.6.", ""]
    if "transfer_accuracy" in metrics:
        t = metrics["transfer_accuracy"]
        lines += [f"Transfer accuracy (original vs single-attribute renderer edit): {100 * t['accuracy']:.1f}% over "
                  f"{t['n']} scenes (chance 50%; paper 000 sec. 6.5: 54% DaveNet on CLEVR, 59% GAN edits, 89% "
                  "renderer edits).", ""]
    import tensorflow as tf
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("\n".join(lines))


def main(argv: Optional[Sequence[str]] = None) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--stage", default="davenet")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--num_pairs", type=int, default=None, help="default: config train.eval_pairs (500)")
    parser.add_argument("--from_checkpoint", action="store_true",
                        help="evaluate the stage's latest checkpoint instead of its final model.keras")
    parser.add_argument("--similarity", default=None, choices=("sisa", "misa", "sima"),
                        help="default: config model.eval_similarity (misa)")
    parser.add_argument("--semantic_dir", default=None,
                        help="output of beam_pipelines.semantic_test_set: adds semantic_accuracy (paper 000 Table 1)")
    parser.add_argument("--transfer_dir", default=None,
                        help="output of beam_pipelines.transfer_test_set: adds transfer_accuracy (paper 000 sec. 6.5)")
    config_lib.add_config_flags(parser)
    args = parser.parse_args(argv)
    from tfvgs import data, retrieval
    config = stage_config(args.workdir, args.stage, config_lib.config_from_args(args))
    if args.overrides:
        config = config_lib.apply_overrides(config, args.overrides)
    num_pairs = args.num_pairs or config.train.eval_pairs
    kind = args.similarity or config.model.eval_similarity
    model = load_stage_model(args.workdir, args.stage, config, args.from_checkpoint)
    start = time.perf_counter()
    dataset = data.pairs_dataset(args.data_dir, args.split, config, batch_size=min(64, num_pairs))
    metrics = retrieval.evaluate_retrieval(model, dataset, num_pairs, kind)
    if args.semantic_dir or args.transfer_dir:
        from tfvgs import semantic_eval
        if args.semantic_dir:
            metrics["semantic_accuracy"] = semantic_eval.semantic_accuracy(model, args.semantic_dir, args.semantic_dir,
                                                                           config, kind=kind)
        if args.transfer_dir:
            metrics["transfer_accuracy"] = semantic_eval.transfer_accuracy(model, args.transfer_dir, config,
                                                                           kind=kind)
    metrics.update({"stage": args.stage, "split": args.split, "seconds": time.perf_counter() - start})
    if metrics["n_pairs"] < num_pairs:
        print(f"note: only {metrics['n_pairs']} pairs in split {args.split!r} (asked for {num_pairs})")
    import tensorflow as tf
    out_dir = os.path.join(args.workdir, "eval", args.stage)
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    write_report(os.path.join(out_dir, "report.md"), args.stage, metrics)
    m = metrics["recall"]["mean"]
    print(f"[evaluate {args.stage}] {metrics['n_pairs']} pairs, {kind}: mean R@1 {100 * m['1']:.1f} "
          f"R@5 {100 * m['5']:.1f} R@10 {100 * m['10']:.1f} -> {out_dir}/metrics.json")
    return metrics


if __name__ == "__main__":
    main()
