"""DualEncoder training-step throughput, FLOPs per pair and the fraction of this machine's f32 matmul peak; and the
time to score 1000 held-out pairs with MISA (retrieval evaluation).

Random batches of the preset's shapes (no input pipeline, so this is the model's own speed). Prints JSON lines:
  {"measure": "train_step", "config": ..., "pairs_per_s": ..., "train_gflop_per_pair": ..., "fraction_of_peak": ...}
  {"measure": "misa_recall_1000", "seconds": ..., "gflops": ..., "fraction_of_peak": ...}

    python benchmarks/train_step_bench.py --configs cpu paper --peak_gflops 316
(--peak_gflops from ../shared/tools/matmul_peak.py; without it the script measures a quick matmul peak itself.)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def quick_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    mm = tf.function(lambda x, y: tf.linalg.matmul(x, y))
    mm(a, b).numpy()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        mm(a, b).numpy()
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / sorted(times)[len(times) // 2] / 1e9


def bench_train_step(name: str, steps: int, peak: float) -> dict:
    from tfvgs.config import get_config
    from tfvgs.models import count_flops
    from tfvgs.stages.davenet import build_dual_encoder
    config = get_config(name)
    model = build_dual_encoder(config)
    b, size, frames = config.train.batch_size, config.world.image_size, config.features.max_frames
    rng = np.random.default_rng(0)
    batch = {"image": tf.constant(rng.uniform(-1, 1, (b, size, size, 3)), tf.float32),
             "logmel": tf.constant(rng.normal(size=(b, frames, config.features.num_mel_bins)), tf.float32),
             "nframes": tf.constant(rng.integers(frames // 2, frames + 1, b), tf.int32)}
    ds = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)  # trace + warm up
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = (time.perf_counter() - start) / steps
    image = count_flops(model.image_encoder, [1, size, size, 3])["train_flops"]
    audio = count_flops(model.audio_encoder, [1, frames, config.features.num_mel_bins])["train_flops"]
    per_pair = image + audio
    achieved = per_pair * b / seconds / 1e9
    return {"measure": "train_step", "config": name, "image_encoder": config.model.image_encoder,
            "audio_encoder": config.model.audio_encoder, "image_size": size, "max_frames": frames, "batch": b,
            "seconds_per_step": round(seconds, 3), "pairs_per_s": round(b / seconds, 2),
            "train_gflop_per_pair": round(per_pair / 1e9, 2), "achieved_gflops": round(achieved, 1),
            "peak_gflops": round(peak, 1), "fraction_of_peak": round(achieved / peak, 3)}


def bench_recall(peak: float, n: int = 1000) -> dict:
    from tfvgs import similarity
    from tfvgs.evaluation import retrieval
    from tfvgs.config import get_config
    config = get_config("cpu")
    d, frames = config.model.embedding_dim, config.features.max_frames // 16
    rng = np.random.default_rng(0)
    image = tf.constant(rng.normal(size=(n, 8, 8, d)), tf.float32)
    audio = tf.constant(rng.normal(size=(n, frames, d)), tf.float32)
    valid = tf.constant(rng.integers(frames // 2, frames + 1, n), tf.int32)
    score = tf.function(lambda i, a, f: similarity.similarity_matrix(i, a, f, "misa"))
    score(image[:10], audio[:10], valid[:10])
    start = time.perf_counter()
    recall = retrieval.recall_at_k(score(image, audio, valid))
    seconds = time.perf_counter() - start
    flops = 2.0 * n * 64 * n * frames * d
    return {"measure": "misa_recall_1000", "pairs": n, "regions": 64, "frames": frames, "dim": d,
            "seconds": round(seconds, 2), "gflops": round(flops / seconds / 1e9, 1), "peak_gflops": round(peak, 1),
            "fraction_of_peak": round(flops / seconds / 1e9 / peak, 3), "chance_r10": recall["chance"]["10"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["cpu", "paper"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--peak_gflops", type=float, default=None)
    args = parser.parse_args()
    peak = args.peak_gflops or quick_peak_gflops()
    print(json.dumps({"measure": "matmul_peak", "gflops": round(peak, 1),
                      "source": "--peak_gflops" if args.peak_gflops else "quick 2048^2 matmul"}), flush=True)
    for name in args.configs:
        print(json.dumps(bench_train_step(name, args.steps if name != "paper" else max(2, args.steps // 5), peak)),
              flush=True)
    print(json.dumps(bench_recall(peak)), flush=True)


if __name__ == "__main__":
    main()
