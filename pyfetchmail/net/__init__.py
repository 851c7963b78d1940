"""Networking: connections, timeouts, TLS contexts."""

__all__: list[str] = []
