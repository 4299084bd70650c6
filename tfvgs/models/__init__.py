"""Encoders and the dual-encoder model, looked up by name so configs and command lines can choose them.

    image: "vgg16" (paper 001), "resnet50" (paper 001), "small" (CPU preset)       -> [B, H', W', D]
    audio: "davenet" (DAVEnet-5), "davenet_large" (+3 convs, paper 000 sec. 6),
           "res_davenet" (paper 001 sec. 4.2)                                       -> [B, T', D]

`count_flops` counts the multiply-accumulates of an encoder's convolutions and matmuls on a given input shape, for
benchmarks (training cost per example ~ 3 x 2 x forward MACs: forward, plus about twice that for the backward pass).
"""
from __future__ import annotations

from typing import Dict, Sequence

from tfvgs.models.davenet_audio_encoder import DavenetAudioEncoder
from tfvgs.models.res_davenet_audio_encoder import ResDavenetAudioEncoder
from tfvgs.models.resnet50_image_encoder import Resnet50ImageEncoder
from tfvgs.models.small_image_encoder import SmallImageEncoder
from tfvgs.models.vgg16_image_encoder import Vgg16ImageEncoder
from tfvgs.models.negative_source import NegativeSource
from tfvgs.models.dual_encoder import DualEncoder

__all__ = ["DavenetAudioEncoder", "ResDavenetAudioEncoder", "Resnet50ImageEncoder", "SmallImageEncoder",
           "Vgg16ImageEncoder", "NegativeSource", "DualEncoder", "IMAGE_ENCODERS", "AUDIO_ENCODERS",
           "build_image_encoder", "build_audio_encoder", "count_flops"]

IMAGE_ENCODERS = {
    "vgg16": (Vgg16ImageEncoder, {}),
    "resnet50": (Resnet50ImageEncoder, {}),
    "small": (SmallImageEncoder, {}),
}
AUDIO_ENCODERS = {
    "davenet": (DavenetAudioEncoder, {}),
    "davenet_large": (DavenetAudioEncoder, {"large": True}),
    "res_davenet": (ResDavenetAudioEncoder, {}),
}


def _build(table, kind, name, kwargs):
    if name not in table:
        raise ValueError(f"Unknown {kind} encoder {name!r}. Known: {sorted(table)}")
    cls, defaults = table[name]
    return cls(**{**defaults, **kwargs})


def build_image_encoder(name: str, **kwargs):
    """An image encoder by registry name; kwargs go to its constructor (embedding_dim, width_multiplier, ...)."""
    return _build(IMAGE_ENCODERS, "image", name, kwargs)


def build_audio_encoder(name: str, **kwargs):
    """An audio encoder by registry name; kwargs go to its constructor (embedding_dim, width_multiplier, ...)."""
    return _build(AUDIO_ENCODERS, "audio", name, kwargs)


def count_flops(layer, input_shape: Sequence[int]) -> Dict[str, int]:
    """Multiply-accumulates of `layer` on one input of `input_shape` (batch dim included, e.g. [1, 224, 224, 3]).

    Traces `layer(x, training=False)` into a graph and sums Conv2D (Keras Conv1D lowers to it), MatMul and
    BatchMatMul costs from the static shapes; BatchNorm, ReLU, pooling and adds are ignored (a few percent).
    Returns {"forward_macs", "forward_flops" (= 2 MACs), "train_flops" (~ 3 x forward: forward + backward)}.
    """
    import tensorflow as tf

    spec = tf.TensorSpec([int(d) for d in input_shape], tf.float32)
    graph = tf.function(lambda x: layer(x, training=False)).get_concrete_function(spec).graph
    macs = 0
    for op in graph.get_operations():
        if op.type in ("Conv2D", "Conv3D"):
            out = op.outputs[0].shape.as_list()
            kernel = op.inputs[1].shape.as_list()
            macs += _prod(out) * _prod(kernel[:-1])
        elif op.type == "MatMul":
            a, b = op.inputs[0].shape.as_list(), op.inputs[1].shape.as_list()
            k = a[0] if op.get_attr("transpose_a") else a[1]
            macs += _prod(op.outputs[0].shape.as_list()) * k
        elif op.type in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
            a = op.inputs[0].shape.as_list()
            k = a[-2] if op.get_attr("adj_x") else a[-1]
            macs += _prod(op.outputs[0].shape.as_list()) * k
    return {"forward_macs": int(macs), "forward_flops": int(2 * macs), "train_flops": int(6 * macs)}


def _prod(values):
    result = 1
    for v in values:
        if v is None:
            raise ValueError(f"count_flops needs fully static shapes. Received a tensor of shape {values}")
        result *= int(v)
    return result
