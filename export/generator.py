"""The `generator` servable: the trained scene GAN as SavedModel signatures (paper 000 sec. 4).

    generate          latent float32 [B, Z] -> image float32 [B, R, R, 3] (linear output, ~[-1, 1]),
                      image_uint8 uint8 [B, R, R, 3]
    generate_ablated  latent float32 [B, Z], ablation float32 [B or 1, 8 or 1, 8 or 1, C or 1] in [0, 1]
                      -> the same outputs, with h4 units multiplied by (1 - ablation) as in paper 000's edits

Z = the generator's latent size, R its final resolution, C its h4 channels. Latents that reproduce "seed s" of the
`draw` tool are `tfvgs.gan_io.latents_for_seeds([s], Z)`. A signature cannot have optional inputs, so the ablation
mask has its own signature; `generate` equals `generate_ablated` with a zero mask.
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from export.input_checks import InputChecks, dims
from export.tracking import Untracked, concrete_signatures

_FLOAT = tf.TensorSpec(None, tf.float32)
H4_SIZE = 8


class GeneratorServable(tf.Module):
    """A `tfvgs.gan.ProgressiveGenerator` at its final resolution with validated `generate` signatures.

    Args:
        generator: the trained generator (`tfvgs.gan_io.load_generator`); its `alpha` should be 1.
    """

    def __init__(self, generator):
        super().__init__(name="generator")
        self._keras = Untracked(generator=generator)
        self.latent_dim = int(generator.latent_dim)
        self.resolution = int(generator.max_resolution)
        self.h4_channels = int(generator.h4_channels)

    def _check_latent(self, checks: InputChecks, latent) -> None:
        checks.require_rank(latent, "latent", 2, f"[batch, {self.latent_dim}]")
        checks.require_examples(latent, "latent")
        checks.require(tf.equal(dims(latent, 2)[1], self.latent_dim),
                       f"`latent` must be [batch, {self.latent_dim}] (the generator's latent size). Received shape:",
                       [tf.shape(latent)])
        checks.require_finite(latent, "latent")

    def _images(self, latent, ablation=None) -> Dict[str, tf.Tensor]:
        generator = self._keras.generator
        latent = tf.ensure_shape(latent, [None, self.latent_dim])
        image = generator.generate(latent, ablation)
        return {"image": image, "image_uint8": generator.to_uint8(image)}

    @tf.function(autograph=False, input_signature=[_FLOAT])
    def generate(self, latent):
        checks = InputChecks("generate")
        self._check_latent(checks, latent)
        return self._images(*checks.gate([latent], [tf.zeros([1, self.latent_dim])]))

    @tf.function(autograph=False, input_signature=[_FLOAT, _FLOAT])
    def generate_ablated(self, latent, ablation):
        checks = InputChecks("generate_ablated")
        self._check_latent(checks, latent)
        expected = f"[batch, {H4_SIZE}, {H4_SIZE}, {self.h4_channels}]"
        checks.require_rank(ablation, "ablation", 4, f"{expected} (any axis may be 1 to broadcast)")
        full = tf.stack([dims(latent, 1)[0], H4_SIZE, H4_SIZE, self.h4_channels])
        checks.require(tf.logical_or(tf.equal(dims(ablation, 4), full), tf.equal(dims(ablation, 4), 1)),
                       f"`ablation` must broadcast to {expected} (the h4 map; batch = the latents'). Received "
                       "ablation and latent shapes:", [tf.shape(ablation), tf.shape(latent)])
        checks.require_finite(ablation, "ablation")
        checks.require(tf.logical_and(tf.reduce_min(ablation) >= 0.0, tf.reduce_max(ablation) <= 1.0),
                       "`ablation` values must be in [0, 1] (1 removes a unit, 0 keeps it). Received min and max:",
                       [tf.reduce_min(ablation), tf.reduce_max(ablation)])
        latent, ablation = checks.gate([latent, ablation], [tf.zeros([1, self.latent_dim]), tf.zeros([1, 1, 1, 1])])
        return self._images(latent, tf.ensure_shape(ablation, [None, None, None, None]))

    def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
        return concrete_signatures(self, ("generate", "generate_ablated"), "generate")

    def describe(self) -> Dict:
        r, z, c = self.resolution, self.latent_dim, self.h4_channels
        outputs = {"image": f"float32 [B, {r}, {r}, 3] linear, ~[-1, 1]", "image_uint8": f"uint8 [B, {r}, {r}, 3]"}
        return {"signatures": {
            "generate": {"inputs": {"latent": f"float32 [B, {z}]"}, "outputs": outputs},
            "generate_ablated": {"inputs": {"latent": f"float32 [B, {z}]",
                                            "ablation": f"float32 broadcastable to [B, 8, 8, {c}], in [0, 1]"},
                                 "outputs": outputs}},
            "latent_dim": z, "resolution": r, "h4_channels": c}
