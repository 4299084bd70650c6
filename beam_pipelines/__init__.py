"""Beam pipelines that write the project's TFRecords (scenes, Audio CLEVRGAN pairs, test sets, imports)."""
from tfvgs import console

console.quiet_startup()     # every pipeline module imports Beam after this: no "apitools not found" notice
