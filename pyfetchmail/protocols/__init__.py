"""Mail sources: POP3 (sans-I/O core + driver) and IMAP (imapclient adapter)."""

__all__: list[str] = []
