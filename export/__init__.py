"""SavedModels for TF Serving: `python -m export --workdir W --output_dir E` (see export/README.md).

  AudioVisualServable   the dual encoder: embed_audio(_waveform), embed_image(_bytes), match, retrieve
  GeneratorServable     the GAN: generate, generate_ablated
  ImageIndex, build_image_index   the pre-computed image features that `retrieve` ranks
  export_all            what the command runs; `export.serving_config`: version dirs, models.config, docker command

Names are imported on first use, so `python -m export` can quiet TensorFlow's logging before TensorFlow loads.
"""
import importlib

_EXPORTS = {
    "AudioVisualServable": "export.audio_visual", "ImageIndex": "export.audio_visual",
    "audio_limits": "export.audio_visual", "GeneratorServable": "export.generator",
    "build_image_index": "export.image_index", "STAGE_PREFERENCE": "export.exporter",
    "default_stage": "export.exporter", "export_all": "export.exporter", "save_servable": "export.exporter",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'export' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
