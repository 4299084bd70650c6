"""What every command line of the project shares: its usage line and description.

Commands are run as `python -m <module>`, so their usage says so (argparse would print the file name, `train.py`),
and `--help` shows the docstring's first paragraph, a whole sentence, not its first line.
"""
from __future__ import annotations

import argparse


def first_paragraph(doc: str) -> str:
    """The text before the first blank line of `doc`, joined into one line."""
    lines = []
    for line in (doc or "").strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return " ".join(lines)


def command_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The argument parser of `python -m <module>`, described by the first paragraph of its docstring."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=first_paragraph(doc))
