"""davenet step time on 1 process against 2 local workers (MultiWorkerMirroredStrategy over 127.0.0.1).

Both train the same global batch with `python -m tfvgs.train --stage davenet`; the time per step is Keras' own
figure for the second checkpoint chunk (the first includes tracing). On one 2-core machine the 2 workers share the
cores the 1 process had, so this measures the cost of the collectives and of the input pipeline (each worker reads
every file under DATA sharding, its own files under FILE sharding: `--sharding`), not a speed-up. Prints JSON lines:
  {"measure": "multi_worker_step", "workers": 2, "sharding": "data", "ms_per_step": ..., "global_batch": ...}

    python benchmarks/multi_worker_bench.py --data_dir W/data/pairs --config demo --steps 40 --sharding data file
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP_TIME = re.compile(r"(\d+(?:\.\d+)?)(ms|s)/step")


def last_step_ms(log: str) -> float:
    times = [float(v) * (1.0 if unit == "ms" else 1000.0) for v, unit in STEP_TIME.findall(log)]
    if len(times) < 2:
        raise RuntimeError(f"expected 2 checkpoint chunks with a step time in the log. Received:\n{log[-2000:]}")
    return times[-1]


def run(args, workers: int, workdir: str, sharding: str) -> float:
    command = [sys.executable, "-m", "tfvgs.train", "--stage", "davenet", "--config", args.config, "--data_dir",
               args.data_dir, "--workdir", workdir, "--set", f"train.steps={args.steps}",
               "--set", f"train.checkpoint_every={args.steps // 2}", "--set", f"data.worker_sharding={sharding}"]
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    if workers == 1:
        out = subprocess.run(command + ["--set", "train.strategy=default"], env=env, capture_output=True, text=True,
                             check=True)
        return last_step_ms(out.stdout)
    ports = []
    for _ in range(workers):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cluster = json.dumps([f"127.0.0.1:{p}" for p in ports])
    procs = [subprocess.Popen(command + ["--set", "train.strategy=multi_worker"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env=dict(env, TF_CONFIG='{"cluster": {"worker": %s}, "task": {"type": "worker", '
                                                      '"index": %d}}' % (cluster, i))) for i in range(workers)]
    logs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a worker failed:\n" + "\n".join(log[-2000:] for log in logs))
    return last_step_ms(logs[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--config", default="demo")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sharding", nargs="+", default=["data", "file"], choices=["data", "file", "auto"],
                        help="data.worker_sharding of the multi-worker runs (one process reads every file anyway)")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from tfvgs.config import get_config
    batch = get_config(args.config).train.batch_size
    runs = [(workers, sharding) for workers in args.workers
            for sharding in (["-"] if workers == 1 else args.sharding)]
    for workers, sharding in runs:
        with tempfile.TemporaryDirectory(prefix="multi_worker_bench_") as workdir:
            ms = run(args, workers, workdir, "data" if sharding == "-" else sharding)
        print(json.dumps({"measure": "multi_worker_step", "config": args.config, "workers": workers,
                          "sharding": sharding, "global_batch": batch, "ms_per_step": round(ms, 1),
                          "pairs_per_s": round(1000.0 * batch / ms, 1), "steps": args.steps,
                          "load_avg_1min": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
