"""Did an edit change what the caption says? Attribute-level comparison of scene descriptions before and after.

Paper 000 sec. 6.4 reports that targeted edits "change the caption content" in 88% of cases. We measure it with the
attribute segmenter: describe the original and the edited GAN image (`tfvgs.describe.describe_images`), match
their objects by position, and list what changed:

    changed = changed_attributes(describe(original), describe(edited))   # e.g. {"color"}, {"objects"}, set()
    edit_succeeded(changed, "color")      # a targeted edit of a colour cluster changed exactly the colour
    edit_changed_caption(changed)         # a random edit changed anything at all
    success_rate([(changed, family_or_None), ...])

`label_clusters` names each concept cluster by the attribute value whose segmenter region overlaps its segmentation
s(I|w_k) most, which gives the family a targeted edit is expected to change. It reads the segmenter's (i.e. the
renderer's vocabulary's) labels, so it is for analysis and for this success rate only, never for training.

Descriptions should be `confident` ones; callers skip the others as the captioning pipeline does.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Hashable, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np
from scipy import optimize

from tfvgs.edits.unit_ranking import resize_maps
from tfvgs.world.vocabulary import ATTRIBUTES

ATTRIBUTE_FAMILIES: Tuple[str, ...] = tuple(ATTRIBUTES)      # shape, color, material, size
OBJECTS = "objects"      # the change token for "an object appeared, disappeared or moved too far to match"
RANDOM = "random"        # per-family key of edits without a target family in `success_rate`
_FAMILY_OF_VALUE: Dict[str, str] = {value: family for family, values in ATTRIBUTES.items() for value in values}


def _objects(description: Mapping[str, Any], name: str) -> List[Mapping[str, Any]]:
    if not isinstance(description, Mapping) or not isinstance(description.get("objects"), Sequence):
        raise ValueError(f"`{name}` must be a scene description with an 'objects' list (tfvgs.describe). "
                         f"Received: {type(description).__name__} {str(description)[:120]}")
    objects = list(description["objects"])
    for obj in objects:
        if "pixel_coords" not in obj or any(family not in obj for family in ATTRIBUTE_FAMILIES):
            raise ValueError(f"Every object of `{name}` needs pixel_coords and {ATTRIBUTE_FAMILIES}. "
                             f"Received: {sorted(obj)}")
    return objects


def _positions(objects: Sequence[Mapping[str, Any]]) -> np.ndarray:
    return np.array([obj["pixel_coords"][:2] for obj in objects], np.float64).reshape(-1, 2)


def match_by_position(first: Sequence[Mapping[str, Any]], second: Sequence[Mapping[str, Any]],
                      max_distance: float) -> List[Tuple[int, int]]:
    """Hungarian matching on pixel_coords distance: [(i_first, j_second)] pairs at most max_distance apart.

    The same matching as `tfvgs.describe.match_objects`, restated here because importing `tfvgs.describe` loads
    TensorFlow (through the segmenter model) and this module is numpy-only.
    """
    if not first or not second:
        return []
    cost = np.linalg.norm(_positions(first)[:, None, :] - _positions(second)[None, :, :], axis=-1)
    rows, cols = optimize.linear_sum_assignment(cost)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if cost[i, j] <= max_distance]


def changed_attributes(original_description: Mapping[str, Any], edited_description: Mapping[str, Any],
                       location: Optional[Sequence[float]] = None,
                       max_distance: Optional[float] = None) -> Set[str]:
    """The attribute families that differ between matched objects, plus "objects" for count or matching changes.

    Args:
        original_description, edited_description: scene descriptions {"objects": [{"shape", "color", "material",
            "size", "pixel_coords": [x, y, ...]}, ...], "image_size": S}.
        location: optional (x, y) in image pixels of the edit (the ablated h4 cell's centre, scaled to the image).
            When given, attributes are compared only on the original object nearest to it (if within max_distance;
            none when the edit hit background); "objects" is still decided over the whole image.
        max_distance: objects farther apart than this (pixels) do not match. Default: image_size / 8, as
            `tfvgs.describe.evaluate_segmenter`.

    Returns:
        A subset of {"shape", "color", "material", "size", "objects"}; "objects" when the object count changed or
        some object on either side found no partner. Empty: the description (and so the caption) did not change.
    """
    original = _objects(original_description, "original_description")
    edited = _objects(edited_description, "edited_description")
    if max_distance is None:
        image_size = original_description.get("image_size")
        if not image_size:
            raise ValueError("`max_distance` is needed when `original_description` has no 'image_size'. "
                             f"Received: image_size={image_size!r}")
        max_distance = float(image_size) / 8.0
    max_distance = float(max_distance)
    if not max_distance >= 0:
        raise ValueError(f"`max_distance` must be >= 0. Received: max_distance={max_distance}")
    pairs = match_by_position(original, edited, max_distance)
    changed: Set[str] = set()
    if len(original) != len(edited) or len(pairs) < max(len(original), len(edited)):
        changed.add(OBJECTS)
    if location is not None:
        target = _nearest(original, location, max_distance)
        pairs = [(i, j) for i, j in pairs if i == target]
    for i, j in pairs:
        changed.update(family for family in ATTRIBUTE_FAMILIES if original[i][family] != edited[j][family])
    return changed


def _nearest(objects: Sequence[Mapping[str, Any]], location, max_distance: float) -> Optional[int]:
    """Index of the object nearest `location` (x, y) in pixels, or None when none is within max_distance."""
    point = np.asarray(location, np.float64).ravel()
    if point.shape != (2,) or not np.all(np.isfinite(point)):
        raise ValueError(f"`location` must be a finite (x, y) pair in pixels. Received: {location!r}")
    if not objects:
        return None
    distances = np.linalg.norm(_positions(objects) - point, axis=-1)
    return int(distances.argmin()) if distances.min() <= max_distance else None


def target_object(description: Mapping[str, Any], location, max_distance: Optional[float] = None):
    """The object of `description` an edit at `location` (x, y pixels) aims at, as `changed_attributes` picks it:
    the nearest within max_distance (default image_size / 8), or None when the edit hit background."""
    objects = _objects(description, "description")
    if max_distance is None:
        max_distance = float(description.get("image_size") or 0) / 8.0
        if not max_distance:
            raise ValueError("`max_distance` is needed when `description` has no 'image_size'. "
                             f"Received: image_size={description.get('image_size')!r}")
    index = _nearest(objects, location, float(max_distance))
    return None if index is None else objects[index]


def edit_succeeded(changed: Set[str], family: str) -> bool:
    """A targeted edit succeeded when it changed exactly its cluster's attribute family and nothing else."""
    if family not in ATTRIBUTE_FAMILIES and family != OBJECTS:
        raise ValueError(f"`family` must be one of {ATTRIBUTE_FAMILIES + (OBJECTS,)}. Received: family={family!r}")
    return set(changed) == {family}


def edit_changed_caption(changed: Set[str]) -> bool:
    """Any change at all: what a random edit must achieve to be a negative (paper 000 sec. 5.4)."""
    return bool(changed)


def success_rate(results: Iterable[Tuple[Set[str], Optional[str]]]) -> Dict[str, Any]:
    """Aggregates (changed, family_or_None) results, one per edit.

    An edit with a family succeeds by `edit_succeeded`; one without (a random edit) by `edit_changed_caption`.

    Returns:
        {"n", "succeeded", "rate", "changed_fraction" (any change), "single_change_fraction" (exactly one token),
         "per_family": {family or "random": {"n", "succeeded", "changed"}},
         "changed_counts": {token: edits whose change set holds it}}; rates are None when n == 0.
    """
    per_family: Dict[str, Dict[str, int]] = {}
    counts: Counter = Counter()
    n = succeeded = any_change = single = 0
    for item in results:
        try:
            changed, family = item
        except (TypeError, ValueError) as error:
            raise ValueError(f"`results` must hold (changed, family_or_None) pairs. Received: {item!r}") from error
        changed = set(changed)
        ok = edit_changed_caption(changed) if family is None else edit_succeeded(changed, family)
        entry = per_family.setdefault(RANDOM if family is None else family, {"n": 0, "succeeded": 0, "changed": 0})
        entry["n"] += 1
        entry["succeeded"] += int(ok)
        entry["changed"] += int(bool(changed))
        counts.update(changed)
        n += 1
        succeeded += int(ok)
        any_change += int(bool(changed))
        single += int(len(changed) == 1)
    ratio = (lambda a: a / n) if n else (lambda a: None)
    return {"n": n, "succeeded": succeeded, "rate": ratio(succeeded), "changed_fraction": ratio(any_change),
            "single_change_fraction": ratio(single), "per_family": per_family,
            "changed_counts": dict(sorted(counts.items()))}


class ClusterLabel(NamedTuple):
    """What a cluster stands for: family and value of the best-overlapping attribute region (None when none does)."""
    family: Optional[str]
    value: Optional[str]
    iou: float


def attribute_value_maps(attribute_ids) -> Dict[Tuple[str, str], np.ndarray]:
    """Per-value bool maps {(family, value): [N, H, W]} from id maps [N, H, W, 4] (channels shape, color, material,
    size; id = vocabulary index + 1, 0 background), the layout of `Rendering.attributes` and of segmenter argmax + 1
    on foreground pixels."""
    attribute_ids = np.asarray(attribute_ids)
    if attribute_ids.ndim != 4 or attribute_ids.shape[-1] != len(ATTRIBUTE_FAMILIES):
        raise ValueError(f"`attribute_ids` must be [N, H, W, {len(ATTRIBUTE_FAMILIES)}]. "
                         f"Received: shape {attribute_ids.shape}")
    return {(family, value): attribute_ids[..., c] == index + 1
            for c, family in enumerate(ATTRIBUTE_FAMILIES) for index, value in enumerate(ATTRIBUTES[family])}


def _family_and_value(key: Hashable) -> Tuple[str, str]:
    if isinstance(key, tuple) and len(key) == 2 and ATTRIBUTES.get(key[0]) and key[1] in ATTRIBUTES[key[0]]:
        return key[0], key[1]
    if isinstance(key, str) and key in _FAMILY_OF_VALUE:
        return _FAMILY_OF_VALUE[key], key
    raise ValueError(f"`attribute_maps` keys must be vocabulary values (e.g. 'red') or (family, value) pairs. "
                     f"Received: {key!r}")


def label_clusters(cluster_masks: Mapping[int, np.ndarray],
                   attribute_maps: Mapping[Hashable, np.ndarray]) -> Dict[int, ClusterLabel]:
    """Names each cluster by the attribute value whose region has the highest IoU with the cluster's segmentation.

    Args:
        cluster_masks: {cluster index: bool [N, h, w]} segmentations s(I|w_k) of N images (`cluster_segmentation`).
            Masks at another resolution than the attribute maps are resized to it by nearest neighbour.
        attribute_maps: {value or (family, value): bool [N, H, W]} per-pixel attribute regions of the same images
            (e.g. `attribute_value_maps` of the segmenter's per-pixel labels).

    Returns:
        {cluster index: ClusterLabel(family, value, iou)}, IoU pooled over the N images; (None, None, 0.0) when the
        cluster overlaps no attribute region. Ties go to the first value in `attribute_maps` order.
    """
    if not attribute_maps:
        raise ValueError("`attribute_maps` must not be empty. Received: {}")
    names = [_family_and_value(key) for key in attribute_maps]
    regions = [np.asarray(region) for region in attribute_maps.values()]
    shape = regions[0].shape
    if len(shape) != 3 or any(region.shape != shape or region.dtype != np.bool_ for region in regions):
        raise ValueError("`attribute_maps` must be bool [N, H, W] maps of one shape. Received: "
                         f"{sorted({(str(r.dtype), r.shape) for r in regions})}")
    region_matrix = np.stack([region.reshape(-1) for region in regions], axis=1).astype(np.float64)   # [P, V]
    region_sizes = region_matrix.sum(axis=0)
    labels: Dict[int, ClusterLabel] = {}
    for cluster, mask in cluster_masks.items():
        mask = np.asarray(mask)
        if mask.ndim != 3 or mask.shape[0] != shape[0] or mask.dtype != np.bool_:
            raise ValueError(f"cluster_masks[{cluster!r}] must be bool [N, h, w] with N={shape[0]}. "
                             f"Received: {mask.dtype} shape {mask.shape}")
        if mask.shape != shape:
            mask = resize_maps(mask, shape[1:], "nearest") > 0.5
        flat = mask.reshape(-1).astype(np.float64)
        intersection = flat @ region_matrix
        union = flat.sum() + region_sizes - intersection
        iou = np.where(union > 0, intersection / np.maximum(union, 1.0), 0.0)
        best = int(np.argmax(iou))
        labels[cluster] = (ClusterLabel(*names[best], float(iou[best])) if iou[best] > 0
                           else ClusterLabel(None, None, 0.0))
    return labels


class EffectLabel(NamedTuple):
    """What ablating a cluster's units does: the family changed most often (None when none changed), its most
    common value before the edit, the share of edits that changed that family, and how many edits were made."""
    family: Optional[str]
    value: Optional[str]
    share: float
    changed_fraction: float
    n: int


def label_by_effect(outcomes: Iterable[Tuple[Set[str], Optional[Mapping[str, Any]]]]) -> EffectLabel:
    """Names a cluster by what its ablations change (GAN Dissection's causal test), not by where it overlaps.

    Args:
        outcomes: one (changed, target) per edit of the cluster's units: `changed_attributes` of the edit and the
            original object nearest the edit (a description object, or None when the edit hit background).

    Region overlap (`label_clusters`) names a cluster by the value covering most of its segmentation, which at 32 px
    is the size of the largest object for most clusters; the effect is what a targeted edit is meant to change, so it
    is the family its success is scored against. "objects" (an object appeared, vanished or moved) is counted in
    `changed_fraction` but is not a concept, so it never names a cluster.
    """
    family_counts: Counter = Counter()
    value_counts: Dict[str, Counter] = {family: Counter() for family in ATTRIBUTE_FAMILIES}
    n = changed = 0
    for item in outcomes:
        try:
            change, target = item
        except (TypeError, ValueError) as error:
            raise ValueError(f"`outcomes` must hold (changed, target_object_or_None) pairs. Received: {item!r}") \
                from error
        change = set(change)
        n += 1
        changed += int(bool(change))
        for family in ATTRIBUTE_FAMILIES:
            if family in change:
                family_counts[family] += 1
                if target is not None and family in target:
                    value_counts[family][target[family]] += 1
    if not family_counts:
        return EffectLabel(None, None, 0.0, changed / n if n else 0.0, n)
    # ties go to the first family in ATTRIBUTE_FAMILIES order
    family = max(ATTRIBUTE_FAMILIES, key=lambda f: (family_counts[f], -ATTRIBUTE_FAMILIES.index(f)))
    common = value_counts[family].most_common(1)
    return EffectLabel(family, common[0][0] if common else None, family_counts[family] / n, changed / n, n)
