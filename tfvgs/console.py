"""The one place where start-up noise that says nothing about the user's run is turned down.

Every command calls `quiet_startup()` before TensorFlow or Beam is imported:
- TF_CPP_MIN_LOG_LEVEL=2: TensorFlow's C++ info and warning lines (CPU feature notes, ...); errors still show.
- Beam's "apitools not found, and bigquery client libraries are not available": logged at import by Beam's BigQuery
  client when the optional GCP libraries (`apache-beam[gcp]`, not installable here) are absent. No pipeline of
  ours uses BigQuery; Dataflow users install `apache-beam[gcp]`, which removes the cause.
Nothing else is filtered: a warning of our own code or about the user's data must reach the console.
"""
from __future__ import annotations

import logging
import os

QUIET_MESSAGES = ("apitools not found, and bigquery client libraries are not available",)


class _DropKnownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not any(noise in message for noise in QUIET_MESSAGES)


_FILTER = _DropKnownNoise()


def quiet_startup() -> None:
    """Idempotent; safe to call from every entry point and from modules imported by several of them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = logging.getLogger()
    if _FILTER not in root.filters:
        root.addFilter(_FILTER)
