"""Matplotlib without a display, and figures saved through tf.io.gfile (so reports can go to gs:// too)."""
from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display on servers and CI)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str) -> None:
    """Writes `fig` as a PNG to a local or gfile path."""
    import io

    import tensorflow as tf
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())
