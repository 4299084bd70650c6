"""What a two-stage `retrieve` (pooled shortlist, MISA re-rank) costs in recall, on a trained stage's held-out pairs.

Every caption of the split queries the split's images (the gallery of paper 000 Table 2), ranked by the servable's
own code (`export.audio_visual.AudioVisualServable`): full MISA over the gallery, SISA alone, and the two-stage
ranking for each shortlist size. Recall is audio -> image (what `retrieve` serves), with chance k / N. Prints JSON
lines:
  {"measure": "retrieve_recall", "ranking": "two_stage", "shortlist": 20, "n_pairs": 200, "r1": ..., "r5": ...,
   "r10": ..., "r10_minus_full": ..., "top10_agreement": ...}

    python benchmarks/retrieve_recall_bench.py --workdir W --stage davenet --data_dir W/data/pairs \
        --shortlists 10 20 50 100 [--gallery_size 10000]

`--latency_repeats R` also exports each ranking's servable as a SavedModel, reloads it and times its `retrieve`
signature R times on one query of `--query_seconds` (p50/p95 in the same JSON line), so recall and latency are of
one index and one model.

`--gallery_size G` grows the gallery to G images with distractors drawn by W's GAN from latent seeds of their own
namespace and kept only when W's segmenter describes them confidently (the filter Audio CLEVRGAN applies), so they
come from the distribution the test images come from; each caption's own image is still the only right answer.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

KS = (1, 5, 10)


def recall_of_returned(indices: np.ndarray) -> dict:
    """indices [N, k]: the images returned for caption q, best first; its own image is q."""
    own = np.arange(indices.shape[0])[:, None]
    return {f"r{k}": round(100 * float(np.mean(np.any(indices[:, :k] == own, axis=1))), 2) for k in KS}


def top10_agreement(indices: np.ndarray, reference: np.ndarray) -> float:
    """Mean share of the reference ranking's top 10 that `indices` also returns in its top 10 (1.0: the same
    images). Unlike recall it does not depend on how good the model is, only on how faithful the shortlist is."""
    shared = [len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(indices, reference)]
    return round(float(np.mean(shared)), 4)


DISTRACTOR_NAMESPACE = "retrieve_recall_bench/distractors"


def distractor_features(workdir: str, config, model, count: int, batch: int = 256):
    """Image features [count, H', W', D] of GAN samples the segmenter describes confidently, and how many samples
    were drawn to find them. Seeds come from their own namespace, so no distractor is a test image."""
    import tensorflow as tf

    from beam_pipelines.audio_clevrgan import latent_seed
    from tfvgs import describe, gan_io, workdir as layout
    from tfvgs.edits import negatives

    generator = gan_io.load_generator(workdir)
    segmenter = layout.load_step_model(workdir, "segmenter")
    s = config.segmenter
    kept, drawn = [], 0
    while sum(int(f.shape[0]) for f in kept) < count:
        if drawn > 50 * count:
            raise RuntimeError(f"the segmenter of {workdir} described fewer than 1 in 50 of {drawn} GAN samples "
                               f"confidently: cannot find {count} distractors")
        seeds = [latent_seed(config.seed, i, DISTRACTOR_NAMESPACE) for i in range(drawn, drawn + batch)]
        images = negatives.quantize(generator(gan_io.latents_for_seeds(seeds, generator.latent_dim)))
        drawn += batch
        described = describe.describe_images(segmenter, images.numpy(), min_object_pixels=s.min_object_pixels,
                                             min_confidence=s.min_confidence)
        keep = np.array([d["confident"] for d in described])
        if keep.any():
            kept.append(model.image_encoder(tf.boolean_mask(images, keep), training=False))
    return tf.concat(kept, 0)[:count], drawn


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--stage", default="davenet")
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--num_pairs", type=int, default=1000)
    parser.add_argument("--shortlists", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--similarity", default="misa", choices=("misa", "sima"))
    parser.add_argument("--batch", type=int, default=16, help="captions ranked at once")
    parser.add_argument("--gallery_size", type=int, default=0,
                        help="add GAN-drawn, confidently described distractor images up to this many (0: none)")
    parser.add_argument("--index_dtype", default="float32", choices=("float32", "float16"),
                        help="how the two-stage index stores its maps (the full-MISA reference stays float32)")
    parser.add_argument("--latency_repeats", type=int, default=0,
                        help="time the exported and reloaded `retrieve` of each ranking this many times (0: off)")
    parser.add_argument("--query_seconds", type=float, default=8.2, help="length of the timed query")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from export.audio_visual import AudioVisualServable, ImageIndex
    from tfvgs import data, workdir as layout
    from tfvgs.evaluation import retrieval

    config = layout.step_config(args.workdir, args.stage)
    model = layout.load_step_model(args.workdir, args.stage)
    dataset = data.pairs_dataset(args.data_dir, args.split, config, batch_size=64)
    image_feats, audio_feats, frames, ids = retrieval.embed_pairs(model, dataset, args.num_pairs)
    n = len(ids)
    drawn = 0
    if args.gallery_size > n:
        distractors, drawn = distractor_features(args.workdir, config, model, args.gallery_size - n)
        image_feats = tf.concat([image_feats, distractors], 0)
        ids = ids + [f"distractor-{i}" for i in range(int(distractors.shape[0]))]
    index = ImageIndex(ids, image_feats.numpy(), {"data_dir": args.data_dir, "split": args.split})
    common = {"workdir": args.workdir, "stage": args.stage, "split": args.split, "n_pairs": n,
              "gallery": len(ids), "distractors_drawn": drawn, "similarity": args.similarity,
              "chance_r10": round(100 * min(1.0, 10 / len(ids)), 2)}

    def latency(servable) -> dict:
        """p50/p95 of the servable's `retrieve` signature, exported and reloaded (`serving_bench`); {} when off."""
        if args.latency_repeats <= 0:
            return {}
        import tempfile

        import serving_bench
        from export.audio_visual import audio_limits
        limits = audio_limits(config)
        samples = min(int(args.query_seconds * limits["sample_rate"]), limits["max_samples"])
        query = tf.constant((0.1 * np.random.default_rng(0).standard_normal((1, samples))).astype(np.float32))
        with tempfile.TemporaryDirectory(prefix="retrieve_recall_bench_") as tmp:
            loaded, io_times = serving_bench.export_and_load_servable(servable, tmp, "retrieve")
            retrieve = loaded.signatures["retrieve"]
            times = serving_bench._timings(
                lambda: retrieve(waveform=query, num_samples=tf.constant([samples]))["scores"].numpy(),
                args.latency_repeats)
        return {"p50_ms": round(1000 * float(np.percentile(times, 50)), 1),
                "p95_ms": round(1000 * float(np.percentile(times, 95)), 1), "latency_repeats": args.latency_repeats,
                "query_seconds": round(samples / limits["sample_rate"], 2), **io_times,
                "load_avg_1min": round(os.getloadavg()[0], 2)}

    def ranked(servable, two_stage: bool) -> np.ndarray:
        out = []
        for start in range(0, n, args.batch):
            a, f = audio_feats[start:start + args.batch], frames[start:start + args.batch]
            if two_stage:
                out.append(servable._retrieve_two_stage(a, f)["indices"].numpy())
            else:
                out.append(tf.math.top_k(servable.index_scores(a, f), k=servable.top_k).indices.numpy())
        return np.concatenate(out)

    servable = AudioVisualServable(model, config, index, args.similarity, top_k=10)
    full_top = ranked(servable, False)
    full = recall_of_returned(full_top)
    print(json.dumps({"measure": "retrieve_recall", "ranking": f"full_{args.similarity}", **full, **latency(servable),
                      **common}), flush=True)
    pooled = ImageIndex(ids, tf.reduce_mean(image_feats, axis=[1, 2]).numpy())
    servable = AudioVisualServable(model, config, pooled, "sisa", top_k=10)
    sisa = recall_of_returned(ranked(servable, False))
    print(json.dumps({"measure": "retrieve_recall", "ranking": "sisa", **sisa,
                      "r10_minus_full": round(sisa["r10"] - full["r10"], 2), **latency(servable), **common}),
          flush=True)
    stored = ImageIndex(ids, image_feats.numpy().astype(args.index_dtype))
    for shortlist in args.shortlists:
        servable = AudioVisualServable(model, config, stored, args.similarity, top_k=10, shortlist=shortlist)
        top = ranked(servable, True)
        result = recall_of_returned(top)
        print(json.dumps({"measure": "retrieve_recall", "ranking": "two_stage", "shortlist": servable.shortlist,
                          "index_dtype": args.index_dtype,
                          **result, "r10_minus_full": round(result["r10"] - full["r10"], 2),
                          "top10_agreement": top10_agreement(top, full_top), **latency(servable), **common}),
              flush=True)


if __name__ == "__main__":
    main()
