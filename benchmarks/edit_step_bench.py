"""Training-step time of the curriculum's stages on one workdir's own data: what an edited negative costs.

Every stage is built as `python -m tfvgs.train --stage NAME` builds it (its model, its warm start, its negative
source, its training dataset), and `fit` runs `--steps` steps after `--warmup` steps, on the same training batches
for every stage. An edit step adds to the DaveNet step a GAN redraw of the whole batch per try of the growing
ablation (random: `edits.ablation_probabilities`, targeted: `edits.targeted_unit_counts`), so the ratio to
`davenet` is the price of the method. Nothing is written to the workdir. Prints JSON lines:
  {"measure": "stage_step", "stage": ..., "seconds_per_step": ..., "pairs_per_s": ..., "vs_davenet": ...,
   "edit_valid_fraction": ...}

    python benchmarks/edit_step_bench.py --workdir runs/cpu --config cpu \
        --stages davenet hard_negatives random_edits targeted_edits exact_edits
(the workdir of a finished `python -m tfvgs.demo --config cpu`: the stages need its GAN, clusters and data.)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def bench_stage(name: str, workdir: str, config, steps: int, warmup: int) -> dict:
    from tfvgs import stages
    from tfvgs.curriculum import STAGES, Curriculum
    data_dir = Curriculum(config, os.path.join(workdir, "data", "scenes"), workdir).data_dir(dict(STAGES)[name])
    stage = stages.get_stage(name)(config, workdir, data_dir)
    with stage.strategy.scope():
        model = stage.build_model()
        stage.initialize(model)
    dataset = stage.build_train_dataset(0)
    model.fit(dataset, steps_per_epoch=warmup, epochs=1, verbose=0)   # trace + warm up
    start = time.perf_counter()
    history = model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = (time.perf_counter() - start) / steps
    batch = config.train.batch_size
    row = {"measure": "stage_step", "stage": name, "config": config.name, "batch": batch, "steps": steps,
           "seconds_per_step": round(seconds, 3), "pairs_per_s": round(batch / seconds, 1)}
    for key in ("edit_valid_fraction", "edit_harder_fraction", "crop_loss"):
        if key in history.history:
            row[key] = round(float(history.history[key][-1]), 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a finished curriculum's workdir")
    parser.add_argument("--stages", nargs="+",
                        default=["davenet", "hard_negatives", "random_edits", "targeted_edits", "exact_edits"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    from tfvgs import config as config_lib, workdir as layout
    config_lib.add_config_flags(parser, default="cpu", workdir_flag="--workdir")
    args = parser.parse_args()
    config = config_lib.config_from_args(args, saved=layout.saved_config(args.workdir))
    baseline = None
    for name in args.stages:
        row = bench_stage(name, args.workdir, config, args.steps, args.warmup)
        if name == "davenet":
            baseline = row["seconds_per_step"]
        if baseline:
            row["vs_davenet"] = round(row["seconds_per_step"] / baseline, 2)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
