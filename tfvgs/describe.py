"""Image -> scene description: what the attribute segmenter sees in a (GAN-drawn) image, as CLEVR scene JSON.

Paper 000 (sec. 6.1) segments each GAN image and writes "one description per image" so that GAN images can be
captioned. `describe_images` runs an `AttributeSegmenter` and turns its per-pixel maps into the scene-JSON subset the
captioner (`tfvgs.speech.captions`) reads:

    {"objects": [{"shape", "color", "material", "size", "pixel_coords": [x, y, 0], "pixel_count", "confidence",
                  "attribute_confidence": {family: p}}],
     "relationships": {"left" | "right" | "front" | "behind": [[j, ...] for each object i]},
     "image_size": S, "confident": bool, "reason": str}

As in CLEVR, `j in relationships["left"][i]` means object j is left of object i. Relations come from image
positions: left/right from x, front/behind from y (lower in the image = nearer the camera = in front); on the
rendered validation scenes these agree with CLEVR's 3-D relations for 99.7% of object pairs.

Post-processing (numpy/scipy, vectorised over pixels):
  1. foreground = sigmoid(foreground logit) > foreground_threshold;
  2. instances: centres are the peaks of the centre heatmap (local maxima above center_threshold; a plateau of equal
     maxima is one peak); each foreground pixel joins the centre nearest to its vote (pixel + predicted offset).
     Pixels whose vote lands farther than max_vote_distance from every centre, and the whole foreground when no
     centre is found or the model has no instance heads, are split into connected components instead;
  3. instances smaller than min_object_pixels are dropped (not described);
  4. each attribute of an object is the argmax of its class probabilities averaged over the object's pixels; that
     mean probability is the attribute's confidence and the lowest of the four is the object's confidence;
  5. a description is not `confident` (and `reason` says why) when no object is found or some object's confidence
     is below min_confidence. Pipelines that caption GAN images should skip descriptions that are not confident.

`evaluate_segmenter` scores a model on rendered scenes: pixel accuracies, foreground IoU, and object-level accuracy
after matching described objects to the ground truth (Hungarian matching on pixel_coords distance).
"""
from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
from scipy import ndimage, optimize

from tfvgs.models.attribute_segmenter import ATTRIBUTE_FAMILIES, OFFSET_UNITS
from tfvgs.world.vocabulary import ATTRIBUTES

RELATIONS = ("left", "right", "front", "behind")
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1.0 - 1e-7)
    return float(np.log(p / (1.0 - p)))


def _check_images(images) -> np.ndarray:
    shape = tuple(getattr(images, "shape", ()))
    if len(shape) != 4 or shape[-1] != 3 or shape[1] != shape[2]:
        raise ValueError(f"`images` must be a float batch [B, S, S, 3] in [-1, 1]. Received: shape {shape}")
    return images


def predict_maps(model: Callable, images) -> Dict[str, np.ndarray]:
    """The segmenter's per-pixel outputs as float32 numpy arrays (logits; offsets in offset units)."""
    images = _check_images(images)
    outputs = model(images, training=False)
    if not isinstance(outputs, Mapping) or "foreground" not in outputs:
        raise ValueError("`model` must return a dict of per-pixel maps with at least 'foreground' and the attribute "
                         f"families {ATTRIBUTE_FAMILIES}. Received: {type(outputs).__name__} "
                         f"{sorted(outputs) if isinstance(outputs, Mapping) else ''}")
    return {name: np.asarray(value, dtype=np.float32) for name, value in outputs.items()}


def describe_images(model: Callable, images, *, min_object_pixels: int = 20, min_confidence: float = 0.6,
                    **options) -> List[Dict[str, Any]]:
    """Scene descriptions of a batch of images [B, S, S, 3] in [-1, 1] (rendered or GAN-drawn), one per image.

    `model` is an `AttributeSegmenter` or any callable `model(images, training=False)` returning the same dict of
    maps. `options` go to `describe_maps` (foreground_threshold, center_threshold, peak_window, max_vote_distance,
    relation_margin).
    """
    return describe_maps(predict_maps(model, images), min_object_pixels=min_object_pixels,
                         min_confidence=min_confidence, **options)


