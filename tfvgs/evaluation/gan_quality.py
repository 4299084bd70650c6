"""How good are the GAN's scenes? Distances and statistics measured with our own attribute segmenter.

FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) are usually computed on Inception-v3 features, which needs
downloaded ImageNet weights and measures "looks like a photo". We have neither the download nor photos: our images
are CLEVR-like scenes, and the network that knows what matters in them is the attribute segmenter (`tfvgs.models.
attribute_segmenter`), trained on the rendered scenes. So the features here are the segmenter's bottleneck
activations, global-average-pooled ([B, width * 2**depth]): they summarise which objects, colours and materials an
image holds. The numbers are comparable across checkpoints of one run with one segmenter, not with published FIDs.

Besides the two distances the report says what the GAN draws, in the terms the rest of the pipeline uses it:

    well_formed_fraction   samples whose description (`tfvgs.describe`) is confident and has >= 1 object: the
                           share of GAN images the captioner can use (paper 000 sec. 6.1 skips the rest);
    attributes             per family (shape, color, material, size) the frequency of each value among described
                           objects, for samples and for rendered images described by the same segmenter (its errors
                           then affect both sides alike), and the total variation distance between the two;
    object_counts          distribution of the number of described objects per image, samples vs rendered.

    python -m tfvgs.evaluation.gan_quality --workdir W --data_dir SCENES --num_samples 500 --out W/gan/quality/

writes `quality.json`, `attributes.png` and appends the report to `history.jsonl` in `--out`, then plots
`history.png` (FID, KID, well-formed fraction over images shown) from all reports in it.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
from scipy import linalg

from tfvgs.plotting import pyplot, save_figure
from tfvgs.world.vocabulary import ATTRIBUTES

ATTRIBUTE_FAMILIES = ("shape", "color", "material", "size")   # as tfvgs.models.attribute_segmenter (no TF here)
REPORT_FILENAME = "quality.json"
HISTORY_FILENAME = "history.jsonl"
ATTRIBUTES_PLOT_FILENAME = "attributes.png"
COUNTS_PLOT_FILENAME = "object_counts.png"
HISTORY_PLOT_FILENAME = "history.png"


# ----------------------------------------------------------------------------------------------------------------
# Features and distances


def segmenter_features(segmenter, images) -> np.ndarray:
    """Global-average-pooled bottleneck activations of an `AttributeSegmenter`, float64 [B, width * 2**depth].

    Runs the segmenter's encoder blocks and bottleneck (the first half of `AttributeSegmenter.call`); the decoder and
    heads are not needed for the features.
    """
    import tensorflow as tf
    if not hasattr(segmenter, "encoder_blocks") or not hasattr(segmenter, "bottleneck"):
        raise ValueError("`segmenter` must be an AttributeSegmenter (with `encoder_blocks` and `bottleneck`). "
                         f"Received: {type(segmenter).__name__}")
    images = _check_images(images, "images")
    x = tf.convert_to_tensor(images, dtype=segmenter.compute_dtype)
    if not segmenter.built:
        segmenter(x[:1], training=False)
    segmenter._check_input(x.shape)
    for block in segmenter.encoder_blocks:
        x = tf.nn.max_pool2d(block(x), 2, 2, "VALID")
    x = segmenter.bottleneck(x)
    return tf.reduce_mean(tf.cast(x, tf.float32), axis=[1, 2]).numpy().astype(np.float64)


def _check_features(a, name: str) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"`{name}` must be features [N >= 2, D]. Received: shape {a.shape}")
    return a


def frechet_distance(features_a, features_b, eps: float = 1e-6) -> float:
    """||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between Gaussians fitted to two feature sets [N, D].

    When the product of covariances is singular (fewer samples than dimensions) `eps` is added to both diagonals,
    as in the reference implementation (pytorch-fid).
    """
    a, b = _check_features(features_a, "features_a"), _check_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Feature sizes differ. Received: {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = _sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(cov_a.shape[0]) * eps
        covmean = _sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)          # sqrtm returns tiny imaginary parts from rounding
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """scipy.linalg.sqrtm without its warning on (near-)singular input; the caller checks for non-finite values."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(linalg.sqrtm(matrix))


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """k(x, y) = (x.y / D + coef0) ** degree, the KID kernel."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased MMD^2 estimate with the polynomial kernel (diagonal terms of the within-set kernels left out)."""
    m, n = len(x), len(y)
    k_xx, k_yy = polynomial_kernel(x, x, degree, coef0), polynomial_kernel(y, y, degree, coef0)
    k_xy = polynomial_kernel(x, y, degree, coef0)
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                 - 2.0 * k_xy.mean())


