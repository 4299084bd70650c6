"""tfvgs: learning spoken words for abstract visual attributes by drawing images.

Data flows scenes -> TFRecords -> training stages -> SavedModels:
  tfvgs.world      CLEVR-style scene sampler, renderer and edits (the built-in world)
  tfvgs.speech     caption text, voices and espeak-ng speech
  tfvgs.features   the one log-mel definition (Beam, tf.data and serving share it)
  tfvgs.schema     the one TFRecord schema; tfvgs.data the tf.data readers
  tfvgs.config     presets as code: tiny, demo, cpu, paper
  tfvgs.stages     the training stages (one plug-in each); tfvgs.curriculum runs them in order
  tfvgs.evaluation recall, semantic and transfer accuracy, significance, GAN quality; `python -m tfvgs.evaluate`
"""
__version__ = "0.1.0"
