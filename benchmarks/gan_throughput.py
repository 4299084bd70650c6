"""Progressive GAN training throughput on this machine: real images per second through `ProgressiveGAN.train_step`.

Each measurement builds G and D for `--max_resolution` (default: each measured resolution), trains at the level of
the measured resolution (alpha = 1; a fade-in costs one extra 1x1 conv and pooling) on random reals, discards
warm-up steps (tracing, XLA compilation) and prints one JSON line per (resolution, jit) combination. Images/s
counts real images shown to the critic, as `images_shown` does. The machine is shared: note the load average.

Work per image is a lower bound counted from the networks' forward multiply-accumulates (`tfvgs.models.count_flops`
of G at the level and of D): one WGAN-GP step with n_critic 1 runs at least 4 G + 14 D forward-equivalents per real
image, a backward pass counted as 2 forwards (critic step: G forward; D forward on reals, fakes and interpolates
(3), backward through the first two (4), the gradient penalty's input gradient (2) and its double backward (>= 2);
generator step: G forward and backward (3), D forward and its input gradient (3)). With `--loss logistic_r1` the
critic step is G forward, D forward on reals and fakes (2) and their backward (4), plus on one step in `--r1_every`
the R1 term: D forward on reals (1), its input gradient (2) and the double backward (>= 2). `--peak_gflops P` adds
the achieved fraction of P.

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/gan_throughput.py --resolutions 32 64   # proposed cpu preset sizes
    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/gan_throughput.py --resolutions 8 16 --max_resolution 64 --jit both
    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/gan_throughput.py --resolutions 32 --fmap_base 256 --fmap_max 64 \
        --batch 16 --loss logistic_r1 --r1_every 4          # the cpu preset's 32 px phase under the other loss
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvgs.gan import GrowthSchedule, ProgressiveDiscriminator, ProgressiveGAN, ProgressiveGenerator  # noqa: E402
from tfvgs.models import count_flops  # noqa: E402


def step_gflop_per_image(generator, discriminator, resolution: int, n_critic: int, loss: str = "wgan_gp",
                         r1_every: int = 1) -> dict:
    """Forward GFLOP of G (full size) and D per image, and the step's lower bound for `loss` (module docstring).
    Counted for networks built at the measured resolution (--max_resolution unset)."""
    g = count_flops(generator, [1, generator.latent_dim])["forward_flops"] / 1e9
    d = count_flops(discriminator, [1, resolution, resolution, 3])["forward_flops"] / 1e9
    critic_d = 11 * d if loss == "wgan_gp" else 6 * d + 5 * d / r1_every
    per_image = n_critic * (g + critic_d) + 3 * g + 3 * d
    return {"g_forward_gflop": round(g, 4), "d_forward_gflop": round(d, 4),
            "train_gflop_per_image_lower_bound": round(per_image, 4)}


def measure(resolution: int, args, jit: bool) -> dict:
    max_resolution = args.max_resolution or resolution
    generator = ProgressiveGenerator(latent_dim=args.latent_dim, max_resolution=max_resolution,
                                     fmap_base=args.fmap_base, fmap_max=args.fmap_max)
    discriminator = ProgressiveDiscriminator(max_resolution=max_resolution,
                                             fmap_base=args.discriminator_fmap_base or args.fmap_base,
                                             fmap_max=args.fmap_max)
    # Starting at the measured resolution: the first phase (600 kimg) trains exactly that level with alpha = 1.
    schedule = GrowthSchedule(max_resolution, base_resolution=resolution, minibatch_base=args.batch)
    gan = ProgressiveGAN(generator, discriminator, schedule, n_critic=args.n_critic, loss=args.loss,
                         r1_every=args.r1_every, seed=0)
    gan.compile(jit_compile=jit)
    gan.sync_phase()
    reals = np.random.default_rng(0).uniform(-1, 1, (args.batch * 4, resolution, resolution, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices(reals).repeat().batch(args.batch, drop_remainder=True).prefetch(2)
    start = time.perf_counter()
    gan.fit(data, steps_per_epoch=args.warmup, epochs=1, verbose=0)
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    gan.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    work = step_gflop_per_image(generator, discriminator, resolution, args.n_critic, args.loss, args.r1_every) \
        if max_resolution == resolution else {}
    rate = args.steps * args.batch / seconds
    if work:
        work["achieved_gflop_s_lower_bound"] = round(rate * work["train_gflop_per_image_lower_bound"], 1)
        if args.peak_gflops:
            work["fraction_of_peak_lower_bound"] = round(work["achieved_gflop_s_lower_bound"] / args.peak_gflops, 3)
    return {"benchmark": "gan_train_step", "resolution": resolution, "max_resolution": max_resolution,
            "jit_compile": jit, "batch": args.batch,
            "n_critic": args.n_critic, "loss": args.loss, "r1_every": args.r1_every, "latent_dim": args.latent_dim,
            "fmap_base": args.fmap_base, "discriminator_fmap_base": args.discriminator_fmap_base or args.fmap_base,
            "fmap_max": args.fmap_max, "h4_channels": generator.h4_channels,
            "g_params": generator.count_params() - 1, "d_params": discriminator.count_params() - 1,
            "steps": args.steps, "seconds": round(seconds, 3), "warmup_seconds": round(warmup_seconds, 2),
            "images_per_second": round(rate, 1), **work, "load_avg_1min": round(os.getloadavg()[0], 2),
            "threads": tf.config.threading.get_intra_op_parallelism_threads()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--max_resolution", type=int, default=None,
                        help="build the networks for this size and train at lower levels (default: each resolution)")
    parser.add_argument("--latent_dim", type=int, default=100)
    parser.add_argument("--fmap_base", type=int, default=512)
    parser.add_argument("--discriminator_fmap_base", type=int, default=0, help="the critic's (0: --fmap_base)")
    parser.add_argument("--fmap_max", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--n_critic", type=int, default=1)
    parser.add_argument("--loss", choices=ProgressiveGAN.LOSSES, default="wgan_gp")
    parser.add_argument("--r1_every", type=int, default=1, help="lazy R1 interval (logistic_r1)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--jit", choices=["on", "off", "both"], default="off")
    parser.add_argument("--peak_gflops", type=float, default=0.0,
                        help="measured matmul peak (../shared/tools/matmul_peak.py) for the fraction of peak")
    args = parser.parse_args(argv)
    jits = {"on": [True], "off": [False], "both": [False, True]}[args.jit]
    for resolution in args.resolutions:
        for jit in jits:
            print(json.dumps(measure(resolution, args, jit)), flush=True)


if __name__ == "__main__":
    main()
