"""Map a query's protocol to a :class:`~pyfetchmail.protocols.base.MailSource`.

- ``pop3``, ``apop``, ``rpop`` → ``Pop3Source``; ``imap`` → ``ImapSource``.
- ``auto`` → IMAP first; POP3 only when IMAP failed at the *protocol* level
  (spec §5.1: since fetchmail 6.4.0 a socket, auth, lock, DNS ... failure
  does not fall through to the next protocol; a protocol error (4) or a
  server error (7) does).
- ``pop2``, ``kpop``, ``sdps``, ``etrn``, ``odmr`` are not implemented:
  :class:`UnsupportedProtocolError` (a ProtocolError, exit 4) names the protocol.

Driver modules are imported lazily, so the engine and its tests work before
(and without) them.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from pyfetchmail.config.model import Protocol, Query
from pyfetchmail.errors import FetchmailError, ProtocolError
from pyfetchmail.exitcodes import ExitCode
from pyfetchmail.protocols.base import MailSession, MailSource

if TYPE_CHECKING:
    from pyfetchmail.engine.poll import PollContext

__all__ = ["AutoSource", "UnsupportedProtocolError", "open_source"]

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


#: Statuses that end ``proto auto`` (spec §5.1); any other failure tries the next protocol.
_AUTO_FINAL = frozenset(
    {
        ExitCode.SUCCESS, ExitCode.NOMAIL, ExitCode.SOCKET, ExitCode.AUTHFAIL,
        ExitCode.LOCKBUSY, ExitCode.SMTP, ExitCode.MAXFETCH, ExitCode.DNS,
    }
)  # fmt: skip


class AutoSource:
    """``proto auto``: IMAP, falling back to POP3 on a protocol-level failure only."""

    def __init__(self, first: Callable[[], MailSource], second: Callable[[], MailSource]) -> None:
        self._first, self._second = first, second

    def open(self) -> MailSession:
        try:
            return self._first().open()
        except FetchmailError as exc:
            if exc.exit_code in _AUTO_FINAL:
                raise
            log.info("IMAP failed (%s); trying POP3", exc)
        return self._second().open()


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
        return AutoSource(lambda: _imap(query, password, ctx), lambda: _pop3(query, password, ctx))
    return _pop3(query, password, ctx)
