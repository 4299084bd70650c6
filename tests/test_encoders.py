"""Encoder shapes, valid-frame counts, the DAVEnet forward pass against a NumPy re-implementation, serialisation."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvgs.models import build_audio_encoder, build_image_encoder, count_flops

D = 16
IMAGE_CASES = [  # name, kwargs, input size, output size
    ("small", {"width_multiplier": 0.25}, 32, 4),
    ("small", {"width_multiplier": 0.25}, 64, 8),
    ("vgg16", {"width_multiplier": 0.0625}, 32, 2),
    ("resnet50", {"width_multiplier": 0.0625}, 64, 2),
]
AUDIO_NAMES = ["davenet", "davenet_large", "res_davenet"]


@pytest.mark.parametrize("name,kwargs,size,out", IMAGE_CASES)
def test_image_encoder_output_shape(name, kwargs, size, out):
    encoder = build_image_encoder(name, embedding_dim=D, **kwargs)
    feats = encoder(tf.random.uniform([2, size, size, 3], -1, 1), training=True)
    assert feats.shape == (2, out, out, D)
    assert tuple(encoder.compute_output_shape((2, size, size, 3))) == (2, out, out, D)
    assert np.all(np.isfinite(feats.numpy()))


@pytest.mark.parametrize("name", AUDIO_NAMES)
@pytest.mark.parametrize("frames", [64, 70])
def test_audio_encoder_output_shape_and_frames(name, frames):
    encoder = build_audio_encoder(name, embedding_dim=D, width_multiplier=0.125)
    feats = encoder(tf.random.normal([2, frames, 40]), training=True)
    expected = -(-frames // 16)
    assert feats.shape == (2, expected, D)
    assert tuple(encoder.compute_output_shape((2, frames, 40))) == (2, expected, D)
    # floor(n / 16) valid frames as DAVEnet-pytorch's nframes // 16 (a frame counts when its whole cell is inside
    # the caption), at least 1; a 40-frame (0.4 s) word gets 2 frames, not a third one mostly over padding.
    counts = encoder.output_frames(tf.constant([frames, 40, 33, 32, 31, 17, 16, 15, 1, 0])).numpy()
    np.testing.assert_array_equal(counts, [frames // 16, 2, 2, 2, 1, 1, 1, 1, 1, 1])
    assert counts[0] <= feats.shape[1]


def test_large_davenet_adds_three_convs_without_changing_the_frame_rate():
    base = build_audio_encoder("davenet", embedding_dim=D, width_multiplier=0.125)
    large = build_audio_encoder("davenet_large", embedding_dim=D, width_multiplier=0.125)
    x = tf.random.normal([1, 64, 40])
    assert base(x).shape == large(x).shape
    assert len(large.trainable_weights) - len(base.trainable_weights) == 6   # 3 x (kernel, bias)
    assert [w.shape for w in large.extra_convs[0].trainable_weights] == [(17, D, D), (D,)]


def test_width_multiplier_scales_hidden_channels_not_the_embedding():
    half = build_audio_encoder("davenet", embedding_dim=D, width_multiplier=0.5)
    half(tf.zeros([1, 32, 40]))
    assert [conv.kernel.shape[-1] for conv in half.convs] == [64, 128, 256, 256, D]
    small = build_image_encoder("small", embedding_dim=D, width_multiplier=0.5)
    small(tf.zeros([1, 32, 32, 3]))
    assert small.units[-1][0].kernel.shape[-1] == 128 and small.embedding.kernel.shape[-1] == D


def _np_conv1d_same(x, kernel, bias):
    """x [T, Cin], kernel [k, Cin, Cout]: zero padding (k-1)/2 on both sides, as nn.Conv2d(padding=(0, k//2))."""
    k = kernel.shape[0]
    padded = np.pad(x, [((k - 1) // 2, (k - 1) // 2), (0, 0)])
    out = np.stack([np.einsum("kc,kco->o", padded[t:t + k], kernel) for t in range(x.shape[0])])
    return out + bias


def _np_maxpool(x):
    """nn.MaxPool2d(kernel (1,3), stride (1,2), padding (0,1)): -inf padding of one frame on both sides."""
    padded = np.pad(x, [(1, 1), (0, 0)], constant_values=-np.inf)
    return np.stack([padded[2 * i:2 * i + 3].max(axis=0) for i in range((x.shape[0] + 1) // 2)])


def test_davenet_matches_reference_layer_arithmetic():
    """Conv/pool alignment of the reference PyTorch Davenet, re-implemented in float64 NumPy (inference mode)."""
    rng = np.random.default_rng(0)
    encoder = build_audio_encoder("davenet", embedding_dim=8, width_multiplier=0.0625)
    x = rng.normal(size=(2, 37, 40)).astype("float32") * 3 + 1
    encoder(x)
    bn = encoder.input_norm
    bn.moving_mean.assign([0.7])
    bn.moving_variance.assign([2.5])
    bn.gamma.assign([1.3])
    bn.beta.assign([-0.2])
    got = encoder(x, training=False).numpy()

    for b in range(2):
        h = (x[b].astype(np.float64) - 0.7) / np.sqrt(2.5 + 1e-5) * 1.3 - 0.2
        convs = [(c.kernel.numpy().astype(np.float64), c.bias.numpy().astype(np.float64)) for c in encoder.convs]
        h = np.maximum(_np_conv1d_same(h, *convs[0]), 0)
        for kernel, bias in convs[1:]:
            h = _np_maxpool(np.maximum(_np_conv1d_same(h, kernel, bias), 0))
        np.testing.assert_allclose(got[b], h, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,kwargs,shape", [
    ("image", ("small", {"width_multiplier": 0.25}), (2, 32, 32, 3)),
    ("image", ("vgg16", {"width_multiplier": 0.0625}), (2, 32, 32, 3)),
    ("image", ("resnet50", {"width_multiplier": 0.0625}), (2, 32, 32, 3)),
    ("audio", ("davenet", {"width_multiplier": 0.125}), (2, 64, 40)),
    ("audio", ("davenet_large", {"width_multiplier": 0.125}), (2, 64, 40)),
    ("audio", ("res_davenet", {"width_multiplier": 0.125, "blocks_per_stage": 1}), (2, 64, 40)),
])
def test_serialization_round_trip_gives_same_outputs(name, kwargs, shape):
    build = build_image_encoder if name == "image" else build_audio_encoder
    encoder = build(kwargs[0], embedding_dim=D, **kwargs[1])
    x = tf.random.normal(shape)
    encoder(x, training=True)                       # moves BatchNorm statistics away from their initial values
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(encoder))
    assert type(restored) is type(encoder) and restored.get_config() == encoder.get_config()
    restored(x)
    restored.set_weights(encoder.get_weights())
    np.testing.assert_allclose(restored(x, training=False).numpy(), encoder(x, training=False).numpy(),
                               rtol=1e-6, atol=1e-6)


def test_unknown_names_and_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="Unknown image encoder 'alexnet'"):
        build_image_encoder("alexnet")
    with pytest.raises(ValueError, match="Unknown audio encoder"):
        build_audio_encoder("wav2vec")
    with pytest.raises(ValueError, match="width_multiplier"):
        build_audio_encoder("davenet", width_multiplier=0)
    with pytest.raises(ValueError, match=r"\[B, T, 40\]"):
        build_audio_encoder("davenet", embedding_dim=D)(tf.zeros([1, 64, 13]))
    with pytest.raises(ValueError, match=r"images \[B, H, W, 3\]"):
        build_image_encoder("small", embedding_dim=D)(tf.zeros([1, 32, 32]))


def test_count_flops_matches_conv_arithmetic():
    encoder = build_audio_encoder("davenet", embedding_dim=D, width_multiplier=0.125)
    frames = 64
    widths = [16, 32, 64, 64, D]
    kernels = [1, 11, 17, 17, 17]
    lengths = [frames, frames, frames // 2, frames // 4, frames // 8]   # conv k runs before pool k-1 halves time
    cin = [40] + widths[:-1]
    want = sum(t * k * c * w for t, k, c, w in zip(lengths, kernels, cin, widths))
    got = count_flops(encoder, [1, frames, 40])
    assert got["forward_macs"] == want
    assert got["train_flops"] == 6 * want
