"""The `cluster` and `hn_cluster` stages: concept clusters and their GAN units (paper 000 sec. 5.5 and 4.2).

No training. From the trained model of `source` (random_edits, or hn_random_edits for hn_cluster):
  1. run `edits.cluster_pairs` training pairs through it; binarise every embedding unit at its top 1% over all image
     locations (and, separately, all valid audio frames); count how often units co-activate at one location/frame;
     partition the units with a dendrogram of that co-occurrence into `edits.num_clusters` clusters w_k;
  2. draw `edits.ranking_samples` GAN images; for each cluster the segmentation s(I|w_k) = image-feature locations
     where the cluster's activation is in the top (1 - edits.segmentation_quantile); rank all h4 units by the IoU of
     their top-quantile activation maps with s (GAN Dissection);
  3. for analysis only (never for training): name each cluster by the segmenter's attribute value whose regions
     overlap s(I|w_k) most, and list the caption words heard where the cluster's audio activation peaks (placed by
     relative position in the caption, as there are no word timings: approximate).

Writes `<workdir>/<name>/clusters.json` ({"clusters": [{"id", "units", "h4_ranking", "h4_iou", "label",
"top_words"}], "dead_units", ...}), `dendrogram.png` and `clusters.png` (per cluster, the generated images that
activate it most with s(I|w_k) outlined). The targeted edit stages read clusters.json.
"""
from __future__ import annotations

import collections
import json
import os
import re
import time
from typing import Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from tfvgs import atomic_files, data, gan_io, workdir as layout
from tfvgs.stages.step import Step

RANKING_SEED_BASE = 10_000_000   # latent seeds of the ranking sample: apart from the Audio CLEVRGAN data's seeds
BATCH = 64
EFFECT_SAMPLES = 100   # ranking samples per cluster whose edits name it (`effect_labels`)


