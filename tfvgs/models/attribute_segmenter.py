"""The attribute segmenter: a small U-Net that says, per pixel, which object attributes are drawn there.

Paper 000 (sec. 6.1) trains a segmenter on rendered CLEVR images and uses its segmentations to write one description
per GAN image. Ours predicts, at every pixel of an image [B, S, S, 3] in [-1, 1] (any S divisible by 2**depth):

    foreground  [B,S,S,1]  logit of "some object is drawn here"
    shape       [B,S,S,3]  logits over vocabulary.SHAPES     (meaningful on object pixels only)
    color       [B,S,S,8]  logits over vocabulary.COLORS
    material    [B,S,S,2]  logits over vocabulary.MATERIALS
    size        [B,S,S,2]  logits over vocabulary.SIZES
    center      [B,S,S,1]  logit of a Gaussian heatmap peaking at each object's visible centre
    offset      [B,S,S,2]  (dx, dy) from the pixel to the centre of its object, in units of S / OFFSET_UNITS pixels

Instances come from the last two heads, as in Panoptic-DeepLab (Cheng et al. 2020): centres are the heatmap peaks and
every object pixel joins the centre its offset vote lands nearest to (`tfvgs.describe`). We chose centre votes over an
instance-boundary map because CLEVR objects touch and occlude each other, and at 32-64 px the boundary between two
touching objects is a single, anti-aliased pixel that a boundary head would have to get exactly right; a vote only
has to land closer to its own centre than to the next one, and an occluded object whose visible part is split in two
still votes for one centre.

Training targets come from the rendered instance mask and attribute maps (`segmentation_targets`). The loss
(`compute_loss`) is the sum of weighted terms: foreground binary cross-entropy over all pixels plus a soft Dice loss
per image (objects cover only 5-15% of the pixels; Dice does not care), one sparse categorical
cross-entropy per attribute averaged over ground-truth object pixels only (background masked out), heatmap binary
cross-entropy against the soft Gaussian targets over all pixels, and a Huber loss on the offsets over object pixels.
GroupNorm rather than BatchNorm: the segmenter must describe GAN images whose statistics differ from the rendered
training batches, and GroupNorm behaves the same in training and inference and at any batch size.
"""
from __future__ import annotations

from typing import Dict, Optional

import keras
import tensorflow as tf

from tfvgs.world.vocabulary import ATTRIBUTES

ATTRIBUTE_FAMILIES = ("shape", "color", "material", "size")   # channel order of the rendered attribute maps
NUM_CLASSES: Dict[str, int] = {family: len(ATTRIBUTES[family]) for family in ATTRIBUTE_FAMILIES}
OUTPUT_CHANNELS: Dict[str, int] = {"foreground": 1, **NUM_CLASSES, "center": 1, "offset": 2}
OFFSET_UNITS = 16.0          # offsets are predicted in units of image_size / 16 pixels: O(1) numbers at any size
CENTER_SIGMA_FRACTION = 1.0 / 32.0   # Gaussian heatmap sigma = max(1, image_size / 32) pixels
DEFAULT_LOSS_WEIGHTS: Dict[str, float] = {"foreground": 5.0, "foreground_dice": 5.0, "shape": 1.0, "color": 1.0,
                                          "material": 1.0, "size": 1.0, "center": 10.0, "offset": 1.0}