def describe_maps(maps: Mapping[str, np.ndarray], *, min_object_pixels: int = 20, min_confidence: float = 0.6,
                  foreground_threshold: float = 0.5, center_threshold: float = 0.3,
                  peak_window: Optional[int] = None, max_vote_distance: Optional[float] = None,
                  relation_margin: float = 1.0 / 128.0) -> List[Dict[str, Any]]:
    """Scene descriptions from segmenter outputs (see the module doc for the steps).

    Args:
        maps: "foreground" [B,S,S,1] logits, one [B,S,S,C] logit map per attribute family, optionally "center"
            [B,S,S,1] logits and "offset" [B,S,S,2] (offset units of S / OFFSET_UNITS pixels).
        min_object_pixels: smaller instances are not described.
        min_confidence: an object whose weakest attribute has a lower mean probability makes the description not
            confident.
        foreground_threshold: foreground probability above which a pixel belongs to some object.
        center_threshold: heatmap probability a centre peak must exceed.
        peak_window: side of the non-maximum-suppression window in pixels (default: odd, ~S/16, at least 3).
        max_vote_distance: votes farther than this (pixels) from every centre fall back to connected components
            (default S/8).
        relation_margin: j is left of i only when x_j < x_i - relation_margin * S (likewise right/front/behind).
    """
    missing = [name for name in ("foreground", *ATTRIBUTE_FAMILIES) if name not in maps]
    if missing:
        raise ValueError(f"`maps` lacks {missing}. Received keys: {sorted(maps)}")
    if int(min_object_pixels) < 1:
        raise ValueError(f"`min_object_pixels` must be >= 1. Received: {min_object_pixels}")
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(f"`min_confidence` must be in [0, 1]. Received: {min_confidence}")
    foreground_logits = np.asarray(maps["foreground"], np.float32)
    if foreground_logits.ndim != 4 or foreground_logits.shape[1] != foreground_logits.shape[2]:
        raise ValueError(f"maps['foreground'] must be [B, S, S, 1]. Received: shape {foreground_logits.shape}")
    batch, size = foreground_logits.shape[0], foreground_logits.shape[1]
    peak_window = int(peak_window or max(3, int(round(size / 16.0)) | 1))
    max_vote_distance = float(max_vote_distance if max_vote_distance is not None else size / 8.0)
    foreground = foreground_logits[..., 0] > _logit(foreground_threshold)
    probabilities = {family: _softmax(np.asarray(maps[family], np.float32)) for family in ATTRIBUTE_FAMILIES}
    has_votes = "center" in maps and "offset" in maps
    if has_votes:
        centers = _find_centers(np.asarray(maps["center"], np.float32)[..., 0], _logit(center_threshold),
                                peak_window)
        offsets = np.asarray(maps["offset"], np.float32) * (size / OFFSET_UNITS)
    descriptions = []
    for b in range(batch):
        if has_votes:
            labels = _instances_from_votes(foreground[b], centers[b], offsets[b], max_vote_distance)
        else:
            labels, _ = ndimage.label(foreground[b], structure=_EIGHT_CONNECTED)
        objects = _describe_instances(labels, {f: p[b] for f, p in probabilities.items()}, int(min_object_pixels))
        descriptions.append(_scene_description(objects, size, float(min_confidence), relation_margin * size))
    return descriptions


