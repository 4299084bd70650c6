"""Progressive GAN (Karras et al. 2018) that draws the scenes, with the h4 split that paper 000 sec. 4.1 edits.

  EqualizedDense, EqualizedConv2D   equalized learning rate (N(0, 1) weights, He scale at run time)
  PixelNorm, MinibatchStddev        PGGAN's normalisation and variation layers
  ProgressiveGenerator              z -> image at any level; features(z) -> h4, render(h4), generate(z, ablation),
                                    render_ablated(h4, ablation)
  ProgressiveDiscriminator          image -> WGAN critic score at any level
  GrowthSchedule, GrowthPhase       images shown -> (level, alpha, minibatch size)
  ProgressiveGAN                    WGAN-GP + drift train_step, optimizers, generator EMA, images_shown
"""
from tfvgs.gan.equalized_conv2d import EqualizedConv2D
from tfvgs.gan.equalized_dense import EqualizedDense
from tfvgs.gan.growth_schedule import GrowthPhase, GrowthSchedule
from tfvgs.gan.minibatch_stddev import MinibatchStddev
from tfvgs.gan.pixel_norm import PixelNorm
from tfvgs.gan.progressive_discriminator import ProgressiveDiscriminator
from tfvgs.gan.progressive_gan import ProgressiveGAN, pggan_adam
from tfvgs.gan.progressive_generator import ProgressiveGenerator

__all__ = ["EqualizedConv2D", "EqualizedDense", "GrowthPhase", "GrowthSchedule", "MinibatchStddev", "PixelNorm",
           "ProgressiveDiscriminator", "ProgressiveGAN", "ProgressiveGenerator", "pggan_adam"]
