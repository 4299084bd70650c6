"""TF Serving layout: `<output_dir>/<servable>/<version>/` SavedModels, `models.config`, and the docker command.

TF Serving watches each servable's base path and serves the highest numbered version directory, so a version is
written under a temporary name first and renamed when complete: a server never loads half a SavedModel.
"""
from __future__ import annotations

import os
import re
from typing import Iterable, List, Optional

import tensorflow as tf

SERVABLES = ("audio_visual", "generator")
MODELS_CONFIG = "models.config"
REST_PORT, GRPC_PORT = 8501, 8500


def existing_versions(servable_dir: str) -> List[int]:
    """Numbered version directories of a servable (others, like unfinished temporary ones, are ignored)."""
    if not tf.io.gfile.isdir(servable_dir):
        return []
    return sorted(int(name.rstrip("/")) for name in tf.io.gfile.listdir(servable_dir)
                  if re.fullmatch(r"\d+", name.rstrip("/")))


def next_version(output_dir: str, servables: Iterable[str] = SERVABLES) -> int:
    """One more than the highest version of any servable (so one export has one number across servables)."""
    versions = [v for s in servables for v in existing_versions(os.path.join(output_dir, s))]
    return max(versions, default=0) + 1


def check_version_free(output_dir: str, servable: str, version: int) -> str:
    """The version directory to write, which must not exist: TF Serving treats a version as immutable."""
    if int(version) != version or version < 1:
        raise ValueError(f"`version` must be a positive integer. Received: version={version!r}")
    path = os.path.join(output_dir, servable, str(int(version)))
    if tf.io.gfile.exists(path):
        raise FileExistsError(f"{path} already exists; a served version must not change. Pick another --version "
                              f"(next free: {next_version(output_dir)}) or delete the directory.")
    return path


def models_config_text(servables: Iterable[str], base_path: str = "/models") -> str:
    """A TF Serving `model_config_list` text proto serving the latest version of each servable."""
    blocks = []
    for name in servables:
        blocks.append("  config {\n"
                      f"    name: \"{name}\"\n"
                      f"    base_path: \"{base_path.rstrip('/')}/{name}\"\n"
                      "    model_platform: \"tensorflow\"\n"
                      "  }")
    return "model_config_list {\n" + "\n".join(blocks) + "\n}\n"


def write_models_config(output_dir: str, base_path: str = "/models",
                        servables: Optional[Iterable[str]] = None) -> str:
    """Writes `<output_dir>/models.config` for the servables that have at least one version there."""
    if servables is None:
        servables = [s for s in SERVABLES if existing_versions(os.path.join(output_dir, s))]
    path = os.path.join(output_dir, MODELS_CONFIG)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(models_config_text(servables, base_path))
    return path


def docker_command(output_dir: str, base_path: str = "/models") -> str:
    """The command that serves `output_dir` with the official TF Serving image (REST on 8501, gRPC on 8500)."""
    return (f"docker run --rm -p {REST_PORT}:{REST_PORT} -p {GRPC_PORT}:{GRPC_PORT} "
            f"-v {os.path.abspath(output_dir)}:{base_path.rstrip('/')} tensorflow/serving "
            f"--model_config_file={base_path.rstrip('/')}/{MODELS_CONFIG}")
