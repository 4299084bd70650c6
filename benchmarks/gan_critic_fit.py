"""Does the GAN's critic overfit its training scenes? Critic scores of train reals, held-out val reals and generated
images at the latest checkpoint of a `gan` workdir (its saved config rebuilds the networks).

A critic that memorised the training set scores train reals above val reals (StyleGAN2-ADA's overfitting sign,
r_t = E[sign D(train reals)]); one that generalises scores both alike, and then more scenes or augmentation are not
the lever. Prints one JSON line per image set: mean and sd of the score, the fraction scored "real" (> 0), and r_t.

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/gan_critic_fit.py --workdir G --data_dir SCENES [--images 2000]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="a workdir whose gan/ holds checkpoints and config.json")
    parser.add_argument("--data_dir", required=True, help="the scenes the GAN trained on (train and val splits)")
    parser.add_argument("--images", type=int, default=2000, help="images per set")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from tfvgs.stages.gan import GanStage
    from tfvgs.workdir import saved_config
    saved = saved_config(args.workdir)
    if saved is None:
        raise SystemExit(f"--workdir {args.workdir!r} holds no saved config: train a `gan` stage there first")
    config = saved[0]
    stage = GanStage(config, args.workdir, args.data_dir)
    gan, manager, _ = stage.restore()
    if manager.latest_checkpoint is None:
        raise SystemExit(f"--workdir {args.workdir!r} holds no gan checkpoint")
    phase = gan.sync_phase()

    def scores(images):
        return np.concatenate([np.asarray(gan.discriminator(gan.prepare_reals(images[i:i + args.batch], phase.level,
                                                                              phase.alpha), training=False)).ravel()
                               for i in range(0, len(images), args.batch)])

    z = keras.random.normal((args.images, config.gan.latent_dim), seed=1)
    sets = {"train_reals": stage.images("train", args.images), "val_reals": stage.images("val", args.images),
            "fakes_ema": np.concatenate([np.asarray(gan.sampling_generator(z[i:i + args.batch], training=False))
                                         for i in range(0, args.images, args.batch)])}
    lines = []
    for name, images in sets.items():
        s = scores(images)
        lines.append({"benchmark": "gan_critic_fit", "workdir": args.workdir, "set": name, "images": len(s),
                      "images_shown": int(gan.images_shown.numpy()), "resolution": phase.resolution,
                      "alpha": round(float(phase.alpha), 3), "score_mean": round(float(s.mean()), 4),
                      "score_sd": round(float(s.std()), 4), "fraction_real": round(float(np.mean(s > 0)), 4),
                      "r_t": round(float(np.mean(np.sign(s))), 4)})
        print(json.dumps(lines[-1]), flush=True)
    return lines


if __name__ == "__main__":
    main()
