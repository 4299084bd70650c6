"""Did an edit change what the segmenter reads under it? A graph-mode test that an edited negative is a negative.

Paper 000 (sec. 5.4) grows an ablation "until the edited image differs" (pixels: `negatives.changed_fraction`). With
our 32-px GAN most edits that move pixels change nothing a caption could say: in every `cpu` build only 30-36% of
held-out edits changed the segmenter's description (docs/results.md), so ~2/3 of the edited "negatives" still match
their caption and teach the model to push a true match away. `edits.change_test = "segmenter"` adds this test to
the pixel one, so the ablation grows until the segmenter reads something else under the edit, and a pair whose edit
never gets there is dropped from the loss (valid=False) as before.

The segmenter is the one that captioned the Audio CLEVRGAN pairs (W/segmenter), so "changed" means changed for the
machinery that wrote the caption, not for the renderer's ground truth. It is a departure from the paper's pixel
criterion, off by default; the `cpu` figures with and without it are in docs/results.md.

A pixel counts as read differently when its foreground decision flipped, or it is foreground in both images and the
argmax of any attribute family differs. Over the edit's region (the ablated h4 cells grown by `margin_cells`, since
the generator's later convolutions spread an ablation), the edit counts when those pixels reach `majority` of the
original's foreground pixels there - the description takes each attribute's mean over an object's pixels, so a
majority flip is what moves it - or, when the edit hit (almost) background, when at least `min_object_pixels`
pixels changed: an object appeared.
"""
from __future__ import annotations

import math
from typing import Dict

import tensorflow as tf

from tfvgs.models.attribute_segmenter import ATTRIBUTE_FAMILIES


class DescribedChange:
    """Reads images with a frozen `AttributeSegmenter` and says, per pair, whether an edit changed the reading.

    Args:
        segmenter: the trained segmenter (any callable `segmenter(images, training=False)` -> dict of logit maps
            with "foreground" and the attribute families).
        min_object_pixels: the segmenter's `min_object_pixels`: the smallest object a description holds.
        majority: fraction of the region's original foreground pixels that must be read differently.
        margin_cells: h4 cells added around the ablated ones on each side.
        foreground_threshold: probability above which a pixel is foreground (as `tfvgs.describe`).
    """

    def __init__(self, segmenter, min_object_pixels: int, majority: float = 0.5, margin_cells: int = 1,
                 foreground_threshold: float = 0.5):
        if not 0.0 < float(majority) <= 1.0:
            raise ValueError(f"`majority` must be in (0, 1]. Received: majority={majority}")
        if int(margin_cells) < 0 or int(min_object_pixels) < 1:
            raise ValueError(f"`margin_cells` must be >= 0 and `min_object_pixels` >= 1. Received: margin_cells="
                             f"{margin_cells}, min_object_pixels={min_object_pixels}")
        if not 0.0 < float(foreground_threshold) < 1.0:
            raise ValueError(f"`foreground_threshold` must be in (0, 1). Received: {foreground_threshold}")
        self.segmenter = segmenter
        self.min_object_pixels, self.majority = int(min_object_pixels), float(majority)
        self.margin_cells = int(margin_cells)
        self.foreground_logit = math.log(foreground_threshold / (1.0 - foreground_threshold))

    def read(self, images) -> Dict[str, tf.Tensor]:
        """{"foreground": [B, S, S] bool, "labels": [B, S, S, 4] int32 (argmax per family)} of images in [-1, 1]."""
        maps = self.segmenter(tf.convert_to_tensor(images, tf.float32), training=False)
        missing = [k for k in ("foreground",) + ATTRIBUTE_FAMILIES if k not in maps]
        if missing:
            raise ValueError(f"the segmenter must return maps for {('foreground',) + ATTRIBUTE_FAMILIES}. "
                             f"Missing: {missing}")
        foreground = tf.cast(maps["foreground"][..., 0], tf.float32) > self.foreground_logit
        labels = tf.stack([tf.argmax(maps[f], axis=-1, output_type=tf.int32) for f in ATTRIBUTE_FAMILIES], -1)
        return {"foreground": foreground, "labels": labels}

    def region(self, location, image_size: int) -> tf.Tensor:
        """[B, S, S] bool: the h4 cells of `location` [B, G, G] grown by margin_cells, at image resolution."""
        cells = tf.cast(location, tf.float32)[..., None]
        if self.margin_cells:
            width = 2 * self.margin_cells + 1
            cells = tf.nn.max_pool2d(cells, width, strides=1, padding="SAME")
        grown = tf.image.resize(cells, [image_size, image_size], method="nearest")
        return grown[..., 0] > 0.5

    def changed(self, edited, original_reading: Dict[str, tf.Tensor], location) -> tf.Tensor:
        """[B] bool: the segmenter reads the edited image differently under the edit (see the module docstring)."""
        reading = self.read(edited)
        region = self.region(location, int(edited.shape[1]))
        before, after = original_reading["foreground"], reading["foreground"]
        relabelled = tf.logical_and(tf.logical_and(before, after),
                                    tf.reduce_any(tf.not_equal(original_reading["labels"], reading["labels"]), -1))
        differs = tf.logical_and(region, tf.logical_or(tf.not_equal(before, after), relabelled))
        count = lambda mask: tf.reduce_sum(tf.cast(mask, tf.float32), axis=[1, 2])      # noqa: E731
        object_pixels = count(tf.logical_and(region, before))
        needed = tf.where(object_pixels >= self.min_object_pixels, self.majority * object_pixels,
                          float(self.min_object_pixels))
        return count(differs) >= needed
