"""Local delivery sinks: SMTP/LMTP forwarding, MDA pipe, BSMTP file."""

__all__: list[str] = []
