"""Configuration: rc grammar, rc file loading, model, overrides, dumps."""

__all__: list[str] = []
