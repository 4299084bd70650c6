"""Serving speed of the exported `audio_visual` SavedModel: `retrieve` latency against a large image index, and
embed throughput.

The model is an untrained dual encoder of the preset's size (speed does not depend on the weights) and the index holds
random N(0, 1) image features of the model's feature-map shape (speed does not depend on the values either), so no
data or training is needed. The servable is exported with `export.save_servable`, reloaded with
`tf.saved_model.load`, and its signatures are timed (what TF Serving runs, minus the RPC). Prints JSON lines:

  {"measure": "retrieve", "similarity": "misa", "index_size": 10000, "query_seconds": 8.2, "p50_ms": ..., "p95_ms": ...}
  {"measure": "retrieve", "similarity": "misa", "shortlist": 100, ...}   (two-stage: pooled shortlist, MISA re-rank)
  {"measure": "embed_audio", "batch": 16, "items_per_s": ...}            (also embed_audio_waveform, embed_image)

    python benchmarks/serving_bench.py --config cpu --index_size 10000
    python benchmarks/serving_bench.py --config cpu --index_size 10000 --similarities misa --shortlists 0 50 100 200

`rss_mbytes` is the process's peak resident memory after the line's export and load (ru_maxrss: it only grows, so
read the first line of a run, or run one index per process).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def _timings(fn, repeats: int, warmup: int = 2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def _environment():
    return {"load_avg_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(), "tensorflow": tf.__version__}


def export_and_load(model, config, index, similarity: str, workdir: str, shortlist: int = 0):
    from export.audio_visual import AudioVisualServable
    servable = AudioVisualServable(model, config, index=index, similarity=similarity, top_k=10, shortlist=shortlist)
    return export_and_load_servable(servable, workdir, f"audio_visual_{similarity}_{shortlist}")


def export_and_load_servable(servable, workdir: str, name: str):
    """Saves `servable` as TF Serving would load it and loads it back: (loaded, {"export_s", "load_s"})."""
    from export.exporter import save_servable
    start = time.perf_counter()
    path = save_servable(servable, workdir, name, 1, {"benchmark": True})
    saved = time.perf_counter() - start
    start = time.perf_counter()
    loaded = tf.saved_model.load(path)
    return loaded, {"export_s": round(saved, 2), "load_s": round(time.perf_counter() - start, 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="cpu")
    parser.add_argument("--index_size", type=int, default=10000)
    parser.add_argument("--similarities", nargs="+", default=["misa", "sisa"], choices=("misa", "sima", "sisa"))
    parser.add_argument("--query_seconds", type=float, default=8.2,
                        help="query caption length (8.2 s: the mean synthetic caption of the cpu preset)")
    parser.add_argument("--shortlists", type=int, nargs="+", default=[0],
                        help="MISA / SIMA: shortlist sizes to time (0: rank the whole index)")
    parser.add_argument("--index_dtype", default="float32", choices=("float32", "float16"))
    parser.add_argument("--in_process", action="store_true",
                        help="time the servable's retrieve tf.function without exporting and reloading it (an index "
                             "too large to export and load beside its numpy copy on this machine)")
    parser.add_argument("--repeats", type=int, default=30, help="timed retrieve calls")
    parser.add_argument("--batch", type=int, default=16, help="batch of the embed throughput measurements")
    parser.add_argument("--embed_repeats", type=int, default=5)
    parser.add_argument("--note", default="", help="free text recorded with every line (e.g. what else was running)")
    args = parser.parse_args(argv)

    from export.audio_visual import ImageIndex, audio_limits
    from tfvgs.config import get_config
    from tfvgs.stages.davenet import build_dual_encoder

    config = get_config(args.config)
    model = build_dual_encoder(config)
    size = config.world.image_size
    feature_shape = tuple(model.image_encoder(tf.zeros([1, size, size, 3]), training=False).shape[1:])
    limits = audio_limits(config)
    query_samples = min(int(args.query_seconds * limits["sample_rate"]), limits["max_samples"])
    rng = np.random.default_rng(0)
    query = (0.1 * rng.standard_normal((1, query_samples))).astype(np.float32)
    common = {"config": args.config, **_environment(), **({"note": args.note} if args.note else {})}

    with tempfile.TemporaryDirectory(prefix="serving_bench_") as workdir:
        embed_loaded = None
        for similarity in args.similarities:
            shape = (args.index_size, feature_shape[-1]) if similarity == "sisa" else (args.index_size,) + feature_shape
            features = np.empty(shape, np.dtype(args.index_dtype))     # filled in chunks: no float32 copy
            for start in range(0, shape[0], 1000):
                features[start:start + 1000] = rng.standard_normal((min(1000, shape[0] - start),) + shape[1:],
                                                                   dtype=np.float32)
            index = ImageIndex([f"image/{i:07d}" for i in range(args.index_size)], features,
                               {"kind": "random N(0, 1) features"})
            for shortlist in (args.shortlists if similarity != "sisa" else [0]):
                loaded = retrieve = None       # the previous servable's copy of the index goes before the next
                gc.collect()
                if args.in_process:
                    from export.audio_visual import AudioVisualServable
                    loaded = AudioVisualServable(model, config, index=index, similarity=similarity, top_k=10,
                                                 shortlist=shortlist)
                    retrieve, io_times = (lambda waveform, num_samples, s=loaded: s.retrieve(waveform, num_samples)), \
                        {"in_process": True}
                else:
                    loaded, io_times = export_and_load(model, config, index, similarity, workdir, shortlist)
                    retrieve = loaded.signatures["retrieve"]
                times = _timings(lambda: retrieve(waveform=tf.constant(query),
                                                  num_samples=tf.constant([query_samples]))["scores"].numpy(),
                                 args.repeats)
                print(json.dumps({"measure": "retrieve", "similarity": similarity, "shortlist": shortlist,
                                  "index_size": args.index_size, "index_feature_shape": list(shape[1:]),
                                  "index_dtype": args.index_dtype,
                                  "index_mbytes": round(features.nbytes / 2**20),
                                  "query_seconds": round(query_samples / limits["sample_rate"], 2), "batch": 1,
                                  "p50_ms": round(1000 * float(np.percentile(times, 50)), 1),
                                  "p95_ms": round(1000 * float(np.percentile(times, 95)), 1),
                                  "mean_ms": round(1000 * float(times.mean()), 1), "repeats": args.repeats,
                                  "rss_mbytes": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                                  **io_times, **common}), flush=True)
                embed_loaded = None if args.in_process else loaded
            del features, index, loaded, retrieve
            gc.collect()

        if args.in_process:
            return
        # embed throughput on the last loaded servable (the encoders are the same in every export)
        b = args.batch
        frames = min(int(args.query_seconds * 100), config.features.max_frames)
        logmel = tf.constant(rng.normal(-5.0, 3.0, (b, config.features.max_frames, config.features.num_mel_bins)),
                             tf.float32)
        waveforms = tf.constant(np.repeat(query, b, axis=0))
        images = tf.constant(rng.uniform(-1, 1, (b, size, size, 3)), tf.float32)
        sigs = embed_loaded.signatures
        cases = {
            "embed_audio": lambda: sigs["embed_audio"](logmel=logmel, nframes=tf.fill([b], frames)),
            "embed_audio_waveform": lambda: sigs["embed_audio_waveform"](
                waveform=waveforms, num_samples=tf.fill([b], query_samples)),
            "embed_image": lambda: sigs["embed_image"](image=images),
        }
        for name, fn in cases.items():
            times = _timings(lambda: [t.numpy() for t in fn().values()], args.embed_repeats)
            print(json.dumps({"measure": name, "batch": b, "items_per_s": round(b / float(np.median(times)), 1),
                              "ms_per_batch": round(1000 * float(np.median(times)), 1),
                              **({"query_seconds": round(query_samples / limits["sample_rate"], 2)}
                                 if "audio" in name else {"image_size": size}), **common}), flush=True)


if __name__ == "__main__":
    main()
