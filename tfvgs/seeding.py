"""Stable seeds derived from names and indices, so every scene, caption and voice is reproducible on any worker.

Python's built-in hash() is salted per process; Beam workers on Dataflow would disagree. A SHA-256 of the parts does not.
"""
import hashlib


def stable_seed(*parts) -> int:
    """A 63-bit seed from any printable parts, e.g. stable_seed(config.seed, "scene", index)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1
