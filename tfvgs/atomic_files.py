"""Files written under a temporary name and renamed when complete: a kill mid-write never leaves a broken file
where a resumed run, the next stage or `--stage all` would take it for finished work. Local paths and gs:// alike."""
from __future__ import annotations

import tensorflow as tf


def write_text(path: str, text: str) -> None:
    with tf.io.gfile.GFile(path + ".partial", "w") as f:
        f.write(text)
    tf.io.gfile.rename(path + ".partial", path, overwrite=True)


def save_keras(model, path: str) -> None:
    """`model.save(path)` for a `.keras` path (Keras wants the suffix, so the temporary name keeps it)."""
    partial = path[:-len(".keras")] + ".partial.keras"
    model.save(partial)
    tf.io.gfile.rename(partial, path, overwrite=True)
