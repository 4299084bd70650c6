"""DAVEnet-5: the convolutional speech encoder of Harwath et al. (paper 001 sec. 4.2, fig. 3).

Layer for layer the reference `Davenet` (dharwath/DAVEnet-pytorch, models/AudioModels.py), in channels-last form:

    BatchNorm over the whole spectrogram (one mean/variance: the network normalises its own input)
    conv 40x1 -> 128   (a per-frame projection of the 40 mel bands; written as a 1-wide Conv1D)
    conv 1x11 -> 256, maxpool 1x3 /2
    conv 1x17 -> 512, maxpool
    conv 1x17 -> 512, maxpool
    conv 1x17 -> D,   maxpool           ReLU after every conv; output [B, ceil(T/16), D]
    (of which floor(n/16) are valid for a caption of n frames, as in DAVEnet-pytorch)

Pools pad one frame on each side like PyTorch's `MaxPool2d(padding=(0, 1))` (zeros are a safe pad after a ReLU), so
output frame i is centred on input frame 16 i. `large=True` appends three more 1x17 D -> D conv + ReLU layers without
pooling: paper 000 sec. 6 deepens the audio model "adding three extra convolutional layers at the end" for human
speech (its code is not public; this is our reading). `width_multiplier` scales the hidden channels (128/256/512/512),
not D, so a CPU preset is the same network, thinner.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfvgs.models.encoder_options import check_encoder_options, pytorch_conv_initializer, scaled_channels

NUM_POOLS = 4


@keras.saving.register_keras_serializable(package="tfvgs")
class DavenetAudioEncoder(keras.layers.Layer):
    """Log-mel [B, T, F] -> frame embeddings [B, ceil(T/16), embedding_dim].

    Args:
        embedding_dim: D, the channels of the last conv (paper: 1024).
        width_multiplier: scales the hidden channel counts 128, 256, 512, 512.
        large: append three extra 1x17 conv layers (paper 000 sec. 6, human speech).
        num_mel_bins: F, input feature size (paper: 40).
        batchnorm_momentum: moving-average momentum of every BatchNorm (0.9 = PyTorch's 0.1).
    """

    def __init__(self, embedding_dim: int = 1024, width_multiplier: float = 1.0, large: bool = False,
                 num_mel_bins: int = 40, batchnorm_momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        embedding_dim, width_multiplier = check_encoder_options(embedding_dim, width_multiplier)
        if int(num_mel_bins) < 1:
            raise ValueError(f"`num_mel_bins` must be a positive integer. Received: num_mel_bins={num_mel_bins}")
        self.embedding_dim = int(embedding_dim)
        self.width_multiplier = float(width_multiplier)
        self.large = bool(large)
        self.num_mel_bins = int(num_mel_bins)
        self.batchnorm_momentum = float(batchnorm_momentum)

        widths = [scaled_channels(c, self.width_multiplier) for c in (128, 256, 512, 512)] + [self.embedding_dim]
        kernels = (1, 11, 17, 17, 17)
        init = pytorch_conv_initializer
        self.input_norm = keras.layers.BatchNormalization(
            axis=-1, momentum=self.batchnorm_momentum, epsilon=1e-5, synchronized=True, name="input_norm")
        self.convs = [
            keras.layers.Conv1D(w, k, padding="same", activation="relu", kernel_initializer=init(),
                                name=f"conv{i + 1}")
            for i, (w, k) in enumerate(zip(widths, kernels))]
        self.pools = [keras.layers.MaxPooling1D(3, strides=2, padding="valid", name=f"pool{i + 1}")
                      for i in range(NUM_POOLS)]
        self.extra_convs = [
            keras.layers.Conv1D(self.embedding_dim, 17, padding="same", activation="relu",
                                kernel_initializer=init(), name=f"conv{6 + i}")
            for i in range(3 if self.large else 0)]

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] not in (None, self.num_mel_bins):
            raise ValueError(f"DavenetAudioEncoder expects log-mel input [B, T, {self.num_mel_bins}]. "
                             f"Received: input_shape={input_shape}")
        super().build(input_shape)

    def call(self, logmel, training=None):
        # One statistic over batch, time and frequency, like BatchNorm2d(1) on the spectrogram "image".
        x = self.input_norm(logmel[..., None], training=training)[..., 0]
        x = self.convs[0](x)
        for conv, pool in zip(self.convs[1:], self.pools):
            x = conv(x)
            x = pool(tf.pad(x, [[0, 0], [1, 1], [0, 0]]))
        for conv in self.extra_convs:
            x = conv(x)
        return x

    def compute_output_shape(self, input_shape):
        frames = input_shape[1]
        for _ in range(NUM_POOLS):
            frames = None if frames is None else (frames + 1) // 2
        return (input_shape[0], frames, self.embedding_dim)

    def output_frames(self, nframes):
        """Valid output frames for `nframes` valid input frames: floor(n / 16), as DAVEnet-pytorch's
        `nframes // pooling_ratio`, so only frames whose whole 16-frame cell lies inside the caption count.

        (Counting every frame whose centre is inside, ceil(n / 16), gave a 0.4 s word a third frame centred on its
        last input frame and seeing mostly padding, a third of its MISA average.) At least 1, so an empty or very
        short caption still has a defined score.
        """
        n = tf.cast(nframes, tf.int32) // self.downsampling
        return tf.maximum(n, 1)

    @property
    def downsampling(self) -> int:
        return 2 ** NUM_POOLS

    def get_config(self):
        config = super().get_config()
        config.update(embedding_dim=self.embedding_dim, width_multiplier=self.width_multiplier, large=self.large,
                      num_mel_bins=self.num_mel_bins, batchnorm_momentum=self.batchnorm_momentum)
        return config