def _find_centers(center_logits: np.ndarray, threshold_logit: float, window: int) -> List[np.ndarray]:
    """Per image, the (x, y) pixel-centre coordinates [K, 2] of heatmap peaks: local maxima over a window x window
    neighbourhood above the threshold; each 8-connected plateau of equal maxima counts once (its centre of mass)."""
    local_max = ndimage.maximum_filter(center_logits, size=(1, window, window), mode="constant", cval=-np.inf)
    peaks = (center_logits >= local_max) & (center_logits > threshold_logit)
    centers = []
    for b in range(center_logits.shape[0]):
        labels, count = ndimage.label(peaks[b], structure=_EIGHT_CONNECTED)
        if count == 0:
            centers.append(np.zeros([0, 2], np.float64))
            continue
        yx = np.asarray(ndimage.center_of_mass(peaks[b], labels, np.arange(1, count + 1)), np.float64)
        centers.append(yx[:, ::-1] + 0.5)
    return centers


def _instances_from_votes(foreground: np.ndarray, centers: np.ndarray, offsets: np.ndarray,
                          max_vote_distance: float) -> np.ndarray:
    """Instance label map [S,S] (0 background, 1.. instances): pixels join the centre nearest to their vote."""
    labels = np.zeros(foreground.shape, np.int32)
    ys, xs = np.nonzero(foreground)
    if len(centers) and len(ys):
        votes = np.stack([xs + 0.5 + offsets[ys, xs, 0], ys + 0.5 + offsets[ys, xs, 1]], axis=-1)   # [P, 2]
        distances = np.linalg.norm(votes[:, None, :] - centers[None, :, :], axis=-1)                  # [P, K]
        nearest = distances.argmin(axis=1)
        close = distances[np.arange(len(ys)), nearest] <= max_vote_distance
        labels[ys[close], xs[close]] = nearest[close] + 1
    leftover, count = ndimage.label(foreground & (labels == 0), structure=_EIGHT_CONNECTED)
    if count:
        labels = np.where(leftover > 0, leftover + labels.max(), labels)
    return labels


def _describe_instances(labels: np.ndarray, probabilities: Dict[str, np.ndarray],
                        min_object_pixels: int) -> List[Dict[str, Any]]:
    """Objects of one image from its instance labels: attributes by mean probability, centroid, pixel count."""
    flat = labels.ravel()
    counts = np.bincount(flat)
    ids = np.nonzero(counts >= min_object_pixels)[0]
    ids = ids[ids > 0]
    if not len(ids):
        return []
    membership = (flat[:, None] == ids[None, :]).astype(np.float64)             # [P, K]
    pixel_counts = membership.sum(axis=0)
    size = labels.shape[1]
    xs = (np.arange(flat.size) % size) + 0.5
    ys = (np.arange(flat.size) // size) + 0.5
    center_x = membership.T @ xs / pixel_counts
    center_y = membership.T @ ys / pixel_counts
    objects = [{"x": float(center_x[k]), "y": float(center_y[k]), "pixel_count": int(pixel_counts[k]),
                "attributes": {}, "attribute_confidence": {}} for k in range(len(ids))]
    for family in ATTRIBUTE_FAMILIES:
        p = probabilities[family].reshape(flat.size, -1).astype(np.float64)
        mean = membership.T @ p / pixel_counts[:, None]                           # [K, C]
        best = mean.argmax(axis=1)
        for k, obj in enumerate(objects):
            obj["attributes"][family] = ATTRIBUTES[family][int(best[k])]
            obj["attribute_confidence"][family] = float(mean[k, best[k]])
    return objects


def _scene_description(objects: List[Dict[str, Any]], size: int, min_confidence: float,
                       margin: float) -> Dict[str, Any]:
    """CLEVR scene-JSON subset with image-position relationships, objects ordered top to bottom, then left to
    right (back to front)."""
    objects = sorted(objects, key=lambda o: (o["y"], o["x"]))
    x = np.array([o["x"] for o in objects], np.float64)
    y = np.array([o["y"] for o in objects], np.float64)
    related = {"left": x[None, :] < x[:, None] - margin, "right": x[None, :] > x[:, None] + margin,
               "front": y[None, :] > y[:, None] + margin, "behind": y[None, :] < y[:, None] - margin}
    relationships = {name: [[int(j) for j in np.nonzero(related[name][i])[0]] for i in range(len(objects))]
                     for name in RELATIONS}
    described = []
    reasons = []
    for i, obj in enumerate(objects):
        weakest = min(ATTRIBUTE_FAMILIES, key=lambda f: obj["attribute_confidence"][f])
        confidence = obj["attribute_confidence"][weakest]
        if confidence < min_confidence:
            reasons.append(f"object {i} at ({obj['x']:.0f}, {obj['y']:.0f}): {weakest} probability "
                           f"{confidence:.2f} < min_confidence {min_confidence:g}")
        described.append({**obj["attributes"], "pixel_coords": [int(round(obj["x"])), int(round(obj["y"])), 0],
                          "pixel_count": obj["pixel_count"], "confidence": confidence,
                          "attribute_confidence": dict(obj["attribute_confidence"])})
    if not described:
        reasons.append("no object found")
    return {"objects": described, "relationships": relationships, "image_size": int(size),
            "confident": not reasons, "reason": "; ".join(reasons)}


# ----------------------------------------------------------------------------------------------------------------
# Evaluation on rendered scenes


def match_objects(described: Sequence[Mapping[str, Any]], truth: Sequence[Mapping[str, Any]],
                  max_distance: float, scale: float = 1.0) -> List[tuple]:
    """Hungarian matching of described to ground-truth objects by pixel_coords distance: [(i_described, j_truth)]
    pairs closer than max_distance pixels. `scale` multiplies the ground-truth pixel_coords (to the image size)."""
    if not described or not truth:
        return []
    a = np.array([o["pixel_coords"][:2] for o in described], np.float64)
    t = np.array([o["pixel_coords"][:2] for o in truth], np.float64) * scale
    cost = np.linalg.norm(a[:, None, :] - t[None, :, :], axis=-1)
    rows, cols = optimize.linear_sum_assignment(cost)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if cost[i, j] <= max_distance]


