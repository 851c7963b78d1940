"""The seam between the fetch engine and a mail source (POP3 or IMAP).

The fetch engine (:mod:`pyfetchmail.engine.poll`) drives any :class:`MailSource`;
it decides *what* to fetch and delete (:mod:`pyfetchmail.engine.policy`), the source
only executes.

Invariants every implementation keeps:
- :meth:`MailSession.delete` sends the deletion mark and *may return before
  the server answered* (POP3 pipelines ``DELE`` behind in-flight ``RETR`` s).
  The answer is reported later, in command order, by
  :meth:`MailSession.deletion_replies`: a :class:`DeletionReply` with
  ``error=None`` is the server's confirmation (POP3 ``+OK`` to DELE, IMAP OK
  to STORE); one with an ``error`` is a refusal of that message only, never
  a session failure.  Nobody may treat a deletion as done (log "flushed",
  count it, forget its UID) before its confirming reply was reported.
  ``delete`` itself raises when the session is unusable (I/O, timeout,
  check-only mode).  A synchronous source (IMAP) reads the reply inside
  ``delete``, reports a confirmation at once and may raise
  :class:`~pyfetchmail.errors.ServerError` for a refusal instead.
- :meth:`MailSession.expunge` and ``close(commit=True)`` first read every
  outstanding deletion reply (still reported by the next
  :meth:`deletion_replies` call).  The deletion is *durable* only after
  :meth:`MailSession.expunge` (IMAP EXPUNGE) or :meth:`MailSession.close`
  with ``commit=True`` (POP3 QUIT, RFC 1939 §6: DELE only marks).
- :meth:`MailSession.retrieve` may pipeline or batch requests, but yields
  messages in the order of *refs*, each fully received and spooled.
- Nothing is deleted or marked by a source on its own initiative.
- Progress (optional): a session may have a writable attribute
  ``progress: ProgressHook | None`` (default ``None``).  When set,
  :meth:`MailSession.retrieve` calls it as a message's bytes arrive, with
  the ref, the bytes received so far and the announced size (``None`` if
  unknown): at least once per chunk read (POP3) or per batch / partial fetch
  (IMAP), in message order.  The hook must be cheap and must not raise; it
  is not part of :class:`MailSession`, so the engine sets it only when the
  session has the attribute (``hasattr``), and sessions or fakes without it
  keep working.
- Secrets are never logged or put into exception texts.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from pyfetchmail.mail.message import SpooledMessage

__all__ = [
    "DeletionReply",
    "FolderListing",
    "MailSession",
    "MailSource",
    "MessageRef",
    "ProgressHook",
    "SessionProtocol",
]


@dataclass(frozen=True, slots=True)
class MessageRef:
    """One message as listed by the server.

    *number* is the POP3 message number or the IMAP sequence number at listing
    time; *uid* the POP3 UIDL or the IMAP UID (as a string); *seen* the IMAP
    ``\\Seen`` flag.  POP3 has no flags: *seen* is ``None``, except when the
    server lacks UIDL but answers RFC 1725 ``LAST``; then it is true for the
    messages numbered up to that answer (old) and false for the others.
    """

    number: int
    uid: str | None
    size: int | None
    seen: bool | None = None
    folder: str | None = None
    uidvalidity: int | None = None


#: ``hook(ref, bytes_so_far, announced_size)``: see "Progress" in the module docstring.
ProgressHook: TypeAlias = Callable[[MessageRef, int, int | None], None]


@dataclass(frozen=True, slots=True)
class FolderListing:
    """What :meth:`MailSession.select` found in one folder (POP3: the maildrop)."""

    folder: str | None
    count: int
    total_octets: int | None
    messages: tuple[MessageRef, ...]
    uidvalidity: int | None = None


@dataclass(frozen=True, slots=True)
class DeletionReply:
    """The server's answer to the deletion mark of *ref*.

    *error* is ``None`` when the server confirmed it, else the server's text
    (e.g. ``"DELE 3 failed: -ERR no such message"``): that message stays on
    the server and the caller keeps it pending for the next poll.
    """

    ref: MessageRef
    error: str | None = None

    @property
    def confirmed(self) -> bool:
        """True when the server confirmed the deletion mark."""
        return self.error is None


class SessionProtocol(enum.StrEnum):
    """The protocol an open session speaks, as written in the Received header.

    APOP and RPOP are POP3 logins; ``proto auto`` opens one of the two.
    """

    POP3 = "POP3"
    IMAP = "IMAP"


class MailSession(Protocol):
    """An authenticated connection to one account."""

    @property
    def protocol_name(self) -> SessionProtocol:
        """``POP3`` or ``IMAP``, as written in the Received header."""
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
        """Send the deletion mark for *ref*; the reply may be read later.

        The outcome is reported by :meth:`deletion_replies`.  Raises when the
        session failed, or (synchronous sources only) for a refusal; then
        nothing is reported for *ref*.
        """
        ...

    def deletion_replies(self, *, wait: bool = False) -> list[DeletionReply]:
        """Replies to :meth:`delete` read since the last call, in command order.

        Never blocks unless *wait* is true; then every outstanding deletion
        reply is read first, so the result covers every :meth:`delete` so far.
        Example: ``[DeletionReply(ref1), DeletionReply(ref2, "DELE 2 failed: in use")]``.
        """
        ...

    def expunge(self) -> None:
        """Read outstanding deletion replies, then make confirmed deletions durable
        now where the protocol allows it (IMAP EXPUNGE; POP3: only at QUIT)."""
        ...

    def close(self, commit: bool = True) -> None:
        """Log out.  ``commit=False`` drops the connection without QUIT/EXPUNGE.

        ``commit=True`` reads every outstanding deletion reply before QUIT /
        EXPUNGE; refused deletions are simply not applied by the server.
        """
        ...


class MailSource(Protocol):
    """Factory for sessions: connects, upgrades to TLS and authenticates."""

    def open(self) -> MailSession:
        """Connect and authenticate; raise SocketError/AuthError/... on failure."""
        ...
