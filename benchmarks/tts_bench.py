"""Spoken-caption throughput: captions written and synthesised per second, serial vs threads, and caption lengths.

Prints JSON lines (one dict per measurement):
  {"measure": "caption_text", ...}   caption_for_scene calls per second (no audio)
  {"measure": "tts", "workers": W, ...}   synthesize_many over the same captions with W threads
  {"measure": "caption_length", "num_objects": N, ...}   mean words and audio seconds per caption by scene size

    python benchmarks/tts_bench.py --count 24 --workers 1 2
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfvgs.speech import ATTRIBUTES, VALUES, caption_for_scene, pick_voice, synthesize_many  # noqa: E402

DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "front": (0.0, -1.0), "behind": (0.0, 1.0)}


def random_scene(num_objects: int, seed: int) -> dict:
    """A stand-in CLEVR scene (attributes and CLEVR-style relationships; no rendering needed to time speech)."""
    rng = random.Random(seed)
    positions = []
    while len(positions) < num_objects:
        p = (rng.uniform(-3, 3), rng.uniform(-3, 3))
        if all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 >= 1.0 for q in positions):
            positions.append(p)
    objects = [{a: rng.choice(VALUES[a]) for a in ATTRIBUTES} for _ in positions]
    relationships = {name: [[j for j, q in enumerate(positions) if j != i and
                             (q[0] - p[0]) * d[0] + (q[1] - p[1]) * d[1] > 0.2] for i, p in enumerate(positions)]
                     for name, d in DIRECTIONS.items()}
    return {"objects": objects, "relationships": relationships}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=24, help="captions per TTS measurement")
    parser.add_argument("--objects", type=int, nargs=2, default=(2, 4), metavar=("MIN", "MAX"),
                        help="objects per scene for the TTS measurement (default: the cpu preset's 2-4)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--style", default="synthetic", choices=["synthetic", "natural"])
    parser.add_argument("--rate_range", type=int, nargs=2, default=(170, 220), help="words per minute (cpu preset)")
    parser.add_argument("--lengths", type=int, nargs="*", default=[1, 2, 3, 4, 6, 10],
                        help="scene sizes for the caption_length measurement (empty to skip)")
    parser.add_argument("--length_samples", type=int, default=6)
    args = parser.parse_args()

    scenes = [random_scene(random.Random(i).randint(*args.objects), seed=i) for i in range(args.count)]

    start = time.perf_counter()
    repeats = 20
    for _ in range(repeats):
        texts = [caption_for_scene(scene, seed=i, style=args.style) for i, scene in enumerate(scenes)]
    seconds = time.perf_counter() - start
    print(json.dumps({"measure": "caption_text", "style": args.style, "captions": repeats * len(scenes),
                      "captions_per_second": round(repeats * len(scenes) / seconds, 1)}), flush=True)

    items = [(text, pick_voice(f"bench-{i}", "train", rate_range=args.rate_range)) for i, text in enumerate(texts)]
    for workers in args.workers:
        start = time.perf_counter()
        waveforms = synthesize_many(items, workers=workers)
        seconds = time.perf_counter() - start
        audio = np.array([w.size / 16000 for w in waveforms])
        print(json.dumps({
            "measure": "tts", "workers": workers, "style": args.style, "captions": len(items),
            "objects": list(args.objects), "rate_range": list(args.rate_range), "seconds": round(seconds, 3),
            "captions_per_second": round(len(items) / seconds, 2),
            "mean_audio_seconds": round(float(audio.mean()), 3),
            "audio_seconds_per_wall_second": round(float(audio.sum()) / seconds, 1),
            "mean_words": round(float(np.mean([len(t.split()) for t, _ in items])), 1)}), flush=True)

    for n in args.lengths:
        texts = [caption_for_scene(random_scene(n, seed=10_000 + 100 * n + k), seed=k, style=args.style)
                 for k in range(args.length_samples)]
        voices = [pick_voice(f"length-{n}-{k}", "train", rate_range=args.rate_range)
                  for k in range(args.length_samples)]
        audio = np.array([w.size / 16000 for w in synthesize_many(zip(texts, voices), workers=max(args.workers))])
        print(json.dumps({"measure": "caption_length", "num_objects": n, "style": args.style,
                          "rate_range": list(args.rate_range), "samples": len(texts),
                          "mean_words": round(float(np.mean([len(t.split()) for t in texts])), 1),
                          "mean_audio_seconds": round(float(audio.mean()), 2),
                          "max_audio_seconds": round(float(audio.max()), 2)}), flush=True)


if __name__ == "__main__":
    main()
