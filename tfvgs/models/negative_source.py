"""The seam between the audio-visual model and whatever makes extra negative images (e.g. GAN edits, paper 000 sec. 5).

`DualEncoder.train_step` calls `negatives(...)` once per step and replica, *outside* the gradient tape (the edits are
not differentiated), then encodes the returned images inside the tape and uses each one as an extra image impostor
for its caption ("hardest of both", paper 000 sec. 6.3).
"""
from __future__ import annotations

import abc


class NegativeSource(abc.ABC):
    """Makes one edited negative image I_n,j = g_n(I_j, A_j) per image/caption pair of a batch.

    Contract:
      * Runs inside `tf.function` and, under `tf.distribute.MirroredStrategy`, once per replica on that replica's
        slice of the batch: use TensorFlow ops, create any variables (e.g. a GAN generator) under the same strategy
        scope as the model, and keep randomness stateless or in a `tf.random.Generator` made in that scope.
      * Inputs are the replica's batch dict (`image`, `logmel`, `nframes` and optional keys such as `latent`) and the
        model's current features of it, already cut from the gradient tape: image_feats [B, H', W', D],
        audio_feats [B, T', D], audio_frames [B] (valid output frames) - e.g. for the matchmap of paper 000 sec. 5.4.
      * Returns (negative_images [B, H, W, 3] float32 in [-1, 1], valid [B] bool). Rows with valid=False are ignored
        by the loss, but still go through the image encoder in one batch with the valid ones (BatchNorm statistics),
        so return a plausible image there - the original image is a good choice - rather than zeros.
    """

    @abc.abstractmethod
    def negatives(self, batch, image_feats, audio_feats, audio_frames):
        """Returns (negative_images [B, H, W, 3], valid [B] bool) for the pairs of `batch`."""
