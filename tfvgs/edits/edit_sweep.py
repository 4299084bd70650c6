"""What an edit setting makes the edits change, measured on val pairs: for choosing `edits.*` without training.

An edit counts when it moves `min_changed_fraction` of the pixels by more than `pixel_change` (`GanEdits`); at 32 px
0.005 is 5 pixels, a sliver of a 34-pixel object, and the segmenter then often sees no change at all. This runs a
trained edit stage's own negative source over val pairs with each value of one setting and describes every
original and edited image with the segmenter (`tfvgs.edits.edit_report`), one JSON line per value:

    python -m tfvgs.edits.edit_sweep --workdir W --stage random_edits --data_dir W/data/pairs \
        --param min_changed_fraction --values 0.005 0.01 0.02 --out W/sweeps/random_edits

Nothing is trained, so the figures say what the edits would be, not what training on them gives.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import types
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from tfvgs import data, workdir as layout
from tfvgs.config import Config

SWEEPABLE = ("min_changed_fraction", "pixel_change")


def sweep(workdir: str, stage_name: str, data_dir: str, param: str, values: Sequence[float], out_dir: str,
          pairs: Optional[int] = None) -> List[Dict]:
    """One edit report per value of `edits.<param>` for the trained `stage_name` of `workdir`; returns them."""
    from tfvgs import stages
    from tfvgs.edits import edit_report
    from tfvgs.stages.edits import RandomEditsStage
    if param not in SWEEPABLE:
        raise ValueError(f"`param` must be one of {SWEEPABLE}. Received: param={param!r}")
    stage_class = stages.get_stage(stage_name)
    if not issubclass(stage_class, RandomEditsStage):
        raise ValueError(f"`stage` must be a GAN edit stage (random_edits, targeted_edits and their hn_ forms). "
                         f"Received: stage={stage_name!r}")
    if not values:
        raise ValueError("`values` must hold at least one value. Received: []")
    config = Config.load(layout.config_path(workdir, stage_name))
    if pairs is not None:
        config.edits = dataclasses.replace(config.edits, success_pairs=int(pairs))
    model = layout.load_step_model(workdir, stage_name)
    # the negative source draws its randomness from the optimizer's step; a fixed step gives every value the same draws
    holder = types.SimpleNamespace(optimizer=types.SimpleNamespace(iterations=tf.Variable(0, dtype=tf.int64)))
    reports = []
    for value in values:
        swept = Config.from_dict(config.to_dict())
        swept.edits = dataclasses.replace(swept.edits, **{param: float(value)})
        stage = stage_class(swept, workdir, data_dir)
        source = stage.build_negative_source(holder)
        value_dir = os.path.join(out_dir, f"{param}={value:g}")
        tf.io.gfile.makedirs(value_dir)
        val_pairs = data.pairs_dataset(data_dir, "val", swept, batch_size=min(32, swept.train.batch_size))
        report = edit_report.write_edit_report(model, source, val_pairs, swept, workdir, value_dir,
                                               cluster_labels=stage.cluster_labels(),
                                               other_labels=stage.other_cluster_labels())
        row = {"stage": stage_name, "param": param, "value": float(value), "n_edited": report["n_edited"],
               "valid_fraction": report["valid_fraction"], "any_change_rate": report.get("any_change_rate"),
               "rate": report.get("rate"), "rate_by_region_label": report.get("rate_by_region_label"),
               "changed_counts": report.get("changed_counts")}
        print(json.dumps(row), flush=True)
        reports.append(row)
    return reports


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--stage", required=True, help="a trained GAN edit stage of --workdir")
    parser.add_argument("--data_dir", required=True, help="the Audio CLEVRGAN pairs it trained on (val is used)")
    parser.add_argument("--param", default="min_changed_fraction", choices=SWEEPABLE)
    parser.add_argument("--values", type=float, nargs="+", required=True)
    parser.add_argument("--pairs", type=int, default=None, help="val pairs per value (default: edits.success_pairs)")
    parser.add_argument("--out", required=True, help="a directory for each value's edits.png and edit_success.json")
    args = parser.parse_args(argv)
    sweep(args.workdir, args.stage, args.data_dir, args.param, args.values, args.out, args.pairs)


if __name__ == "__main__":
    main()
