"""Command-line entry point (placeholder until the CLI lands)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run pyfetchmail with *argv* (default ``sys.argv[1:]``); return the exit status."""
    return 0
