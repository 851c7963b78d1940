"""Map a query's protocol to a :class:`~pyfetchmail.protocols.base.MailSource`.

- ``pop3``, ``apop``, ``rpop`` → ``Pop3Source``; ``imap`` → ``ImapSource``.
- ``auto`` → IMAP first; POP3 only when IMAP failed at the *protocol* level
  (spec §5.1: since fetchmail 6.4.0 a socket, auth, lock, DNS ... failure
  does not fall through to the next protocol).
- ``pop2``, ``kpop``, ``sdps``, ``etrn``, ``odmr`` are not implemented:
  :class:`UnsupportedProtocolError` (a ProtocolError, exit 4) names the protocol.

Driver modules are imported lazily, so the engine and its tests work before
(and without) them.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, cast

from pyfetchmail.config.model import Protocol, Query
from pyfetchmail.errors import ProtocolError
from pyfetchmail.protocols.base import MailSession, MailSource

if TYPE_CHECKING:
    from pyfetchmail.fetch import PollContext

__all__ = ["UnsupportedProtocolError", "open_source"]

log = logging.getLogger(__name__)

_UNSUPPORTED = frozenset(
    {Protocol.POP2, Protocol.KPOP, Protocol.SDPS, Protocol.ETRN, Protocol.ODMR}
)


class UnsupportedProtocolError(ProtocolError):
    """The configured protocol exists in fetchmail but not in pyfetchmail (exit 4)."""


def _pop3(query: Query, password: str | None, ctx: PollContext) -> MailSource:
    mod: Any = importlib.import_module("pyfetchmail.protocols.pop3_session")
    return cast(
        MailSource,
        mod.Pop3Source(query, password, timeout=query.server.timeout, check_only=ctx.options.check),
    )


def _imap(query: Query, password: str | None, ctx: PollContext) -> MailSource:
    mod: Any = importlib.import_module("pyfetchmail.protocols.imap")
    return cast(
        MailSource,
        mod.ImapSource(
            query,
            password,
            timeout=query.server.timeout,
            check_only=ctx.options.check,
            uid_mode=query.server.uidl,
        ),
    )


class _AutoSource:
    """``proto auto``: IMAP, falling back to POP3 on a protocol-level failure only."""

    def __init__(self, query: Query, password: str | None, ctx: PollContext) -> None:
        self._args = (query, password, ctx)

    def open(self) -> MailSession:
        try:
            return _imap(*self._args).open()
        except ProtocolError as exc:
            log.info("IMAP failed for %s (%s); trying POP3", self._args[0].label, exc)
        return _pop3(*self._args).open()


def open_source(query: Query, password: str | None, ctx: PollContext) -> MailSource:
    """Return the mail source for *query* (not yet connected)."""
    proto = query.server.protocol
    if proto in _UNSUPPORTED:
        raise UnsupportedProtocolError(
            f"protocol {proto.value.upper()} is not supported by pyfetchmail"
        )
    if proto is Protocol.IMAP:
        return _imap(query, password, ctx)
    if proto is Protocol.AUTO:
        return _AutoSource(query, password, ctx)
    return _pop3(query, password, ctx)
