"""The seam between the fetch engine and a mail source (POP3 or IMAP).

The fetch engine (:mod:`pyfetchmail.fetch`) drives any :class:`MailSource`;
it decides *what* to fetch and delete (:mod:`pyfetchmail.policy`), the source
only executes.

Invariants every implementation keeps:
- :meth:`MailSession.delete` returns only after the server confirmed the
  deletion mark (POP3 ``+OK`` to DELE, IMAP OK to STORE); it raises otherwise.
  The deletion is *durable* only after :meth:`MailSession.expunge` (IMAP
  EXPUNGE) or :meth:`MailSession.close` with ``commit=True`` (POP3 QUIT).
- :meth:`MailSession.retrieve` may pipeline or batch requests, but yields
  messages in the order of *refs*, each fully received and spooled.
- Nothing is deleted or marked by a source on its own initiative.
- Secrets are never logged or put into exception texts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from pyfetchmail.message import SpooledMessage

__all__ = ["FolderListing", "MailSession", "MailSource", "MessageRef"]


@dataclass(frozen=True, slots=True)
class MessageRef:
    """One message as listed by the server.

    *number* is the POP3 message number or the IMAP sequence number at listing
    time; *uid* the POP3 UIDL or the IMAP UID (as a string); *seen* the IMAP
    ``\\Seen`` flag (``None`` for POP3, which has no flags).
    """

    number: int
    uid: str | None
    size: int | None
    seen: bool | None = None
    folder: str | None = None
    uidvalidity: int | None = None


@dataclass(frozen=True, slots=True)
class FolderListing:
    """What :meth:`MailSession.select` found in one folder (POP3: the maildrop)."""

    folder: str | None
    count: int
    total_octets: int | None
    messages: tuple[MessageRef, ...]
    uidvalidity: int | None = None


class MailSession(Protocol):
    """An authenticated connection to one account."""

    @property
    def protocol_name(self) -> str:
        """``"POP3"`` or ``"IMAP"``, as written in the Received header."""
        ...

    @property
    def peer_address(self) -> str | None:
        """Numeric address of the server (``None`` if unknown, e.g. via a plugin)."""
        ...

    def select(self, folder: str | None) -> FolderListing:
        """Open *folder* (``None`` = the default: INBOX / the POP3 maildrop) and list it."""
        ...

    def retrieve(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, SpooledMessage]]:
        """Fetch the messages *refs*, in order, possibly pipelined or batched.

        A per-message server error (POP3 ``-ERR`` to RETR, IMAP ``NO``) is raised
        as :class:`pyfetchmail.errors.ServerError` *after* yielding the
        messages before it; the caller treats it as transient for that message.
        """
        ...

    def mark_seen(self, ref: MessageRef) -> None:
        """Mark *ref* as read on the server (IMAP ``\\Seen``; no-op for POP3)."""
        ...

    def delete(self, ref: MessageRef) -> None:
        """Mark *ref* deleted; returns only after the server confirmed it."""
        ...

    def expunge(self) -> None:
        """Make confirmed deletions durable now where the protocol allows it."""
        ...

    def close(self, commit: bool = True) -> None:
        """Log out.  ``commit=False`` drops the connection without QUIT/EXPUNGE."""
        ...


class MailSource(Protocol):
    """Factory for sessions: connects, upgrades to TLS and authenticates."""

    def open(self) -> MailSession:
        """Connect and authenticate; raise SocketError/AuthError/... on failure."""
        ...