class ClusterStage(Step):
    name = "cluster"
    multi_worker_ok = False   # trains nothing: one process ranks the units
    source = "random_edits"
    data_kinds = ("gan_pairs",)
    data_splits = ("train",)

    def source_model(self):
        return layout.load_step_model(self.workdir, self.source, needed_by=self.name)

    @property
    def clusters_path(self) -> str:
        return os.path.join(self.stage_dir, "clusters.json")

    # --- the stage ---------------------------------------------------------------------------------------------
    def execute(self) -> Dict[str, float]:
        from tfvgs.edits import concept_clusters, unit_ranking
        e = self.config.edits
        start = time.time()
        model = self.source_model()
        generator = gan_io.load_generator(self.workdir)

        image_rows, audio_rows, captions = self.activations(model)
        binary = []
        for rows in (image_rows, audio_rows):
            thresholds = concept_clusters.unit_thresholds(rows, e.activation_quantile)
            binary.append(concept_clusters.binarize(rows, thresholds))
        cooc = concept_clusters.cooccurrence(binary[0]) + concept_clusters.cooccurrence(binary[1])
        clusters = concept_clusters.cluster_units(cooc, e.num_clusters)
        print(f"[{self.name}] {len(clusters.clusters)} clusters of {cooc.shape[0]} units "
              f"({len(clusters.dead_units)} never active) from {len(captions['text'])} pairs", flush=True)

        h4, features, images = self.ranking_sample(model, generator)
        masks = [concept_clusters.cluster_segmentation(features, units, e.segmentation_quantile)
                 for units in clusters.clusters]
        rankings = [unit_ranking.rank_units(h4, mask, e.unit_quantile) for mask in masks]
        region_labels = self.label(images, features.shape[1], masks)
        effects = self.effect_labels(generator, h4, features, images, clusters.clusters, rankings)
        labels = effects if effects is not None else region_labels
        words = self.top_words(audio_rows, captions, clusters.clusters)

        result = {
            "source_stage": self.source, "num_pairs": len(captions["text"]), "ranking_samples": int(len(images)),
            "dead_units": [int(u) for u in clusters.dead_units], "clusters": [
                {"id": k, "units": [int(u) for u in units], "h4_ranking": [int(u) for u in ranking.order],
                 "h4_iou": [round(float(ranking.iou[u]), 5) for u in ranking.order],
                 "label": labels[k] if labels else None,
                 "region_label": region_labels[k] if region_labels else None, "top_words": words[k]}
                for k, (units, ranking) in enumerate(zip(clusters.clusters, rankings))],
            "partition": json.loads(clusters.to_json()),
        }
        atomic_files.write_text(self.clusters_path, json.dumps(result, indent=1))
        concept_clusters.dendrogram_figure(clusters, os.path.join(self.stage_dir, "dendrogram.png"))
        self.draw_clusters(images, features, clusters.clusters, masks, result["clusters"])
        print(f"[{self.name}] wrote {self.clusters_path} in {time.time() - start:.0f} s", flush=True)
        for c in result["clusters"]:
            label, region = c["label"] or {}, c["region_label"] or {}
            effect = (f"{label.get('family')} ({label.get('value')}, {label.get('share', 0):.0%} of ablations)"
                      if "share" in label else "-")
            print(f"  cluster {c['id']:2d}: {len(c['units']):3d} units, ablation changes {effect}, region "
                  f"{region.get('value', '-')} (IoU {region.get('iou', 0):.2f}), top words "
                  f"{', '.join(w for w, _ in c['top_words'][:3])}", flush=True)
        return {"num_clusters": float(len(clusters.clusters))}

    # --- steps -----------------------------------------------------------------------------------------------
    def activations(self, model):
        """Image rows [pairs*H'*W', D], valid audio rows [frames, D] (+ row -> pair, relative position)."""
        e = self.config.edits
        pairs = data.pairs_dataset(self.data_dir, "train", self.config, BATCH)
        image_rows, audio_rows, pair_of_row, position_of_row, texts = [], [], [], [], []
        for batch in pairs:
            image_feats, audio_feats, frames = model(batch, training=False)
            image_feats, audio_feats, frames = image_feats.numpy(), audio_feats.numpy(), frames.numpy()
            image_rows.append(image_feats.reshape(-1, image_feats.shape[-1]))
            for b in range(len(frames)):
                n = int(frames[b])
                audio_rows.append(audio_feats[b, :n])
                pair_of_row.append(np.full(n, len(texts)))
                position_of_row.append((np.arange(n) + 0.5) / max(n, 1))
                texts.append(batch["caption"][b].numpy().decode("utf-8"))
            if len(texts) >= e.cluster_pairs:
                break
        if not texts:
            raise ValueError(f"The train split of data_dir {self.data_dir!r} has no pairs.")
        captions = {"text": texts, "pair": np.concatenate(pair_of_row), "position": np.concatenate(position_of_row)}
        return np.concatenate(image_rows), np.concatenate(audio_rows), captions

    def ranking_sample(self, model, generator):
        """h4 [N, 8, 8, C], image features [N, H', W', D] and images [N, S, S, 3] of generated samples."""
        count = int(self.config.edits.ranking_samples)
        h4s, features, images = [], [], []
        for start in range(0, count, BATCH):
            seeds = range(RANKING_SEED_BASE + start, RANKING_SEED_BASE + min(start + BATCH, count))
            h4 = generator.features(gan_io.latents_for_seeds(seeds, generator.latent_dim))
            image = tf.clip_by_value(tf.cast(generator.render(h4), tf.float32), -1.0, 1.0)
            h4s.append(keras.ops.convert_to_numpy(h4))
            features.append(keras.ops.convert_to_numpy(model.image_encoder(image, training=False)))
            images.append(image.numpy())
        return np.concatenate(h4s), np.concatenate(features), np.concatenate(images)

    def label(self, images, grid: int, masks) -> Optional[List[Dict]]:
        """What each cluster looks like to the segmenter, or None without a trained segmenter."""
        path = layout.model_path(self.workdir, "segmenter")
        if not tf.io.gfile.exists(path):
            print(f"[{self.name}] no segmenter at {path}: clusters are not labelled", flush=True)
            return None
        from tfvgs.describe import predict_maps
        from tfvgs.edits.edit_success import label_clusters
        from tfvgs.world.vocabulary import ATTRIBUTES
        segmenter = layout.load_model(path)
        value_masks: Dict[str, List[np.ndarray]] = collections.defaultdict(list)
        for start in range(0, len(images), BATCH):
            maps = predict_maps(segmenter, images[start:start + BATCH])
            foreground = maps["foreground"][..., 0] > 0
            for family in ("shape", "color", "material", "size"):
                winner = np.argmax(maps[family], axis=-1)
                for index, value in enumerate(ATTRIBUTES[family]):
                    value_masks[value].append(_pool_to_grid(foreground & (winner == index), grid))
        attribute_maps = {value: np.concatenate(parts) for value, parts in value_masks.items()}
        labels = label_clusters({k: mask for k, mask in enumerate(masks)}, attribute_maps)
        return [{"family": labels[k].family, "value": labels[k].value, "iou": round(float(labels[k].iou), 4)}
                if k in labels and labels[k].family else None for k in range(len(masks))]

    def effect_labels(self, generator, h4, features, images, clusters, rankings,
                      per_cluster: int = EFFECT_SAMPLES) -> Optional[List[Dict]]:
        """What ablating each cluster's top h4 units changes, as the segmenter sees it (for analysis and the
        targeted edits' success rate only, never for training), or None without a trained segmenter.

        Per cluster: the `per_cluster` ranking samples where the cluster is most active, each edited as a targeted
        edit is (its top-ranked units zeroed at the cluster's peak location, their number growing along
        `edits.targeted_unit_counts` until the image changes) and described before and after
        (`edit_success.label_by_effect`). These samples are drawn from seeds apart from the training pairs, whose
        edits the success rate is measured on.
        """
        path = layout.model_path(self.workdir, "segmenter")
        if not tf.io.gfile.exists(path):
            return None
        from tfvgs.describe import describe_images
        from tfvgs.edits import edit_report, edit_success, negatives
        e, segmenter_config = self.config.edits, self.config.segmenter
        segmenter = layout.load_model(path)
        options = {"min_object_pixels": segmenter_config.min_object_pixels,
                   "min_confidence": segmenter_config.min_confidence}
        units = h4.shape[-1]
        counts = sorted({min(int(n), units) for n in e.targeted_unit_counts if int(n) > 0})
        grid = features.shape[1]
        originals = negatives.quantize(images).numpy()
        labels = []
        for members, ranking in zip(clusters, rankings):
            activation = features[..., members].sum(axis=-1)                                  # [N, g, g]
            chosen = np.argsort(-activation.reshape(len(activation), -1).max(axis=1), kind="stable")[:per_cluster]
            flat = activation[chosen].reshape(len(chosen), -1).argmax(axis=1)
            location = negatives.location_mask(flat // grid, flat % grid, grid).numpy()        # [n, 8, 8]
            edited, done = originals[chosen].copy(), np.zeros(len(chosen), bool)
            for count in counts:
                unit_mask = np.zeros(units, np.float32)
                unit_mask[np.asarray(ranking.order[:count])] = 1.0
                for start in range(0, len(chosen), BATCH):
                    part = slice(start, start + BATCH)
                    drawn = negatives.quantize(generator.render_ablated(
                        h4[chosen[part]], location[part, :, :, None] * unit_mask)).numpy()
                    moved = negatives.changed_fraction(drawn, originals[chosen[part]], e.pixel_change).numpy()
                    take = (moved >= e.min_changed_fraction) & ~done[part]
                    edited[part][take] = drawn[take]
                    done[part] |= moved >= e.min_changed_fraction
                if done.all():
                    break
            outcomes = []
            for start in range(0, len(chosen), BATCH):
                part = slice(start, start + BATCH)
                before = describe_images(segmenter, originals[chosen[part]], **options)
                after = describe_images(segmenter, edited[part], **options)
                for b, a, cells, ok in zip(before, after, location[part], done[part]):
                    point = edit_report.pixel_location(cells, originals.shape[1])
                    change = edit_success.changed_attributes(b, a, location=point) if ok else set()
                    outcomes.append((change, edit_success.target_object(b, point) if point else None))
            label = edit_success.label_by_effect(outcomes)
            labels.append({"family": label.family, "value": label.value, "share": round(label.share, 4),
                           "changed_fraction": round(label.changed_fraction, 4), "n": label.n}
                          if label.family else None)
        return labels

    @staticmethod
    def top_words(audio_rows, captions, clusters, per_cluster: int = 200) -> List[List]:
        """Per cluster, the caption words most often at the frames where the cluster's activation peaks."""
        words_of = [re.findall(r"[a-z]+", text.lower()) for text in captions["text"]]
        result = []
        for units in clusters:
            activation = audio_rows[:, units].mean(axis=1)
            counts: collections.Counter = collections.Counter()
            for row in np.argsort(-activation)[:per_cluster]:
                words = words_of[captions["pair"][row]]
                if words:
                    counts[words[min(len(words) - 1, int(captions["position"][row] * len(words)))]] += 1
            result.append([[w, n] for w, n in counts.most_common(5)])
        return result

    def draw_clusters(self, images, features, clusters, masks, entries, per_row: int = 6):
        """clusters.png: one row per cluster, its most activating generated images with s(I|w_k) outlined."""
        from PIL import Image, ImageDraw
        scale = max(1, 128 // images.shape[1])     # small images are enlarged (nearest) to be seen
        size = images.shape[1] * scale
        grid = features.shape[1]
        rows = []
        for units, mask, entry in zip(clusters, masks, entries):
            strength = features[..., units].mean(axis=-1).max(axis=(1, 2))
            tiles = []
            for index in np.argsort(-strength)[:per_row]:
                image = ((images[index] + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
                tile = Image.fromarray(np.repeat(np.repeat(image, scale, axis=0), scale, axis=1))
                draw = ImageDraw.Draw(tile)
                cell = size / grid
                for r, c in zip(*np.nonzero(mask[index])):
                    draw.rectangle([c * cell, r * cell, (c + 1) * cell - 1, (r + 1) * cell - 1], outline=(255, 0, 0))
                tiles.append(np.asarray(tile))
            row = np.concatenate(tiles, axis=1)
            label = (entry["label"]["value"] or entry["label"]["family"]) if entry["label"] else ""
            words = " ".join(w for w, _ in entry["top_words"][:3])
            caption = Image.new("RGB", (150, size), (255, 255, 255))
            ImageDraw.Draw(caption).text((4, 4), f"#{entry['id']} {label}\n{words}", fill=(0, 0, 0))
            rows.append(np.concatenate([np.asarray(caption), row], axis=1))
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
        Image.fromarray(np.concatenate(rows, axis=0)).save(os.path.join(self.stage_dir, "clusters.png"))


class HnClusterStage(ClusterStage):
    name = "hn_cluster"
    source = "hn_random_edits"


def _pool_to_grid(mask: np.ndarray, grid: int) -> np.ndarray:
    """bool [N, S, S] -> bool [N, grid, grid]: a cell is in when at least half of its pixels are."""
    n, size = mask.shape[0], mask.shape[1]
    if size % grid:
        raise ValueError(f"image size {size} is not a multiple of the feature grid {grid}")
    cell = size // grid
    return mask.reshape(n, grid, cell, grid, cell).mean(axis=(2, 4)) >= 0.5
