"""Exception hierarchy; every class maps to one fetchmail exit code.

Invariants:
- Only :func:`pyfetchmail.cli.main` turns an exception into a process exit
  status, using the ``exit_code`` class attribute.
- Exception texts never contain passwords, tokens or SASL payloads: callers
  build messages from host, user and protocol state only.
- Like h11, protocol errors are split into *our* bug (LocalProtocolError) and
  *their* bug (RemoteProtocolError); only the latter is expected in production.
"""

from __future__ import annotations

from pyfetchmail.exitcodes import ExitCode

__all__ = [
    "AuthError",
    "BsmtpError",
    "ConfigError",
    "ConnectTimeout",
    "DNSError",
    "DeliveryError",
    "FetchLimitReached",
    "FetchmailError",
    "LocalIOError",
    "LocalProtocolError",
    "LockError",
    "PermDeliveryError",
    "ProtocolError",
    "RcPermissionError",
    "RemoteProtocolError",
    "ServerBusy",
    "ServerError",
    "ServerLockBusy",
    "ServerTimeout",
    "SmtpConnectError",
    "SocketError",
    "TempDeliveryError",
]


class FetchmailError(Exception):
    """Base class: a failure with a well-defined fetchmail exit code."""

    exit_code: ExitCode = ExitCode.UNDEFINED


class ConfigError(FetchmailError):
    """Invalid rc file or command line (exit 5).

    *location* is ``"file:line:col"`` (or ``"file:line"``) when known, so the
    message can name the place of the fault.
    """

    exit_code = ExitCode.SYNTAX

    def __init__(self, message: str, location: str | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class RcPermissionError(FetchmailError):
    """rc file or idfile has unsafe mode/owner, or cannot be opened (exit 6)."""

    exit_code = ExitCode.IOERR


class LocalIOError(FetchmailError):
    """Local I/O failure fetchmail reports as IOERR (exit 6), e.g. MDA write."""

    exit_code = ExitCode.IOERR


class SocketError(FetchmailError):
    """Connect, socket, timeout-on-connect or TLS failure (exit 2)."""

    exit_code = ExitCode.SOCKET


class ConnectTimeout(SocketError):
    """No connection (or TLS handshake) within the server ``timeout`` (exit 2).

    Counted by the daemon's wedged-query rule, like :class:`ServerTimeout`.
    """


class AuthError(FetchmailError):
    """Authentication failed or no password available (exit 3)."""

    exit_code = ExitCode.AUTHFAIL


class ProtocolError(FetchmailError):
    """Protocol violation (exit 4)."""

    exit_code = ExitCode.PROTOCOL


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol state does not allow (our bug)."""


class RemoteProtocolError(ProtocolError):
    """The server sent something malformed or unexpected (their bug)."""


class ServerError(FetchmailError):
    """Server reported an error or the session got out of step (exit 7).

    Also used for server inactivity timeouts after the connection is up.
    """

    exit_code = ExitCode.ERROR


class ServerTimeout(ServerError):
    """The server stayed silent longer than ``timeout`` (exit 7).

    A distinct class so the daemon can count consecutive timeouts (fetchmail's
    wedged-query rule) without looking at message texts.
    """


class LockError(FetchmailError):
    """Another instance is running, or the lock file cannot be handled (exit 8)."""

    exit_code = ExitCode.EXCLUDE


class ServerLockBusy(FetchmailError):
    """The server said the mailbox is locked or in use (exit 9)."""

    exit_code = ExitCode.LOCKBUSY


class DeliveryError(FetchmailError):
    """Delivery to the local side failed (exit 10 when it ends a query)."""

    exit_code = ExitCode.SMTP


class SmtpConnectError(DeliveryError):
    """No host of the smtphost hunt list could be reached (exit 10)."""


class TempDeliveryError(DeliveryError):
    """Transient delivery failure: the message stays on the server."""


class PermDeliveryError(DeliveryError):
    """Permanent refusal: bounce, then delete unless softbounce keeps it."""


class DNSError(FetchmailError):
    """Fatal name-resolution error (exit 11)."""

    exit_code = ExitCode.DNS


class BsmtpError(FetchmailError):
    """BSMTP output file could not be opened (exit 12)."""

    exit_code = ExitCode.BSMTP


class FetchLimitReached(FetchmailError):
    """The poll stopped because ``fetchlimit`` was reached (exit 13)."""

    exit_code = ExitCode.MAXFETCH


class ServerBusy(FetchmailError):
    """The server said the service is unavailable (exit 14)."""

    exit_code = ExitCode.SERVBUSY
