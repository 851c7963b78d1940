"""Map a query's protocol to a :class:`~pyfetchmail.protocols.base.MailSource`.

- ``pop3``, ``apop``, ``rpop`` → ``Pop3Source``; ``imap`` → ``ImapSource``.
- ``auto`` → IMAP first; POP3 only when IMAP failed at the *protocol* level
  (fetchmail 6.4's documented rule: since 6.4.0 a socket, auth, lock, DNS ... failure
  does not fall through to the next protocol; a protocol error (4) or a
  server error (7) does).
- ``pop2``, ``kpop``, ``sdps``, ``etrn``, ``odmr`` are not implemented:
  :class:`UnsupportedProtocolError` (a ProtocolError, exit 4) names the protocol.

The sources are given :class:`~pyfetchmail.auth.credentials.Credentials`,
which they ask for the secret at each connect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pyfetchmail.auth.credentials import Credentials
from pyfetchmail.config.model import MailProtocol, Query
from pyfetchmail.errors import FetchmailError, ProtocolError
from pyfetchmail.exitcodes import ExitCode
from pyfetchmail.protocols.base import MailSession, MailSource
from pyfetchmail.protocols.imap import ImapSource
from pyfetchmail.protocols.pop3_session import Pop3Source

__all__ = ["AutoSource", "UnsupportedProtocolError", "open_source"]

log = logging.getLogger(__name__)

_UNSUPPORTED = frozenset(
    {MailProtocol.POP2, MailProtocol.KPOP, MailProtocol.SDPS, MailProtocol.ETRN, MailProtocol.ODMR}
)


class UnsupportedProtocolError(ProtocolError):
    """The configured protocol exists in fetchmail but not in pyfetchmail (exit 4)."""


def _pop3(query: Query, credentials: Credentials, check_only: bool) -> MailSource:
    return Pop3Source(query, credentials, timeout=query.server.timeout, check_only=check_only)


def _imap(query: Query, credentials: Credentials, check_only: bool) -> MailSource:
    return ImapSource(
        query,
        credentials,
        timeout=query.server.timeout,
        check_only=check_only,
        uid_mode=query.server.uidl,
    )


#: Statuses that end ``proto auto`` (fetchmail 6.4); any other failure tries the next protocol.
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


def open_source(query: Query, credentials: Credentials, *, check_only: bool = False) -> MailSource:
    """Return the mail source for *query* (not yet connected).

    :param credentials: asked for the secret at each connect.
    :param check_only: ``-c``: the session only counts, it never fetches a body.
    """
    proto = query.server.protocol
    if proto in _UNSUPPORTED:
        raise UnsupportedProtocolError(
            f"protocol {proto.value.upper()} is not supported by pyfetchmail"
        )
    if proto is MailProtocol.IMAP:
        return _imap(query, credentials, check_only)
    if proto is MailProtocol.AUTO:
        return AutoSource(
            lambda: _imap(query, credentials, check_only),
            lambda: _pop3(query, credentials, check_only),
        )
    return _pop3(query, credentials, check_only)
