"""The boundary between imapclient/imaplib and our error and logging model.

Responsibility: everything the IMAP adapter needs *around* imapclient calls,
without touching imapclient's or imaplib's private attributes:

- :func:`guard` turns every exception imapclient, imaplib, :mod:`ssl` or the
  socket layer can raise into one of our :mod:`pyfetchmail.errors` classes,
  so a hostile or broken server ends the query with a clear message, never a
  traceback.
- :func:`install_transcript` re-emits imaplib's wire log (which imapclient
  routes to the ``imapclient.imaplib`` logger, already with ``LOGIN`` and
  ``AUTHENTICATE`` arguments redacted) as ``IMAP> ``/``IMAP< `` lines on the
  ``pyfetchmail.transcript`` logger, redacting once more on our side.
- :class:`NamedContext` lets the certificate name (``sslcommonname``) differ
  from the address we connect to: imapclient and imaplib both call
  ``ssl_context.wrap_socket(sock, server_hostname=<connect host>)``; this
  stand-in forwards to the real context with the expected name instead.

Invariants:
- No password, token or SASL payload reaches a log record or exception text:
  command lines carrying credentials are reduced to the command name.
- Exception texts name the server, never the credentials.
"""

from __future__ import annotations

import ast
import contextlib
import imaplib
import logging
import re
import socket
import ssl
from collections.abc import Iterator

from imapclient.exceptions import ProtocolError as ImapClientProtocolError

from pyfetchmail.errors import (
    AuthError,
    ConnectTimeout,
    RemoteProtocolError,
    ServerError,
    ServerLockBusy,
    ServerTimeout,
    SocketError,
)
from pyfetchmail.protocols.transcript import TRANSCRIPT_LOGGER

__all__ = [
    "NamedContext",
    "guard",
    "install_transcript",
    "redact_wire_line",
    "transcript",
]

log = logging.getLogger(__name__)

_IMAPLIB_LOGGER = "imapclient.imaplib"

_transcript = logging.getLogger(TRANSCRIPT_LOGGER)


def transcript(direction: str, line: str) -> None:
    """Log one wire line as ``IMAP> line`` / ``IMAP< line`` (already redacted)."""
    if _transcript.isEnabledFor(logging.DEBUG):
        _transcript.debug("IMAP%s %s", direction, line)


# A command line that carries credentials: keep tag and command name only.
_SECRET_COMMAND = re.compile(r"^(\S+ (?:UID )?)(LOGIN|AUTHENTICATE)\b", re.IGNORECASE)


def redact_wire_line(line: str) -> str:
    """Reduce a client command line carrying credentials to ``TAG COMMAND *``.

    >>> redact_wire_line('A1 LOGIN "joe" "secret"')
    'A1 LOGIN *'
    """
    match = _SECRET_COMMAND.match(line)
    if match:
        return f"{match.group(1)}{match.group(2)} *"
    return line


def _decode_repr(text: str) -> str:
    """imaplib logs ``%r`` of bytes; turn ``b'...'`` back into readable text."""
    text = text.strip()
    if text.startswith(("b'", 'b"')):
        with contextlib.suppress(ValueError, SyntaxError):
            value = ast.literal_eval(text)
            if isinstance(value, bytes):
                return value.decode("utf-8", "replace").rstrip("\r\n")
        # imapclient's redaction cuts the repr short: drop the b' prefix.
        return text[2:]
    return text


