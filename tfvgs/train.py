"""Runs one training stage.

    python -m tfvgs.train --stage davenet --config cpu --data_dir DATA --workdir W [--set train.steps=2000]

Re-running the same command after a crash or kill resumes from the stage's last checkpoint in W/<stage>/checkpoints.
Stages: see `--help`. `--stage all --data_dir SCENES` runs the whole curriculum from rendered scenes to the report
(`tfvgs.curriculum`).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from tfvgs import cli, console, config as config_lib, workdir as layout


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from tfvgs import stages
    parser = cli.command_parser("tfvgs.train", __doc__)
    parser.add_argument("--stage", required=True, choices=[*stages.stage_names(), "all"])
    parser.add_argument("--data_dir", required=True,
                        help="spoken-pair TFRecords for the DAVEnet stages; rendered-scene TFRecords for gan and "
                             "segmenter")
    parser.add_argument("--workdir", required=True, help="where checkpoints, TensorBoard logs and models go")
    config_lib.add_config_flags(parser, workdir_flag="--workdir")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    console.quiet_startup()
    args = parse_args(argv)
    config = config_lib.config_from_args(args, saved=layout.saved_config(args.workdir))
    from tfvgs import data, stages, training
    if args.stage == "all":
        from tfvgs.curriculum import Curriculum
        return Curriculum(config, args.data_dir, args.workdir).run()
    stage = stages.get_stage(args.stage)(config, args.workdir, args.data_dir)
    print(f"[{args.stage}] config {config.name}, {stage.strategy.num_replicas_in_sync} replica(s), "
          f"workdir {os.path.abspath(args.workdir)}", flush=True)
    try:
        return stage.run()
    except data.DataDirError as e:           # a usage error: one line, not a traceback
        print(f"[{args.stage}] error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    except training.NonFiniteLossError as e:
        print(f"[{args.stage}] {e}", file=sys.stderr, flush=True)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
