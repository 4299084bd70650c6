"""Throughput of the `gan` training stage (real images shown per second), per resolution, and the wall time it implies
for the preset's full schedule.

Runs the real stage (data pipeline, fit per phase, callbacks, checkpoints) in a temporary workdir on a short copy of
the schedule - every phase `--phase_kimg` thousand images - reads the img/s it logged to TensorBoard, and prints one
JSON line per (resolution, fade-in or stable), then one line with the estimate for the preset's own
`lod_training_kimg` / `lod_transition_kimg` / `total_kimg` (images of each phase / measured img/s of that phase).
The first interval of every phase (tracing) is not counted. The machine is shared: the load average is printed.

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/gan_stage_throughput.py --config tiny --data_dir SCENES
    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/gan_stage_throughput.py --config cpu --data_dir SCENES --phase_kimg 0.5
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import sys
import tempfile
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def logged_rates(log_dir: str):
    """{step: {tag: value}} of the scalars the stage logged."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2
    steps = defaultdict(dict)
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
                    steps[event.step][value.tag] = float(tf.make_ndarray(value.tensor))
    return steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--data_dir", required=True, help="scene TFRecords rendered with the same preset")
    parser.add_argument("--phase_kimg", type=float, default=None,
                        help="images (thousands) per stable phase and per fade-in in the short run "
                             "(default: the preset's own schedule, i.e. a full run)")
    parser.add_argument("--stable_kimg_at_end", type=float, default=None,
                        help="images (thousands) at the final resolution after its fade-in (default: phase_kimg)")
    parser.add_argument("--log_every", type=int, default=5)
    parser.add_argument("--workdir", default=None, help="default: a temporary directory, deleted afterwards")
    args = parser.parse_args(argv)

    from tfvgs.config import get_config
    from tfvgs.stages.gan import GanStage, build_schedule

    preset = get_config(args.config)
    overrides = [f"train.log_every={args.log_every}"]
    if args.phase_kimg is not None:
        short = get_config(args.config, [f"gan.lod_training_kimg={args.phase_kimg}",
                                         f"gan.lod_transition_kimg={args.phase_kimg}"])
        end = args.stable_kimg_at_end if args.stable_kimg_at_end is not None else args.phase_kimg
        total = build_schedule(short).images_until_full_resolution() / 1000 + end
        overrides += [f"gan.lod_training_kimg={args.phase_kimg}", f"gan.lod_transition_kimg={args.phase_kimg}",
                      f"gan.total_kimg={total}", "gan.checkpoint_every=100000"]
    config = get_config(args.config, overrides)

    with contextlib.ExitStack() as stack:
        workdir = args.workdir or stack.enter_context(tempfile.TemporaryDirectory())
        stage = GanStage(config, workdir, args.data_dir)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            logs = stage.run()
        wall = time.perf_counter() - start
        steps = logged_rates(stage.tensorboard_dir)

    schedule = build_schedule(config)
    by_phase = defaultdict(list)
    for step, values in sorted(steps.items()):
        if "progress/images_per_second" in values:
            shown = int(round(values["progress/kimg"] * 1000))
            phase = schedule.phase_at(shown)
            by_phase[(phase.resolution, phase.in_transition)].append(values["progress/images_per_second"])
    rates = {}
    common = {"benchmark": "gan_stage", "config": config.name, "load_average": os.getloadavg()[0],
              "threads": os.cpu_count()}
    for (resolution, fading), values in sorted(by_phase.items()):
        values = sorted(values)
        rate = values[len(values) // 2]
        rates[(resolution, fading)] = rate
        print(json.dumps({**common, "resolution": resolution, "fade_in": fading, "minibatch":
                          schedule.minibatch_size(resolution), "intervals": len(values),
                          "median_images_per_second": round(rate, 1)}), flush=True)
    print(json.dumps({**common, "measurement": "short_run", "images_shown": logs["images_shown"],
                      "wall_seconds": round(wall, 1), "mean_images_per_second": round(logs["images_per_second"], 1)}),
          flush=True)

    # The preset's own schedule: images per (resolution, fade-in) / measured rate of that phase.
    full = build_schedule(preset)
    total = int(round(preset.gan.total_kimg * 1000))
    boundaries = [0]
    while True:
        nxt = full.next_boundary(boundaries[-1])
        if nxt is None or nxt >= total:
            break
        boundaries.append(nxt)
    boundaries.append(total)
    seconds, missing = 0.0, []
    for begin, end in zip(boundaries, boundaries[1:]):
        phase = full.phase_at(begin)
        key = (phase.resolution, phase.in_transition)
        rate = rates.get(key) or rates.get((phase.resolution, not phase.in_transition))
        if rate is None:
            missing.append(key)
            continue
        seconds += (end - begin) / rate
    print(json.dumps({**common, "measurement": "estimate_full_schedule", "preset": preset.name,
                      "total_kimg": preset.gan.total_kimg, "estimated_seconds": round(seconds),
                      "estimated_hours": round(seconds / 3600, 2),
                      "phases_without_measurement": missing}), flush=True)


if __name__ == "__main__":
    main()