class _TranscriptBridge(logging.Handler):
    """Forward imaplib's ``> ...``/``< ...`` debug lines to our transcript logger."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # a broken record must never break the session
            return
        if msg.startswith("> "):
            # imapclient already replaced credentials with **REDACTED**;
            # we cut the line to the command name regardless.
            transcript(">", redact_wire_line(_decode_repr(msg[2:])))
        elif msg.startswith("< "):
            transcript("<", _decode_repr(msg[2:]))


_bridge = _TranscriptBridge(level=logging.DEBUG)


def install_transcript() -> None:
    """Route imaplib's wire log through our bridge only (idempotent).

    The ``imapclient.imaplib`` logger stops propagating, so its raw lines
    never reach the root handlers at ``-v``; each wire line is logged once,
    by us, redacted, on ``pyfetchmail.transcript`` when that is enabled
    (``-vv``).  The level is re-evaluated at every connection.
    """
    wire = logging.getLogger(_IMAPLIB_LOGGER)
    if _bridge not in wire.handlers:
        wire.addHandler(_bridge)
    wire.propagate = False
    wire.setLevel(logging.DEBUG if _transcript.isEnabledFor(logging.DEBUG) else logging.WARNING)


class NamedContext:
    """Stand-in for an :class:`ssl.SSLContext` that fixes the expected server name.

    imapclient (implicit TLS) and imaplib (STARTTLS) call
    ``wrap_socket(sock, server_hostname=<host we connected to>)``.  fetchmail
    checks the certificate against ``sslcommonname``/``via``/poll name and
    sends that as SNI, so we forward to the real context with *server_name*.
    """

    def __init__(self, context: ssl.SSLContext, server_name: str) -> None:
        self.context = context
        self.server_name = server_name

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        """Wrap *sock* like :meth:`ssl.SSLContext.wrap_socket`, naming our server."""
        del server_hostname  # replaced by the name fetchmail would check
        return self.context.wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=self.server_name,
            session=session,
        )


def _text(exc: BaseException) -> str:
    """A short, credential-free description of *exc*."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return str(exc.verify_message or exc.reason or "certificate verify failed")
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc) or type(exc).__name__
    # imaplib quotes whole response lines in its messages; keep them short.
    return text if len(text) <= 200 else text[:200] + "..."


@contextlib.contextmanager
def guard(host: str, timeout: float | None, *, connecting: bool = False) -> Iterator[None]:
    """Translate library exceptions raised inside the block into our errors.

    *host* names the server in messages; *timeout* is quoted on timeouts;
    *connecting* selects fetchmail's "waiting to connect" wording.
    """
    seconds = "?" if timeout is None else f"{timeout:g}"
    try:
        yield
    except (SocketError, AuthError, ServerError, ServerLockBusy, RemoteProtocolError):
        raise
    except TimeoutError:
        if connecting:
            raise ConnectTimeout(
                f"timeout after {seconds} seconds waiting to connect to server {host}."
            ) from None
        raise ServerTimeout(f"timeout after {seconds} seconds waiting for server {host}.") from None
    except ssl.SSLCertVerificationError as exc:
        raise SocketError(
            f"Server certificate verification error: {_text(exc)}; {host}: SSL connection failed."
        ) from None
    except imaplib.IMAP4.readonly as exc:
        raise ServerLockBusy(f"{host}: mailbox became read-only: {_text(exc)}") from None
    except imaplib.IMAP4.abort as exc:
        text = _text(exc)
        if "EOF" in text or "socket error" in text:
            raise SocketError(f"{host}: connection closed by the server.") from None
        raise SocketError(
            f"Received BYE or invalid response from IMAP server {host}: {text}"
        ) from None
    except imaplib.IMAP4.error as exc:
        # imapclient.exceptions.ProtocolError and friends derive from this;
        # tagged NO/BAD arrive here too.  Callers that expect a NO (login,
        # per-message fetch) catch it themselves before this boundary.
        if isinstance(exc, ImapClientProtocolError):
            raise RemoteProtocolError(f"{host}: malformed IMAP response: {_text(exc)}") from None
        raise ServerError(f"{host}: IMAP error: {_text(exc)}") from None
    except OSError as exc:
        raise SocketError(f"{host}: {_text(exc)}") from None
    except (ValueError, IndexError, KeyError, TypeError, AttributeError, MemoryError) as exc:
        # Parsing a hostile reply (non-numeric UID, absurd literal size,
        # truncated structure) fails deep inside imapclient/imaplib.
        log.debug("%s: IMAP reply could not be parsed: %s", host, type(exc).__name__)
        raise RemoteProtocolError(
            f"{host}: malformed IMAP response ({type(exc).__name__}: {_text(exc)})"
        ) from None