def _groups(channels: int) -> int:
    """GroupNorm groups: up to 8, at least 4 channels per group when there are enough channels."""
    groups = max(1, min(8, channels // 4))
    while channels % groups:
        groups -= 1
    return groups


@keras.saving.register_keras_serializable(package="tfvgs")
class ConvNormBlock(keras.layers.Layer):
    """Two [3x3 conv - GroupNorm - ReLU] units: the U-Net's building block."""

    def __init__(self, channels: int, seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        if int(channels) < 1:
            raise ValueError(f"`channels` must be a positive integer. Received: channels={channels}")
        self.channels = int(channels)
        self.seed = None if seed is None else int(seed)
        self.convs = [keras.layers.Conv2D(self.channels, 3, padding="same", use_bias=False,
                                          kernel_initializer=keras.initializers.HeNormal(_sub_seed(self.seed, i)),
                                          name=f"conv{i}") for i in range(2)]
        self.norms = [keras.layers.GroupNormalization(_groups(self.channels), epsilon=1e-5, name=f"norm{i}")
                      for i in range(2)]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv, norm in zip(self.convs, self.norms):
            conv.build(shape)
            shape = shape[:-1] + (self.channels,)
            norm.build(shape)
        super().build(input_shape)

    def call(self, x):
        for conv, norm in zip(self.convs, self.norms):
            x = tf.nn.relu(norm(conv(x)))
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="tfvgs")
class AttributeSegmenter(keras.Model):
    """Fully convolutional U-Net: images [B, S, S, 3] in [-1, 1] -> dict of per-pixel logits (see module doc).

    Args:
        width: channels of the first level; level l has width * 2**l channels.
        depth: number of 2x downsamplings (S must be divisible by 2**depth). 3 gives a ~65 px receptive field at the
            bottleneck, enough to see a whole object at up to 128 px (size needs the whole object).
        loss_weights: weight of each loss term (keys of DEFAULT_LOSS_WEIGHTS); missing keys keep their default.
            The foreground terms weigh 5x: on the tiny world (width 16, batch 8) equal weights left the foreground
            IoU at 0.03 after 40 steps (the attribute terms dominate the shared features), 5x reached 0.57.
        seed: seeds the weight initialisation (None: unseeded).
    """

    def __init__(self, width: int = 64, depth: int = 3, loss_weights: Optional[Dict[str, float]] = None,
                 seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        if int(width) < 1:
            raise ValueError(f"`width` must be a positive integer. Received: width={width}")
        if int(depth) < 1:
            raise ValueError(f"`depth` must be a positive integer. Received: depth={depth}")
        unknown = sorted(set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS))
        if unknown:
            raise ValueError(f"Unknown loss term(s) {unknown} in `loss_weights`; known: {sorted(DEFAULT_LOSS_WEIGHTS)}."
                             f" Received: loss_weights={loss_weights}")
        self.width, self.depth = int(width), int(depth)
        self.seed = None if seed is None else int(seed)
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **{k: float(v) for k, v in (loss_weights or {}).items()}}

        self.encoder_blocks = [ConvNormBlock(self.width * 2 ** level, seed=_sub_seed(self.seed, 10 + level),
                                             name=f"down{level}") for level in range(self.depth)]
        self.bottleneck = ConvNormBlock(self.width * 2 ** self.depth, seed=_sub_seed(self.seed, 30),
                                        name="bottleneck")
        self.decoder_blocks = [ConvNormBlock(self.width * 2 ** level, seed=_sub_seed(self.seed, 40 + level),
                                             name=f"up{level}") for level in reversed(range(self.depth))]
        # Priors as in RetinaNet: start near the base rates (objects cover 5-15% of pixels, centres far less) so the
        # first steps do not spend themselves pushing every pixel to background.
        self.heads = {
            name: keras.layers.Conv2D(
                channels, 1, name=f"{name}_head",
                kernel_initializer=keras.initializers.GlorotUniform(_sub_seed(self.seed, 70 + i)),
                bias_initializer=keras.initializers.Constant({"foreground": -1.5, "center": -4.0}.get(name, 0.0)))
            for i, (name, channels) in enumerate(OUTPUT_CHANNELS.items())}

        self.loss_trackers = {name: keras.metrics.Mean(name=f"{name}_loss") for name in DEFAULT_LOSS_WEIGHTS}
        self.foreground_accuracy = keras.metrics.BinaryAccuracy(name="foreground_accuracy")
        self.foreground_iou = keras.metrics.BinaryIoU(target_class_ids=[1], name="foreground_iou")
        self.attribute_accuracy = {family: keras.metrics.SparseCategoricalAccuracy(name=f"{family}_accuracy")
                                   for family in ATTRIBUTE_FAMILIES}

    # --- forward ----------------------------------------------------------------------------------------------

    def _check_input(self, shape):
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(f"AttributeSegmenter expects images [B, S, S, 3]. Received: shape {tuple(shape)}")
        multiple = 2 ** self.depth
        for size in shape[1:3]:
            if size is not None and int(size) % multiple:
                raise ValueError(f"AttributeSegmenter(depth={self.depth}) needs image sides divisible by {multiple}. "
                                 f"Received: shape {tuple(shape)}")

    def build(self, input_shape):
        self._check_input(input_shape)
        shape = tuple(input_shape)
        skips = []
        for level, block in enumerate(self.encoder_blocks):
            block.build(shape)
            shape = block.compute_output_shape(shape)
            skips.append(shape)
            shape = (shape[0], _half(shape[1]), _half(shape[2]), shape[3])
        self.bottleneck.build(shape)
        shape = self.bottleneck.compute_output_shape(shape)
        for block, skip in zip(self.decoder_blocks, reversed(skips)):
            shape = skip[:-1] + (shape[-1] + skip[-1],)
            block.build(shape)
            shape = block.compute_output_shape(shape)
        for head in self.heads.values():
            head.build(shape)
        super().build(input_shape)

    def call(self, images, training=None):
        self._check_input(images.shape)
        x = tf.convert_to_tensor(images, dtype=self.compute_dtype)
        skips = []
        for block in self.encoder_blocks:
            x = block(x)
            skips.append(x)
            x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        x = self.bottleneck(x)
        for block, skip in zip(self.decoder_blocks, reversed(skips)):
            x = tf.image.resize(x, tf.shape(skip)[1:3], method="bilinear")
            x = block(tf.concat([x, skip], axis=-1))
        return {name: head(x) for name, head in self.heads.items()}

    # --- training ---------------------------------------------------------------------------------------------

    def loss_terms(self, targets: Dict[str, tf.Tensor], outputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Unweighted per-replica loss terms (Keras losses: scaled by 1 / replicas, like every Keras loss)."""
        bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction="sum_over_batch_size")
        masked_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
        huber = keras.losses.Huber(delta=1.0, reduction="mean_with_sample_weight")
        foreground = tf.cast(targets["foreground"], tf.float32)          # [B,S,S] 0/1
        outputs = {k: tf.cast(v, tf.float32) for k, v in outputs.items()}
        dice = keras.losses.Dice(axis=(1, 2, 3), reduction="sum_over_batch_size")
        terms = {"foreground": bce(foreground[..., None], outputs["foreground"]),
                 "foreground_dice": dice(foreground[..., None], tf.sigmoid(outputs["foreground"])),
                 "center": bce(tf.cast(targets["center"], tf.float32)[..., None], outputs["center"]),
                 "offset": huber(tf.cast(targets["offset"], tf.float32), outputs["offset"], sample_weight=foreground)}
        labels = tf.cast(targets["attributes"], tf.int32)                # [B,S,S,4] class index, 0 on background
        for i, family in enumerate(ATTRIBUTE_FAMILIES):
            terms[family] = masked_ce(labels[..., i], outputs[family], sample_weight=foreground)
        return terms

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        terms = self.loss_terms(y, y_pred)
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        for name, value in terms.items():
            self.loss_trackers[name].update_state(value * replicas)   # logged unscaled: the global-batch mean
        total = tf.add_n([self.loss_weights[name] * value for name, value in terms.items()])
        return total + tf.add_n(self.losses) if self.losses else total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        foreground = tf.cast(y["foreground"], tf.float32)
        probability = tf.sigmoid(tf.cast(y_pred["foreground"][..., 0], tf.float32))
        self.foreground_accuracy.update_state(foreground, probability)
        self.foreground_iou.update_state(foreground, probability)
        labels = tf.cast(y["attributes"], tf.int32)
        for i, family in enumerate(ATTRIBUTE_FAMILIES):
            self.attribute_accuracy[family].update_state(labels[..., i], y_pred[family], sample_weight=foreground)
        return self.get_metrics_result()

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width, depth=self.depth, loss_weights=dict(self.loss_weights), seed=self.seed)
        return config


def _sub_seed(seed: Optional[int], index: int) -> Optional[int]:
    """A distinct initialiser seed per layer (the same int seed would give same-shaped layers equal weights)."""
    return None if seed is None else (seed * 1000 + index) % (2 ** 31 - 1)


def _half(size):
    return None if size is None else size // 2


def segmentation_targets(instance_mask: tf.Tensor, attributes: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Training targets from rendered maps: instance_mask uint8 [B,S,S] (0 background, i+1 object i) and attribute
    ids uint8 [B,S,S,4] (0 background, value index + 1) ->

        foreground [B,S,S] float 0/1, attributes [B,S,S,4] int32 class index (0 on background; masked by the loss),
        center [B,S,S] float Gaussian heatmap (max over objects) around each object's visible-pixel centroid,
        offset [B,S,S,2] float (dx, dy) to the pixel's object centroid in offset units (0 on background).

    Centroids are of pixel centres (col + 0.5, row + 0.5), the convention of CLEVR's pixel_coords.
    """
    instance_mask = tf.convert_to_tensor(instance_mask)
    attributes = tf.convert_to_tensor(attributes)
    if instance_mask.shape.rank != 3 or attributes.shape.rank != 4:
        raise ValueError(f"segmentation_targets expects instance_mask [B,S,S] and attributes [B,S,S,4]. Received: "
                         f"{instance_mask.shape} and {attributes.shape}")
    mask = tf.cast(instance_mask, tf.int32)
    size_h, size_w = tf.shape(mask)[1], tf.shape(mask)[2]
    size = tf.cast(size_w, tf.float32)
    depth = tf.reduce_max(mask) + 1
    one_hot = tf.one_hot(mask, depth, dtype=tf.float32)[..., 1:]           # [B,S,S,K] objects only
    ys = tf.cast(tf.range(size_h), tf.float32) + 0.5
    xs = tf.cast(tf.range(size_w), tf.float32) + 0.5
    counts = tf.reduce_sum(one_hot, axis=[1, 2])                             # [B,K]
    safe = tf.maximum(counts, 1.0)
    center_x = tf.einsum("bhwk,w->bk", one_hot, xs) / safe
    center_y = tf.einsum("bhwk,h->bk", one_hot, ys) / safe
    pixel_cx = tf.einsum("bhwk,bk->bhw", one_hot, center_x)
    pixel_cy = tf.einsum("bhwk,bk->bhw", one_hot, center_y)
    foreground = tf.cast(mask > 0, tf.float32)
    unit = size / OFFSET_UNITS
    offset = tf.stack([(pixel_cx - xs[None, None, :]) * foreground, (pixel_cy - ys[None, :, None]) * foreground],
                      axis=-1) / unit
    sigma = tf.maximum(1.0, size * CENTER_SIGMA_FRACTION)
    dx = xs[None, None, :, None] - center_x[:, None, None, :]
    dy = ys[None, :, None, None] - center_y[:, None, None, :]
    gauss = tf.exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma)) * tf.cast(counts > 0, tf.float32)[:, None, None, :]
    center = tf.reduce_max(tf.concat([gauss, tf.zeros_like(gauss[..., :1])], axis=-1), axis=-1)
    labels = tf.maximum(tf.cast(attributes, tf.int32) - 1, 0) * tf.cast(mask > 0, tf.int32)[..., None]
    return {"foreground": foreground, "attributes": labels, "center": center, "offset": offset}
