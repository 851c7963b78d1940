"""Credentials: rc, .netrc, keyring, prompt."""

__all__: list[str] = []
