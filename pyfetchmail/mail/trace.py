"""Where a message came from: the facts that go into our Received header.

The engine fills a :class:`TraceInfo` for every message it retrieves;
:func:`pyfetchmail.mail.headers.received_header` and
:func:`pyfetchmail.mail.prepare.prepare_message` read it.  Plain data, no
behaviour: it sits below both so that neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["TraceInfo"]


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """Facts about the retrieval that go into the Received header and defaults."""

    server_truename: str
    server_address: str | None
    protocol_name: str  # "POP3" (also APOP/RPOP/SDPS/KPOP), "IMAP", "ODMR"
    fetchmailhost: str
    pollname: str
    remote: str
    folder: str | None
    folder_explicit: bool
    date: datetime | None = None  # None = now, local time
    invoking_user: str | None = None  # who runs us: the To: of a synthesised header
