"""tfvgs: learning spoken words for abstract visual attributes by drawing images.

Data flows scenes -> TFRecords -> training stages -> SavedModels:
  tfvgs.world      CLEVR-style scene sampler, renderer and edits (the built-in world)
  tfvgs.speech     caption text, voices and espeak-ng speech
  tfvgs.features   the one log-mel definition (Beam, tf.data and serving share it)
  tfvgs.schema     the one TFRecord schema; tfvgs.data the tf.data readers
  tfvgs.config     presets as code: tiny, cpu, paper
"""
__version__ = "0.1.0"
