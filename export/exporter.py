"""Exports a workdir's trained models as TF Serving SavedModels (what `python -m export` runs).

    <output_dir>/audio_visual/<N>/   the dual encoder of one stage (+ an image index for `retrieve`)
    <output_dir>/generator/<N>/      the GAN, when <workdir>/gan/generator.keras exists
    <output_dir>/models.config       TF Serving model_config_list for both

Each version directory also has `assets.extra/export_info.json` (stage, config, signatures with shapes, limits, index)
and `assets.extra/config.json` (the training config). TF Serving ignores both.
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable, Dict, Optional

import tensorflow as tf

from tfvgs import config as config_lib, workdir as layout

from export import serving_config

# Later stages refine earlier ones (paper 000 sec. 6.3): the default export is the most refined stage trained.
STAGE_PREFERENCE = ("hn_targeted_edits", "targeted_edits", "hn_random_edits", "random_edits", "exact_edits",
                    "hard_negatives", "davenet")
INFO_FILENAME = "export_info.json"


def default_stage(workdir: str) -> str:
    """The most refined stage of STAGE_PREFERENCE that has a final `model.keras` in `workdir`."""
    for stage in STAGE_PREFERENCE:
        if tf.io.gfile.exists(layout.model_path(workdir, stage)):
            return stage
    raise FileNotFoundError(f"No trained audio-visual model in workdir {workdir!r}: none of "
                            f"{[f'{s}/model.keras' for s in STAGE_PREFERENCE]} exists. Train one first "
                            f"(python -m tfvgs.train --stage davenet ...).")


def save_servable(servable, output_dir: str, name: str, version: int, info: Dict,
                  config: Optional[config_lib.Config] = None) -> str:
    """Saves `servable` (with its `signatures()`) as `<output_dir>/<name>/<version>`, written under a temporary name
    and renamed when complete. Returns the version directory."""
    final = serving_config.check_version_free(output_dir, name, version)
    temporary = os.path.join(output_dir, name, f".tmp-{version}-{os.getpid()}")
    if tf.io.gfile.exists(temporary):
        tf.io.gfile.rmtree(temporary)
    tf.saved_model.save(servable, temporary, signatures=servable.signatures())
    extra = os.path.join(temporary, "assets.extra")
    tf.io.gfile.makedirs(extra)
    with tf.io.gfile.GFile(os.path.join(extra, INFO_FILENAME), "w") as f:
        f.write(json.dumps({**info, **servable.describe(), "servable": name, "version": int(version)},
                           indent=2, sort_keys=True) + "\n")
    if config is not None:
        config.save(os.path.join(extra, "config.json"))
    tf.io.gfile.rename(temporary, final)
    return final


def export_all(workdir: str, output_dir: str, stage: Optional[str] = None,
               fallback_config: Optional[config_lib.Config] = None, index_data_dir: Optional[str] = None,
               index_split: str = "test", index_limit: Optional[int] = None, similarity: Optional[str] = None,
               top_k: int = 10, shortlist: int = 0, index_dtype: str = "float32", version: Optional[int] = None,
               base_path: str = "/models",
               export_generator: bool = True, allow_partial_generator: bool = False,
               log: Callable[[str], None] = print) -> Dict[str, str]:
    """Exports the servables of `workdir`; returns {servable name: version directory, "models.config": path}.

    Args:
        workdir: the training workdir (stages in `<workdir>/<stage>/model.keras`, the GAN in `<workdir>/gan/`).
        output_dir: the TF Serving model root to write into.
        stage: the audio-visual stage to export; default `default_stage(workdir)`.
        fallback_config: config used when the stage has no `config.json` (default: the tiny preset).
        index_data_dir: pair or scene records whose `index_split` images become `retrieve`'s index (none: no
            `retrieve` signature).
        index_limit: index at most this many images.
        similarity: `retrieve`'s score; default the config's `model.eval_similarity`.
        top_k: images returned per `retrieve` query.
        shortlist: re-rank only each query's `shortlist` best images by the pooled score (0: rank all with
            `similarity`; see `export.audio_visual`).
        index_dtype: "float32", or "float16" to halve the index's memory.
        version: version number of this export; default one more than any existing version.
        base_path: where `output_dir` is mounted in the server (for `models.config`).
        export_generator: export `<workdir>/gan/generator.keras` when it exists.
        allow_partial_generator: export a generator that did not finish growing (debugging only).
    """
    from tfvgs import gan_io

    from export.audio_visual import AudioVisualServable
    from export.image_index import build_image_index

    start = time.perf_counter()
    if stage is None:
        stage = default_stage(workdir)
        log(f"[export] stage {stage!r} (the most refined trained stage in {workdir}; choose with --stage)")
    else:
        log(f"[export] stage {stage!r}")
    fallback = fallback_config or config_lib.get_config("tiny")
    config = layout.step_config(workdir, stage, fallback)
    if config is fallback:
        log(f"[export] note: no {layout.config_path(workdir, stage)}; using the {fallback.name!r} config")
    model = layout.load_step_model(workdir, stage)
    similarity = similarity or config.model.eval_similarity

    if shortlist and not index_data_dir:
        raise ValueError(f"--shortlist re-ranks the retrieve index; pass --index_data_dir too. Received: "
                         f"--shortlist {shortlist}, --index_data_dir None")
    version = int(version) if version is not None else serving_config.next_version(output_dir)
    for name in serving_config.SERVABLES:
        serving_config.check_version_free(output_dir, name, version)

    servable = AudioVisualServable(model, config, similarity=similarity, top_k=top_k)
    index = None
    if index_data_dir:
        log(f"[export] embedding the {index_split!r} images of {index_data_dir} for the retrieve index ...")
        last_report = [0.0]

        def progress(done, total):
            if done == total or time.perf_counter() - last_report[0] > 10:
                last_report[0] = time.perf_counter()
                log(f"[export]   {done}/{total} images")

        index = build_image_index(index_data_dir, index_split, servable.image_features, servable.image_size,
                                  similarity, limit=index_limit, progress=progress, dtype=index_dtype)
        servable = AudioVisualServable(model, config, index=index, similarity=similarity, top_k=top_k,
                                       shortlist=shortlist)
    else:
        log("[export] no --index_data_dir: the audio_visual servable has no `retrieve` signature")

    written = {}
    info = {"stage": stage, "workdir": os.path.abspath(workdir), "config": config.name,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "tensorflow": tf.__version__}
    written["audio_visual"] = save_servable(servable, output_dir, "audio_visual", version, info, config)
    signatures = sorted(servable.describe()["signatures"])
    log(f"[export] audio_visual v{version}: {', '.join(signatures)}"
        + (f" (index: {len(index.ids)} images, {similarity}"
           + (f" of a pooled shortlist of {servable.shortlist}" if servable.shortlist else "") + ")"
           if index is not None else "")
        + f" -> {written['audio_visual']}")

    if export_generator and tf.io.gfile.exists(gan_io.generator_path(workdir)):
        from export.generator import GeneratorServable
        try:
            generator = gan_io.load_generator(workdir, allow_partial=allow_partial_generator)
        except ValueError as e:
            log(f"[export] generator not exported: {e}")
        else:
            gen_info = {"workdir": os.path.abspath(workdir), "gan_info": gan_io.read_info(workdir),
                        "exported_at": info["exported_at"], "tensorflow": tf.__version__}
            written["generator"] = save_servable(GeneratorServable(generator), output_dir, "generator", version,
                                                 gen_info)
            log(f"[export] generator v{version}: generate, generate_ablated -> {written['generator']}")
    elif export_generator:
        log(f"[export] no {gan_io.generator_path(workdir)}: no generator servable")

    written["models.config"] = serving_config.write_models_config(output_dir, base_path)
    log(f"[export] TF Serving config -> {written['models.config']} ({time.perf_counter() - start:.1f} s)")
    log("[export] serve with:\n  " + serving_config.docker_command(output_dir, base_path))
    log(f"  curl -d '{{\"signature_name\": \"embed_audio_waveform\", \"inputs\": {{\"waveform\": [[...]], "
        f"\"num_samples\": [N]}}}}' localhost:{serving_config.REST_PORT}/v1/models/audio_visual:predict")
    return written
