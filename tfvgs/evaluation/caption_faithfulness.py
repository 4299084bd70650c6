"""Caption faithfulness: Audio CLEVRGAN's describe-and-caption path run on rendered scenes, where the truth is known.

    python -m tfvgs.evaluation.caption_faithfulness --workdir W --data_dir SCENES [--split test] [--num_scenes 500]
        [--style synthetic|natural] [--config PRESET]

Audio CLEVRGAN captions a GAN image from what the segmenter describes (`tfvgs.describe`), so its captions are only
as true as the descriptions. Here the same path - describe, keep confident descriptions, `speech.describe_scene` -
runs on rendered scenes, and every attribute word of every caption is checked against the rendered object it refers
to (described objects are matched to the true ones by position, as in `describe.evaluate_segmenter`):

    kept_fraction          scenes described confidently (Audio CLEVRGAN keeps only these)
    agreement[family]      spoken attribute words that are true of the object they describe, per family
    ungrounded_mentions    mentions of a described object that matches no rendered object
    missed_objects         rendered (visible) objects no caption mentions, as a fraction of them
    caption_correct        captions with every word true, no ungrounded mention and (synthetic) no missed object

Writes `<workdir>/segmenter/caption_faithfulness.json` (or `--out`).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

from tfvgs import cli, console, config as config_lib, workdir as layout

FAMILIES = ("shape", "color", "material", "size")


def faithfulness(segmenter, dataset, config: config_lib.Config, style: str = "synthetic",
                 max_scenes: Optional[int] = None, seed: int = 0) -> Dict[str, Any]:
    """Scores the describe-and-caption path on batches of rendered scenes (`tfvgs.data.scenes_dataset`)."""
    from tfvgs import describe, speech
    s = config.segmenter
    said = {f: 0 for f in FAMILIES}
    true = {f: 0 for f in FAMILIES}
    counts = dict(scenes=0, kept=0, mentions=0, ungrounded=0, objects=0, missed=0, correct=0)
    for batch in dataset:
        images = np.asarray(batch["image"], np.float32)
        descriptions = describe.describe_images(segmenter, images, min_object_pixels=s.min_object_pixels,
                                                min_confidence=s.min_confidence)
        masks = np.asarray(batch["instance_mask"])
        for b, (description, scene_json) in enumerate(zip(descriptions, np.asarray(batch["scene_json"]).ravel())):
            if max_scenes is not None and counts["scenes"] >= max_scenes:
                break
            counts["scenes"] += 1
            if not description["confident"]:
                continue
            counts["kept"] += 1
            _, truth, scale = describe.visible_truth(scene_json, masks[b], s.min_object_pixels)
            pairs = dict(describe.match_objects(description["objects"], truth, images.shape[1] / 8.0, scale))
            caption = speech.describe_scene(description, seed=seed + counts["scenes"], style=style)
            wrong = ungrounded = 0
            mentioned = set()
            for mention in caption.mentions:
                counts["mentions"] += 1
                target = pairs.get(mention.object_index)
                if target is None:
                    ungrounded += 1
                    continue
                mentioned.add(target)
                for family, value in mention.values.items():
                    said[family] += 1
                    right = truth[target][family] == value
                    true[family] += int(right)
                    wrong += int(not right)
            missed = len(truth) - len(mentioned)
            counts["ungrounded"] += ungrounded
            counts["objects"] += len(truth)
            counts["missed"] += missed
            counts["correct"] += int(wrong == 0 and ungrounded == 0 and (missed == 0 or style != "synthetic"))
        if max_scenes is not None and counts["scenes"] >= max_scenes:
            break
    if counts["scenes"] == 0:
        raise ValueError("No rendered scenes to check: the dataset is empty.")
    ratio = lambda a, b: a / b if b else None  # noqa: E731
    return {
        "style": style, "n_scenes": counts["scenes"], "n_kept": counts["kept"],
        "kept_fraction": ratio(counts["kept"], counts["scenes"]),
        "agreement": {f: ratio(true[f], said[f]) for f in FAMILIES},
        "attribute_words": said,
        "ungrounded_mentions": ratio(counts["ungrounded"], counts["mentions"]),
        "missed_objects": ratio(counts["missed"], counts["objects"]),
        "caption_correct": ratio(counts["correct"], counts["kept"]),
        "min_confidence": s.min_confidence, "min_object_pixels": s.min_object_pixels,
    }


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    console.quiet_startup()
    parser = cli.command_parser("tfvgs.evaluation.caption_faithfulness", __doc__)
    parser.add_argument("--workdir", required=True, help="workdir with segmenter/model.keras")
    parser.add_argument("--data_dir", required=True, help="rendered scene TFRecords (beam_pipelines.render_scenes)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--num_scenes", type=int, default=500)
    parser.add_argument("--style", default="synthetic", choices=("synthetic", "natural"))
    parser.add_argument("--out", default=None, help="default: WORKDIR/segmenter/caption_faithfulness.json")
    config_lib.add_config_flags(parser)
    args = parser.parse_args(argv)
    if args.num_scenes < 1:
        raise ValueError(f"--num_scenes must be positive. Received: {args.num_scenes}")
    from tfvgs import data
    saved = layout.config_path(args.workdir, "segmenter")
    config = config_lib.Config.load(saved) if os.path.exists(saved) else config_lib.config_from_args(args)
    path = layout.model_path(args.workdir, "segmenter")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No segmenter at {path}: run `python -m tfvgs.train --stage segmenter` first.")
    segmenter = layout.load_model(path)
    dataset = data.scenes_dataset(args.data_dir, args.split, config, batch_size=config.segmenter.batch_size)
    result = faithfulness(segmenter, dataset, config, args.style, args.num_scenes)
    result.update({"data_dir": args.data_dir, "split": args.split})
    out = args.out or os.path.join(args.workdir, "segmenter", "caption_faithfulness.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    agreement = ", ".join(f"{k} {v:.1%}" for k, v in result["agreement"].items() if v is not None)
    print(f"[caption_faithfulness] {result['n_kept']}/{result['n_scenes']} scenes kept; words true: {agreement}; "
          f"captions entirely right {result['caption_correct'] or 0:.1%} -> {out}", flush=True)
    return result


if __name__ == "__main__":
    main()
