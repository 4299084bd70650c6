"""What the edits of a trained edit stage do: the edit success rate (paper 000 sec. 6.4, 88%) and a picture.

For `edits.success_pairs` held-out pairs the stage's negative source edits the image as in training; the attribute
segmenter describes the original and the edited image, and `tfvgs.edits.edit_success` compares them. A targeted edit
succeeds when exactly the attribute family of its cluster changed (its label from the cluster stage); for random
edits (no family) the rate is that of single-family changes, and `any_change_rate` is reported for both.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfvgs import workdir as layout

PICTURE_PAIRS = 8
COLUMN_TITLES = ("original (ablated: red)", "edited", "difference")


def collect_edits(model, source, pairs: tf.data.Dataset, limit: int) -> Dict[str, np.ndarray]:
    """Runs the source on up to `limit` pairs: originals, edited images, valid, location [N,8,8], cluster (or -1)."""
    out: Dict[str, List[np.ndarray]] = {"original": [], "edited": [], "valid": [], "location": [], "cluster": []}
    seen = 0
    for batch in pairs:
        image_feats, audio_feats, frames = model(batch, training=False)
        if hasattr(source, "edit"):
            result = source.edit(batch, image_feats, audio_feats, frames)
        else:
            images, valid = source.negatives(batch, image_feats, audio_feats, frames)
            result = {"images": images, "valid": valid}
        count = int(tf.shape(batch["image"])[0])
        out["original"].append(batch["image"].numpy())
        out["edited"].append(np.asarray(result["images"]))
        out["valid"].append(np.asarray(result["valid"]))
        out["location"].append(np.asarray(result.get("location", np.zeros([count, 8, 8], np.float32))))
        out["cluster"].append(np.asarray(result.get("cluster", np.full([count], -1, np.int32))))
        seen += count
        if seen >= limit:
            break
    return {k: np.concatenate(v)[:limit] for k, v in out.items()}


def edit_picture(edits: Dict[str, np.ndarray], path: str, labels: Optional[Sequence] = None,
                 count: int = PICTURE_PAIRS) -> None:
    """Rows of original | edited | |difference| under a header naming them, the ablated h4 cells outlined on the
    original."""
    from PIL import Image, ImageDraw
    scale = max(1, 128 // edits["original"].shape[1])     # small images are enlarged (nearest) to be seen

    def to_uint8(image):
        image = ((image + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
        return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)

    rows = []
    for i in range(min(count, len(edits["original"]))):
        original, edited = to_uint8(edits["original"][i]), to_uint8(edits["edited"][i])
        difference = np.abs(original.astype(np.int16) - edited.astype(np.int16)).max(axis=-1)
        difference = np.repeat((255 * (difference / max(1, difference.max())))[..., None], 3, -1).astype(np.uint8)
        tile = Image.fromarray(original)
        draw = ImageDraw.Draw(tile)
        cell = original.shape[0] / edits["location"].shape[1]
        for r, c in zip(*np.nonzero(edits["location"][i])):
            draw.rectangle([c * cell, r * cell, (c + 1) * cell - 1, (r + 1) * cell - 1], outline=(255, 0, 0))
        row = [np.asarray(tile), edited, difference]
        label = ""
        if labels is not None and edits["cluster"][i] >= 0:
            entry = labels[edits["cluster"][i]]
            label = f"cluster {edits['cluster'][i]}" + (f": {entry['value'] or entry['family']}" if entry else "")
        if not edits["valid"][i]:
            label += " (no change: not used)"
        strip = Image.new("RGB", (original.shape[1] * 3, 12), (255, 255, 255))
        ImageDraw.Draw(strip).text((2, 0), label, fill=(0, 0, 0))
        rows.append(np.concatenate([np.asarray(strip), np.concatenate(row, axis=1)], axis=0))
    width = rows[0].shape[1] if rows else 3 * edits["original"].shape[1] * scale
    header = Image.new("RGB", (width, 12), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    for column, title in enumerate(COLUMN_TITLES):
        draw.text((2 + column * width // 3, 0), title, fill=(0, 0, 0))
    Image.fromarray(np.concatenate([np.asarray(header), *rows], axis=0)).save(path)


def write_edit_report(model, source, pairs, config, workdir: str, stage_dir: str,
                      cluster_labels: Optional[Sequence] = None,
                      other_labels: Optional[Dict[str, Sequence]] = None) -> Dict:
    """Writes `<stage_dir>/edits.png` and, with a trained segmenter, `<stage_dir>/edit_success.json`.

    `cluster_labels` give the family each targeted edit is scored against; `other_labels` ({name: labels}) score
    the same edits against another labelling too (`rate_by_<name>`), e.g. the clusters' region labels."""
    edits = collect_edits(model, source, pairs, int(config.edits.success_pairs))
    edit_picture(edits, os.path.join(stage_dir, "edits.png"), cluster_labels)
    report = {"n_edited": int(len(edits["valid"])), "valid_fraction": float(np.mean(edits["valid"]))}
    segmenter_path = layout.model_path(workdir, "segmenter")
    if tf.io.gfile.exists(segmenter_path):
        from tfvgs.describe import describe_images
        from tfvgs.edits import edit_success
        segmenter = layout.load_model(segmenter_path)
        options = {"min_object_pixels": config.segmenter.min_object_pixels,
                   "min_confidence": config.segmenter.min_confidence}
        valid = np.nonzero(edits["valid"])[0]
        outcomes, changes = [], []
        for start in range(0, len(valid), 32):
            index = valid[start:start + 32]
            before = describe_images(segmenter, edits["original"][index], **options)
            after = describe_images(segmenter, edits["edited"][index], **options)
            for i, b, a in zip(index, before, after):
                family = None
                if cluster_labels is not None and edits["cluster"][i] >= 0:
                    entry = cluster_labels[edits["cluster"][i]]
                    family = entry["family"] if entry else None
                change = edit_success.changed_attributes(b, a, location=pixel_location(
                    edits["location"][i], edits["original"].shape[1]))
                outcomes.append((change, family))
                changes.append((change, int(edits["cluster"][i])))
        report.update(edit_success.success_rate(outcomes))
        for name, labels in (other_labels or {}).items():
            scored = [(change, (labels[k] or {}).get("family") if k >= 0 else None) for change, k in changes]
            report[f"rate_by_{name}"] = edit_success.success_rate(scored)["rate"]
        report["any_change_rate"] = report["changed_fraction"]
    else:
        report["note"] = f"no segmenter at {segmenter_path}: success rate not measured"
    with tf.io.gfile.GFile(os.path.join(stage_dir, "edit_success.json"), "w") as f:
        json.dump(report, f, indent=2, sort_keys=True, default=_json_default)
    def percent(key):
        value = report.get(key)
        return "n/a" if value is None else f"{value:.1%}"

    print(f"[edits] {percent('rate')} of {report['n_edited']} held-out edits succeeded (any change "
          f"{percent('any_change_rate')}; {report['valid_fraction']:.1%} changed the image enough to be used; "
          f"paper 000: 88%) -> "
          f"{os.path.join(stage_dir, 'edit_success.json')}", flush=True)
    return report


def pixel_location(cells: np.ndarray, image_size: int):
    """The centre (x, y) in pixels of the ablated h4 cells [8, 8], or None when none were ablated."""
    rows, cols = np.nonzero(cells)
    if len(rows) == 0:
        return None
    scale = image_size / cells.shape[0]
    return ((cols.mean() + 0.5) * scale, (rows.mean() + 0.5) * scale)


def _json_default(value):
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")
