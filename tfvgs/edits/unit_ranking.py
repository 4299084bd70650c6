"""Which GAN h4 units draw a concept: rank units by agreement with a segmentation, as GAN Dissection does.

Paper 000 sec. 4.2 ranks the filters of h4 "according to their correlation with s" following GAN Dissection (Bau et
al., ICLR 2019), and sec. 5.5 uses the cluster segmentation s(I|w_k) as s. GAN Dissection measures agreement with
the IoU of the thresholded unit map and the segmentation, and so do we:

    ranking = rank_units(h4 [N, h, w, U], masks bool [N, H, W], quantile=0.99)
    ablate = ranking.top(k)

For every unit: its map is resized to the mask resolution (bilinear by default, see `resize_maps`), thresholded at
its own `quantile` over the whole sample (the top 1% of locations), and IoU = sum_n |unit_n & mask_n| /
sum_n |unit_n | mask_n| is pooled over the sample (not averaged per image, so images without the concept count too).

Why IoU and not a correlation coefficient: ablation zeroes a unit, which matters where the unit fires strongly, so
what should agree with the mask is where the unit's top activations are, not how all its values vary linearly. The
thresholded IoU is also independent of each unit's scale and of the mass of near-zero activations that dominates a
Pearson correlation of ReLU-like maps, a unit firing everywhere gets a low score (large union), and the ranking is
the one GAN Dissection validated by ablation, so our units are chosen like those of [9].

Resolutions: the cpu preset has h4 and masks both 8x8; tiny has h4 8x8 and masks 4x4; the paper's h4 is 8x8 and the
VGG map 14x14.
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np

RESIZE_METHODS = ("bilinear", "nearest")
# Elements of the resized [N, H, W, block] float32 unit maps held at a time (64 MiB).
_BLOCK_ELEMENTS = 1 << 24


def interpolation_matrix(in_size: int, out_size: int, method: str = "bilinear") -> np.ndarray:
    """float64 [out_size, in_size] resampling one axis with half-pixel centres (as tf.image.resize, no antialias).

    Bilinear downsampling by 2 averages pairs of cells (so 8x8 -> 4x4 is 2x2 average pooling); nearest picks the cell
    under each output centre (8 -> 4 takes every second cell, 8 -> 14 repeats six of the eight).
    """
    in_size, out_size = int(in_size), int(out_size)
    if in_size < 1 or out_size < 1:
        raise ValueError(f"Sizes must be >= 1. Received: in_size={in_size}, out_size={out_size}")
    if method not in RESIZE_METHODS:
        raise ValueError(f"`method` must be one of {RESIZE_METHODS}. Received: method={method!r}")
    matrix = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    if method == "nearest":
        matrix[rows, np.minimum(((rows + 0.5) * in_size / out_size).astype(np.int64), in_size - 1)] = 1.0
        return matrix
    source = np.clip((rows + 0.5) * in_size / out_size - 0.5, 0.0, in_size - 1)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    fraction = source - low
    np.add.at(matrix, (rows, low), 1.0 - fraction)
    np.add.at(matrix, (rows, high), fraction)
    return matrix


def resize_maps(maps, size: Tuple[int, int], method: str = "bilinear") -> np.ndarray:
    """float32 [N, H, W, C] (or [N, H, W] for [N, h, w] input): `maps` resized to size=(H, W)."""
    maps = np.asarray(maps)
    squeeze = maps.ndim == 3
    if squeeze:
        maps = maps[..., None]
    if maps.ndim != 4:
        raise ValueError(f"`maps` must be [N, h, w, C] or [N, h, w]. Received: shape {maps.shape}")
    height, width = (int(s) for s in size)
    maps = maps.astype(np.float32)
    if (height, width) != maps.shape[1:3]:
        rows = interpolation_matrix(maps.shape[1], height, method).astype(np.float32)
        cols = interpolation_matrix(maps.shape[2], width, method).astype(np.float32)
        maps = np.einsum("Hh,nhwc->nHwc", rows, maps, optimize=True)
        maps = np.einsum("Ww,nHwc->nHWc", cols, maps, optimize=True)
    return maps[..., 0] if squeeze else maps


@dataclasses.dataclass
class UnitRanking:
    """Units ordered by IoU with a segmentation.

    Attributes:
        order: int64 [U] unit indices, best first (ties by unit index).
        iou: float64 [U] IoU of each unit (indexed by unit, not by rank).
        thresholds: float64 [U] each unit's activation threshold (at the mask resolution).
    """
    order: np.ndarray
    iou: np.ndarray
    thresholds: np.ndarray

    def top(self, k: int) -> np.ndarray:
        """The k best units (int64 [k])."""
        if int(k) < 0:
            raise ValueError(f"`k` must be >= 0. Received: k={k}")
        return self.order[:int(k)]


def rank_units(unit_activations, masks, quantile: float = 0.99, method: str = "bilinear") -> UnitRanking:
    """Ranks the units of `unit_activations` [N, h, w, U] by IoU of their top-`quantile` regions with `masks`.

    Args:
        unit_activations: GAN h4 activations of N samples, channels last.
        masks: bool [N, H, W] segmentation of the same N samples (e.g. `cluster_segmentation`).
        quantile: each unit is "on" where its resized map is strictly above its `quantile` over the sample.
        method: "bilinear" (default, as GAN Dissection's upsampling) or "nearest", for resizing unit maps to (H, W).
    """
    activations = np.asarray(unit_activations)
    masks = np.asarray(masks)
    if activations.ndim != 4:
        raise ValueError(f"`unit_activations` must be [N, h, w, U]. Received: shape {activations.shape}")
    if masks.ndim != 3 or masks.shape[0] != activations.shape[0] or masks.dtype != np.bool_:
        raise ValueError(f"`masks` must be bool [N, H, W] with N={activations.shape[0]} as `unit_activations`. "
                         f"Received: {masks.dtype} shape {masks.shape}")
    quantile = float(quantile)
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"`quantile` must be in (0, 1). Received: quantile={quantile}")
    if method not in RESIZE_METHODS:
        raise ValueError(f"`method` must be one of {RESIZE_METHODS}. Received: method={method!r}")
    num_units = activations.shape[-1]
    locations = masks.size
    flat_masks = masks.reshape(locations, 1)
    block = max(1, _BLOCK_ELEMENTS // max(1, locations))
    iou = np.zeros(num_units, np.float64)
    thresholds = np.zeros(num_units, np.float64)
    for start in range(0, num_units, block):
        maps = resize_maps(activations[..., start:start + block], masks.shape[1:], method)
        maps = maps.reshape(locations, -1)
        block_thresholds = np.quantile(maps, quantile, axis=0)
        on = maps > block_thresholds
        intersection = np.count_nonzero(on & flat_masks, axis=0)
        union = np.count_nonzero(on | flat_masks, axis=0)
        iou[start:start + block] = np.where(union > 0, intersection / np.maximum(union, 1), 0.0)
        thresholds[start:start + block] = block_thresholds
    order = np.lexsort((np.arange(num_units), -iou)).astype(np.int64)
    return UnitRanking(order=order, iou=iou, thresholds=thresholds)