def kernel_distance(features_a, features_b, num_subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> Dict[str, float]:
    """KID: the unbiased polynomial-kernel MMD^2 averaged over random subsets (Binkowski et al. 2018).

    Subsets of min(subset_size, N_a, N_b) are drawn without replacement within each subset. Returns {"kid": mean,
    "kid_std": standard deviation over subsets}. Unbiased, so it can be slightly negative for equal distributions.
    """
    a, b = _check_features(features_a, "features_a"), _check_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Feature sizes differ. Received: {a.shape} and {b.shape}")
    if int(num_subsets) < 1 or int(subset_size) < 2:
        raise ValueError(f"`num_subsets` must be >= 1 and `subset_size` >= 2. Received: {num_subsets}, "
                         f"{subset_size}")
    size = min(int(subset_size), len(a), len(b))
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
              for _ in range(int(num_subsets))]
    return {"kid": float(np.mean(values)), "kid_std": float(np.std(values))}


# ----------------------------------------------------------------------------------------------------------------
# Statistics of descriptions


def well_formed(description: Mapping[str, Any]) -> bool:
    """A description the captioner can use: confident and with at least one object."""
    return bool(description.get("confident")) and len(description.get("objects", ())) >= 1


def attribute_distribution(descriptions: Iterable[Mapping[str, Any]]) -> Dict[str, Dict[str, float]]:
    """Per family, the frequency of each vocabulary value among all described objects ({} values: all 0 when no
    object was described). Values outside the vocabulary raise ValueError."""
    counts = {family: dict.fromkeys(ATTRIBUTES[family], 0) for family in ATTRIBUTE_FAMILIES}
    for description in descriptions:
        for obj in description.get("objects", ()):
            for family in ATTRIBUTE_FAMILIES:
                value = obj.get(family)
                if value not in counts[family]:
                    raise ValueError(f"Unknown {family} {value!r} in a described object; known: "
                                     f"{list(ATTRIBUTES[family])}. Received: {obj}")
                counts[family][value] += 1
    distribution = {}
    for family, family_counts in counts.items():
        total = sum(family_counts.values())
        distribution[family] = {v: (c / total if total else 0.0) for v, c in family_counts.items()}
    return distribution


def total_variation(p: Mapping[Any, float], q: Mapping[Any, float]) -> Optional[float]:
    """0.5 * sum |p - q| over the union of keys; None when either distribution is empty (all zero)."""
    if not sum(p.values()) or not sum(q.values()):
        return None
    keys = set(p) | set(q)
    return float(0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys))


def compare_attributes(fake_descriptions: Iterable[Mapping[str, Any]],
                       real_descriptions: Iterable[Mapping[str, Any]]) -> Dict[str, Any]:
    """{generated, real, total_variation}: the attribute distributions of both sides and their TV per family."""
    fake_attributes, real_attributes = attribute_distribution(fake_descriptions), attribute_distribution(
        real_descriptions)
    return {"generated": fake_attributes, "real": real_attributes,
            "total_variation": {f: total_variation(fake_attributes[f], real_attributes[f])
                                for f in ATTRIBUTE_FAMILIES}}


def mean_objects(descriptions: Sequence[Mapping[str, Any]]) -> Optional[float]:
    """Described objects per image (None for no images)."""
    return float(np.mean([len(d["objects"]) for d in descriptions])) if descriptions else None


