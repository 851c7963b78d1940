"""Persistent state: the UID store (``.fetchids``, sidecar, journal) and atomic file writes."""

__all__: list[str] = []
