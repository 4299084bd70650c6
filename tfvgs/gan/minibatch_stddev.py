"""Minibatch standard deviation (Karras et al. 2018, sec. 3).

Appends one feature map holding the average (over features and positions) standard deviation across a group of
samples, so the discriminator can see when generated batches lack variation and push the generator to cover more
modes. Groups are strided as in PGGAN: sample i belongs to group i % (batch / group_size).
"""
from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="tfvgs")
class MinibatchStddev(keras.layers.Layer):
    """[B, H, W, C] -> [B, H, W, C + 1].

    Args:
        group_size: samples per statistics group; the batch must be a multiple of it or smaller than it (then the
            whole batch is one group).
        epsilon: added to the variance before the square root.
    """

    def __init__(self, group_size: int = 4, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        if int(group_size) != group_size or group_size < 1:
            raise ValueError(f"`group_size` must be a positive integer. Received: group_size={group_size!r}")
        self.group_size = int(group_size)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        static_batch = inputs.shape[0]
        if static_batch is not None and static_batch > self.group_size and static_batch % self.group_size:
            raise ValueError(f"MinibatchStddev needs a batch that is a multiple of group_size={self.group_size} "
                             f"(or at most group_size). Received batch size: {static_batch}")
        shape = keras.ops.shape(inputs)
        height, width, channels = inputs.shape[1], inputs.shape[2], inputs.shape[3]
        group = keras.ops.minimum(self.group_size, shape[0])
        x = keras.ops.reshape(inputs, (group, -1, height, width, channels))   # [G, M, H, W, C]
        x = x - keras.ops.mean(x, axis=0, keepdims=True)
        stddev = keras.ops.sqrt(keras.ops.mean(keras.ops.square(x), axis=0) + self.epsilon)   # [M, H, W, C]
        stddev = keras.ops.mean(stddev, axis=(1, 2, 3), keepdims=True)                        # [M, 1, 1, 1]
        stddev = keras.ops.tile(stddev, (group, height, width, 1))                            # [B, H, W, 1]
        return keras.ops.concatenate([inputs, keras.ops.cast(stddev, inputs.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] + 1,)

    def get_config(self):
        config = super().get_config()
        config.update({"group_size": self.group_size, "epsilon": self.epsilon})
        return config