def kept_statistics(fake_descriptions: Sequence[Mapping[str, Any]],
                    real_descriptions: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """The attribute and object-count statistics of the well-formed images only, generated vs rendered.

    Audio CLEVRGAN captions only well-formed samples, so these (not the statistics of every sample) are what the
    spoken pairs will hold; a GAN that collapses onto one confidently described colour scores a high well-formed
    fraction but a large TV here. TV is None when no image of either side is kept.
    """
    fake_kept = [d for d in fake_descriptions if well_formed(d)]
    real_kept = [d for d in real_descriptions if well_formed(d)]
    return {"num_generated": len(fake_kept), "num_real": len(real_kept),
            "attributes": compare_attributes(fake_kept, real_kept),
            "mean_objects_generated": mean_objects(fake_kept), "mean_objects_real": mean_objects(real_kept)}


def rejection_statistics(descriptions: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Why images are not well-formed: how many had no object, and for the others, which attribute family was the
    weakest of their least confident object (the family the drawing leaves most ambiguous to the segmenter).

    Counts in = counts out: num_images = kept + no_object + sum(weakest_family.values()).
    """
    no_object, weakest = 0, dict.fromkeys(ATTRIBUTE_FAMILIES, 0)
    for d in descriptions:
        if well_formed(d):
            continue
        objects = d.get("objects") or ()
        if not objects:
            no_object += 1
            continue
        least = min(objects, key=lambda o: min(o["attribute_confidence"][f] for f in ATTRIBUTE_FAMILIES))
        weakest[min(ATTRIBUTE_FAMILIES, key=lambda f: least["attribute_confidence"][f])] += 1
    return {"num_images": len(descriptions), "kept": sum(1 for d in descriptions if well_formed(d)),
            "no_object": no_object, "weakest_family": weakest}


def object_count_distribution(descriptions: Sequence[Mapping[str, Any]]) -> Dict[str, float]:
    """Fraction of images with each number of described objects, keyed by the count as a string (JSON keys)."""
    counts = np.bincount([len(d.get("objects", ())) for d in descriptions], minlength=1)
    total = max(int(counts.sum()), 1)
    return {str(k): float(c / total) for k, c in enumerate(counts)}


# ----------------------------------------------------------------------------------------------------------------
# The report


def _check_images(images, name: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"`{name}` must be a batch [N, S, S, 3] (float in [-1, 1] or uint8). Received: shape "
                         f"{images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1.0
    return images.astype(np.float32)


def _measure(segmenter, batches: Iterable[np.ndarray], describe_options: Mapping[str, Any]):
    """(features [N, D], descriptions) of all images in `batches`."""
    from tfvgs.describe import describe_images
    features, descriptions = [], []
    for images in batches:
        features.append(segmenter_features(segmenter, images))
        descriptions.extend(describe_images(segmenter, images, **describe_options))
    return np.concatenate(features), descriptions


def generate_images(generator, seeds: Sequence[int], level: Optional[int] = None) -> np.ndarray:
    """Samples for `seeds` (`gan_io.latents_for_seeds`) at `level` (default: final), upscaled (nearest) to the
    generator's full resolution and clipped to [-1, 1]: what the segmenter would see of this generator's images."""
    from tfvgs.gan_io import latents_for_seeds
    latents = latents_for_seeds(seeds, generator.latent_dim)
    images = generator(latents, level=level) if level is not None else generator(latents)
    if images.shape[1] != generator.max_resolution:
        images = generator.upscale_to_max_resolution(images)
    import keras
    return np.clip(keras.ops.convert_to_numpy(images).astype(np.float32), -1.0, 1.0)


def quality_report(generator, segmenter, real_images, num_samples: int, config, seed: int = 0, *,
                   level: Optional[int] = None, batch_size: Optional[int] = None, kid_subsets: int = 100,
                   kid_subset_size: int = 1000, info: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Measures `num_samples` samples of `generator` against `real_images` with `segmenter`.

    Args:
        generator: a `ProgressiveGenerator` (e.g. `gan_io.load_generator(workdir)` or `gan.sampling_generator`).
        segmenter: a trained `AttributeSegmenter` (`<workdir>/segmenter/model.keras`).
        real_images: rendered images [N, S, S, 3], float in [-1, 1] or uint8, S = the generator's max resolution.
        num_samples: samples drawn, with latents for seeds seed .. seed + num_samples - 1.
        config: the run's `Config`: `segmenter.min_object_pixels`, `segmenter.min_confidence` (describing) and
            `segmenter.batch_size` (the default batch size).
        seed: first latent seed; also seeds the KID subsets.
        level: generator level to sample at (default: final); lower levels are upscaled, e.g. to follow a run
            through its growth phases.
        info: merged into the report (e.g. `gan_io.read_info(workdir)`; its `images_shown` is the x axis of the
            history plot).

    Returns:
        a JSON-ready dict: fid, kid, kid_std, well_formed_fraction (+ real_well_formed_fraction), attributes
        {generated, real, total_variation}, object_counts {generated, real, mean_generated, mean_real,
        total_variation}, kept (the same statistics over well-formed images only, `kept_statistics`), rejected
        {generated, real} (`rejection_statistics`: why the others are not well-formed),
        num_samples, num_real, feature_dim, seed, sample_level, and the `info` entries.
    """
    if int(num_samples) < 2:
        raise ValueError(f"`num_samples` must be >= 2 (FID needs a covariance). Received: {num_samples}")
    real_images = _check_images(real_images, "real_images")
    if len(real_images) < 2:
        raise ValueError(f"`real_images` must hold >= 2 images. Received: {len(real_images)}")
    if real_images.shape[1] != generator.max_resolution:
        raise ValueError(f"`real_images` must be {generator.max_resolution} px like the generator's output. "
                         f"Received: shape {real_images.shape}")
    s = config.segmenter
    batch_size = int(batch_size or s.batch_size)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: {batch_size}")
    describe_options = {"min_object_pixels": s.min_object_pixels, "min_confidence": s.min_confidence}
    num_samples, seed = int(num_samples), int(seed)

    def generated_batches():
        for start in range(0, num_samples, batch_size):
            seeds = range(seed + start, seed + min(start + batch_size, num_samples))
            yield generate_images(generator, seeds, level)

    def real_batches():
        for start in range(0, len(real_images), batch_size):
            yield real_images[start:start + batch_size]

    fake_features, fake_descriptions = _measure(segmenter, generated_batches(), describe_options)
    real_features, real_descriptions = _measure(segmenter, real_batches(), describe_options)
    kid = kernel_distance(fake_features, real_features, kid_subsets, kid_subset_size, seed)
    fake_counts, real_counts = object_count_distribution(fake_descriptions), object_count_distribution(
        real_descriptions)
    report = dict(info or {})
    report.update({
        "fid": frechet_distance(fake_features, real_features),
        **kid,
        "well_formed_fraction": float(np.mean([well_formed(d) for d in fake_descriptions])),
        "real_well_formed_fraction": float(np.mean([well_formed(d) for d in real_descriptions])),
        "attributes": {**compare_attributes(fake_descriptions, real_descriptions),
                       "num_objects_generated": sum(len(d["objects"]) for d in fake_descriptions),
                       "num_objects_real": sum(len(d["objects"]) for d in real_descriptions)},
        "object_counts": {"generated": fake_counts, "real": real_counts,
                          "mean_generated": mean_objects(fake_descriptions),
                          "mean_real": mean_objects(real_descriptions),
                          "total_variation": total_variation(fake_counts, real_counts)},
        "kept": kept_statistics(fake_descriptions, real_descriptions),
        "rejected": {"generated": rejection_statistics(fake_descriptions),
                     "real": rejection_statistics(real_descriptions)},
        "num_samples": num_samples, "num_real": int(len(real_images)), "feature_dim": int(fake_features.shape[1]),
        "features": "attribute segmenter bottleneck, global-average-pooled", "seed": seed, "sample_level": level,
    })
    return report


# ----------------------------------------------------------------------------------------------------------------
# Writing and plotting


def read_history(out_dir: str) -> List[Dict[str, Any]]:
    """The reports appended to `<out_dir>/history.jsonl` so far ([] when absent)."""
    import tensorflow as tf
    path = os.path.join(out_dir, HISTORY_FILENAME)
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_attributes(report: Mapping[str, Any], path: str) -> None:
    """Bar charts, one per family, of generated vs real attribute frequencies (TV distance in each title)."""
    plt = pyplot()
    attributes = report["attributes"]
    fig, axes = plt.subplots(1, len(ATTRIBUTE_FAMILIES), figsize=(4 * len(ATTRIBUTE_FAMILIES), 3.5))
    for ax, family in zip(axes, ATTRIBUTE_FAMILIES):
        values = list(ATTRIBUTES[family])
        x = np.arange(len(values))
        ax.bar(x - 0.2, [attributes["generated"][family].get(v, 0.0) for v in values], 0.4, label="generated")
        ax.bar(x + 0.2, [attributes["real"][family].get(v, 0.0) for v in values], 0.4, label="rendered")
        ax.set_xticks(x, values, rotation=45, ha="right")
        tv = attributes["total_variation"].get(family)
        ax.set_title(f"{family} (TV {tv:.3f})" if tv is not None else f"{family} (TV n/a)")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("fraction of described objects")
    axes[0].legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_object_counts(report: Mapping[str, Any], path: str) -> None:
    """Bar chart of the number of described objects per image, generated vs real."""
    plt = pyplot()
    counts = report["object_counts"]
    top = max(len(counts["generated"]), len(counts["real"]))
    x = np.arange(top)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(x - 0.2, [counts["generated"].get(str(k), 0.0) for k in x], 0.4, label="generated")
    ax.bar(x + 0.2, [counts["real"].get(str(k), 0.0) for k in x], 0.4, label="rendered")
    ax.set_xticks(x)
    ax.set_xlabel("described objects per image")
    ax.set_ylabel("fraction of images")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_history(reports: Sequence[Mapping[str, Any]], path: str) -> None:
    """FID, KID and well-formed fraction against images shown (report order when `images_shown` is missing)."""
    plt = pyplot()
    x_label = "images shown" if all("images_shown" in r for r in reports) else "report"
    if x_label == "images shown":          # a resumed run may append out of order
        reports = sorted(reports, key=lambda r: r["images_shown"])
    x = [r["images_shown"] if x_label == "images shown" else i for i, r in enumerate(reports)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for ax, key, title in zip(axes, ("fid", "kid", "well_formed_fraction"),
                              ("FID (segmenter features)", "KID (segmenter features)", "well-formed fraction")):
        y = [r.get(key, np.nan) for r in reports]
        ax.plot(x, y, marker="o", label="generated")
        if key == "kid":
            std = np.array([r.get("kid_std", 0.0) for r in reports])
            ax.fill_between(x, np.array(y) - std, np.array(y) + std, alpha=0.2)
        if key == "well_formed_fraction":
            ax.plot(x, [r.get("real_well_formed_fraction", np.nan) for r in reports], linestyle="--",
                    label="rendered")
            ax.set_ylim(0, 1.05)
            ax.legend()
        ax.set_title(title)
        ax.set_xlabel(x_label)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_report(report: Mapping[str, Any], out_dir: str, append_history: bool = True) -> Dict[str, str]:
    """Writes `quality.json`, `attributes.png`, `object_counts.png`; appends the report to `history.jsonl` (unless
    told not to) and plots `history.png` from every report in it. Returns {what: path}."""
    import tensorflow as tf
    tf.io.gfile.makedirs(out_dir)
    paths = {"report": os.path.join(out_dir, REPORT_FILENAME),
             "attributes": os.path.join(out_dir, ATTRIBUTES_PLOT_FILENAME),
             "object_counts": os.path.join(out_dir, COUNTS_PLOT_FILENAME),
             "history": os.path.join(out_dir, HISTORY_FILENAME),
             "history_plot": os.path.join(out_dir, HISTORY_PLOT_FILENAME)}
    with tf.io.gfile.GFile(paths["report"], "w") as f:
        f.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    plot_attributes(report, paths["attributes"])
    plot_object_counts(report, paths["object_counts"])
    history = read_history(out_dir)
    if append_history:
        history.append(dict(report))
        with tf.io.gfile.GFile(paths["history"], "w") as f:    # gfile has no append on every filesystem
            f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in history))
    if history:
        plot_history(history, paths["history_plot"])
    return paths


# ----------------------------------------------------------------------------------------------------------------
# Command line


def load_real_images(data_dir: str, split: str, config, count: int) -> np.ndarray:
    """Up to `count` rendered images of `split`, float [-1, 1]."""
    from tfvgs import data
    images = []
    for batch in data.scenes_dataset(data_dir, split, config, config.segmenter.batch_size):
        images.append(batch["image"].numpy())
        if sum(len(b) for b in images) >= count:
            break
    if not images:
        raise ValueError(f"The {split!r} split of data_dir {data_dir!r} has no scenes.")
    return np.concatenate(images)[:count]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tfvgs.evaluation.gan_quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="workdir with gan/generator.keras (and the segmenter)")
    parser.add_argument("--data_dir", required=True, help="rendered scene TFRecords (the real images)")
    parser.add_argument("--num_samples", type=int, default=500, help="generated samples (and real images) to use")
    parser.add_argument("--out", default=None, help="output folder (default: WORKDIR/gan/quality)")
    parser.add_argument("--split", default="val", help="split of the real images")
    parser.add_argument("--segmenter", default=None, help="segmenter model (default: WORKDIR/segmenter/model.keras)")
    parser.add_argument("--config", default=None,
                        help="preset name (default: the config saved in WORKDIR/gan/config.json)")
    parser.add_argument("--seed", type=int, default=0, help="first latent seed")
    parser.add_argument("--allow_partial", action="store_true", help="accept a generator that has not fully grown")
    parser.add_argument("--no_history", action="store_true", help="do not append to history.jsonl")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> Dict[str, Any]:
    from tfvgs import gan_io, workdir as layout
    from tfvgs.config import Config, get_config
    if args.config:
        config = get_config(args.config)
    else:
        saved = layout.config_path(args.workdir, gan_io.STAGE_NAME)
        if not os.path.exists(saved):
            raise ValueError(f"No --config given and no saved config at {saved}. Received: --workdir {args.workdir}")
        config = Config.load(saved)
    segmenter_path = args.segmenter or layout.model_path(args.workdir, "segmenter")
    if not os.path.exists(segmenter_path):
        raise FileNotFoundError(f"No segmenter at {segmenter_path}; train one with `python -m tfvgs.train --stage "
                                f"segmenter` or pass --segmenter.")
    segmenter = layout.load_model(segmenter_path)
    generator = gan_io.load_generator(args.workdir, allow_partial=args.allow_partial)
    reals = load_real_images(args.data_dir, args.split, config, args.num_samples)
    report = quality_report(generator, segmenter, reals, args.num_samples, config, args.seed,
                            info=gan_io.read_info(args.workdir))
    out = args.out or os.path.join(args.workdir, gan_io.STAGE_NAME, "quality")
    paths = write_report(report, out, append_history=not args.no_history)
    print(json.dumps({"fid": report["fid"], "kid": report["kid"],
                      "well_formed_fraction": report["well_formed_fraction"],
                      "attribute_tv": report["attributes"]["total_variation"],
                      "kept_attribute_tv": report["kept"]["attributes"]["total_variation"],
                      "kept_mean_objects": [report["kept"]["mean_objects_generated"],
                                            report["kept"]["mean_objects_real"]],
                      "out": paths["report"]}), flush=True)
    return report


def main(argv: Optional[Sequence[str]] = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main()
