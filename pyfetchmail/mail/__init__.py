"""The message and what is computed from it: spooled bytes, headers, MIME decoding,
multidrop recipients, trace data and the pure preparation for delivery."""

__all__: list[str] = []