def visible_truth(scene_json, instance_mask: np.ndarray, min_object_pixels: int):
    """What a description of a rendering can be checked against: (scene dict, its objects with at least
    `min_object_pixels` visible pixels in `instance_mask` [S, S], the factor from scene pixel_coords to image pixels)."""
    scene = json.loads(scene_json.decode() if isinstance(scene_json, bytes) else scene_json)
    visible = np.bincount(np.asarray(instance_mask).ravel(), minlength=len(scene["objects"]) + 1)[1:]
    truth = [o for o, n in zip(scene["objects"], visible) if n >= min_object_pixels]
    size = np.asarray(instance_mask).shape[0]
    return scene, truth, size / float(scene.get("image_size", size))


def evaluate_segmenter(model: Callable, dataset, *, min_object_pixels: int = 20, min_confidence: float = 0.6,
                       max_match_distance: Optional[float] = None, max_batches: Optional[int] = None,
                       **options) -> Dict[str, Any]:
    """Scores a segmenter on batches of rendered scenes (`tfvgs.data.scenes_dataset`):

        pixel_accuracy[family]     attribute accuracy on ground-truth object pixels
        foreground_iou             IoU of predicted and true foreground, pooled over all images
        foreground_accuracy        pixel accuracy of foreground vs background
        object_accuracy[family]    fraction of ground-truth objects matched by a described object with the right value
        object_all_attributes_accuracy   ... with all four right
        object_recall / object_precision matched / true objects, matched / described objects
        count_accuracy             fraction of images with as many described as true objects
        scene_exact_accuracy       fraction of images described exactly (count and every object's attributes)
        confident_fraction         fraction of descriptions marked confident

    Object-level scores count the ground-truth objects with at least min_object_pixels visible pixels (the ones a
    description can contain); `n_objects_too_small` says how many were left out. Matching is Hungarian on
    pixel_coords distance, pairs farther than max_match_distance (default S/8 px) unmatched.
    """
    pixel_correct = {family: 0 for family in ATTRIBUTE_FAMILIES}
    object_correct = {family: 0 for family in ATTRIBUTE_FAMILIES}
    totals = dict(object_pixels=0, pixels=0, foreground_correct=0, intersection=0, union=0, images=0,
                  true_objects=0, described_objects=0, matched=0, all_correct=0, count_correct=0, exact=0,
                  confident=0, hidden_objects=0)
    for index, batch in enumerate(dataset):
        if max_batches is not None and index >= max_batches:
            break
        images = np.asarray(batch["image"], np.float32)
        maps = predict_maps(model, images)
        size = images.shape[1]
        mask = np.asarray(batch["instance_mask"])
        truth_ids = np.asarray(batch["attributes"]).astype(np.int64)
        truth_foreground = mask > 0
        predicted_foreground = maps["foreground"][..., 0] > 0.0
        totals["pixels"] += mask.size
        totals["foreground_correct"] += int((predicted_foreground == truth_foreground).sum())
        totals["intersection"] += int((predicted_foreground & truth_foreground).sum())
        totals["union"] += int((predicted_foreground | truth_foreground).sum())
        totals["object_pixels"] += int(truth_foreground.sum())
        for i, family in enumerate(ATTRIBUTE_FAMILIES):
            predicted = maps[family].argmax(axis=-1) + 1
            pixel_correct[family] += int(((predicted == truth_ids[..., i]) & truth_foreground).sum())
        descriptions = describe_maps(maps, min_object_pixels=min_object_pixels, min_confidence=min_confidence,
                                     **options)
        for b, (description, scene_json) in enumerate(zip(descriptions, np.asarray(batch["scene_json"]).ravel())):
            scene, truth, scale = visible_truth(scene_json, mask[b], min_object_pixels)
            totals["hidden_objects"] += len(scene["objects"]) - len(truth)
            described = description["objects"]
            pairs = match_objects(described, truth, max_match_distance or size / 8.0, scale)
            all_correct = 0
            for i, j in pairs:
                right = [described[i][f] == truth[j][f] for f in ATTRIBUTE_FAMILIES]
                for family, ok in zip(ATTRIBUTE_FAMILIES, right):
                    object_correct[family] += int(ok)
                all_correct += int(all(right))
            totals["images"] += 1
            totals["true_objects"] += len(truth)
            totals["described_objects"] += len(described)
            totals["matched"] += len(pairs)
            totals["all_correct"] += all_correct
            totals["count_correct"] += int(len(described) == len(truth))
            totals["exact"] += int(len(described) == len(truth) == all_correct)
            totals["confident"] += int(description["confident"])
    if not totals["images"]:
        raise ValueError("evaluate_segmenter got an empty dataset. Received: no batches")
    ratio = lambda a, b: float(a) / b if b else 0.0  # noqa: E731
    return {
        "n_images": totals["images"],
        "n_objects": totals["true_objects"],
        "n_objects_too_small": totals["hidden_objects"],
        "pixel_accuracy": {f: ratio(pixel_correct[f], totals["object_pixels"]) for f in ATTRIBUTE_FAMILIES},
        "foreground_iou": ratio(totals["intersection"], totals["union"]),
        "foreground_accuracy": ratio(totals["foreground_correct"], totals["pixels"]),
        "object_accuracy": {f: ratio(object_correct[f], totals["true_objects"]) for f in ATTRIBUTE_FAMILIES},
        "object_all_attributes_accuracy": ratio(totals["all_correct"], totals["true_objects"]),
        "object_recall": ratio(totals["matched"], totals["true_objects"]),
        "object_precision": ratio(totals["matched"], totals["described_objects"]),
        "count_accuracy": ratio(totals["count_correct"], totals["images"]),
        "scene_exact_accuracy": ratio(totals["exact"], totals["images"]),
        "confident_fraction": ratio(totals["confident"], totals["images"]),
        "min_object_pixels": int(min_object_pixels),
        "min_confidence": float(min_confidence),
    }
