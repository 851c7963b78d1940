"""Blocking I/O around the sans-I/O POP3 machine: one socket, one Pop3Connection.

:class:`Pop3Channel` sends commands (several in one write when pipelining),
reads until the machine yields an event, writes the ``-vv`` transcript and
maps I/O failures to fetchmail's error classes:

- a read that waits longer than the server ``timeout`` raises
  :class:`~pyfetchmail.errors.ServerError` ("timeout after N seconds waiting
  for server X.");
- a reset or EOF raises :class:`~pyfetchmail.errors.SocketError`;
- malformed server bytes raise
  :class:`~pyfetchmail.errors.RemoteProtocolError` (from the machine).

Invariant: after any of these the channel is *broken*; every later
operation raises at once, so nobody can act on a session that lost sync.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence

from pyfetchmail.errors import FetchmailError, ServerError, ServerTimeout, SocketError
from pyfetchmail.protocols import transcript
from pyfetchmail.protocols.pop3 import (
    ConnectionClosed,
    Continuation,
    EndOfMessage,
    Err,
    Event,
    Greeting,
    ListingLine,
    NeedData,
    Ok,
    Pop3Connection,
)

__all__ = ["READ_SIZE", "Pop3Channel"]

#: Bytes asked from the socket per read.
READ_SIZE = 256 * 1024

_PROTO = "POP3"


class Pop3Channel:
    """A connected socket plus the protocol machine, for one POP3 session.

    *host* is used in error texts, *timeout* (seconds) bounds every read.
    """

    def __init__(self, sock: socket.socket, host: str, timeout: float | None) -> None:
        self.sock = sock
        self.host = host
        self.timeout = timeout
        self.conn = Pop3Connection()
        self._broken: FetchmailError | None = None
        #: Strings masked in logged replies (a server might echo a password).
        self.secrets: tuple[str, ...] = ()
        sock.settimeout(timeout)

    @property
    def broken(self) -> bool:
        """True once an I/O or protocol error made the session unusable."""
        return self._broken is not None

    def _fail(self, exc: FetchmailError) -> FetchmailError:
        self._broken = exc
        return exc

    def _check(self) -> None:
        if self._broken is not None:
            raise type(self._broken)(f"{self.host}: session unusable after an earlier error")

    # -- sending -----------------------------------------------------------
    def send(self, commands: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Send *commands* (verb, args) in one write (RFC 2449 pipelining)."""
        self._check()
        wire = bytearray()
        for verb, args in commands:
            wire += self.conn.send_command(verb, *args)
            transcript.log_command(_PROTO, verb.upper(), args)
        self._write(bytes(wire))

    def send_sasl(self, response: str) -> None:
        """Answer the last SASL challenge (base64 text or ``*``)."""
        self._check()
        wire = self.conn.send_sasl_response(response)
        transcript.log_sasl_response(_PROTO, cancel=response == "*")
        self._write(wire)

    def _write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise self._fail(self._timeout_error()) from None
        except OSError as exc:
            raise self._fail(
                SocketError(f"{self.host}: write to server failed: {exc.strerror or exc}")
            ) from None

    # -- receiving ---------------------------------------------------------
    def _timeout_error(self) -> ServerTimeout:
        secs = self.timeout if self.timeout is not None else 0
        shown = int(secs) if float(secs).is_integer() else secs
        return ServerTimeout(f"timeout after {shown} seconds waiting for server {self.host}.")

    def next_event(self) -> Event:
        """Return the next protocol event, reading from the socket as needed."""
        self._check()
        while True:
            try:
                event = self.conn.next_event()
            except FetchmailError as exc:
                raise self._fail(exc) from None
            if isinstance(event, NeedData):
                self._read()
                continue
            if isinstance(event, ConnectionClosed):
                raise self._fail(SocketError(f"{self.host}: server closed the connection"))
            self._log_event(event)
            return event

    def _read(self) -> None:
        try:
            data = self.sock.recv(READ_SIZE)
        except TimeoutError:
            raise self._fail(self._timeout_error()) from None
        except OSError as exc:
            raise self._fail(
                SocketError(f"{self.host}: read from server failed: {exc.strerror or exc}")
            ) from None
        self.conn.receive_data(data)

    def _log_event(self, event: Event) -> None:
        if isinstance(event, Greeting | Ok):
            self._log_reply(f"+OK {event.text}".rstrip())
        elif isinstance(event, Err):
            self._log_reply(f"-ERR {event.text}".rstrip())
        elif isinstance(event, ListingLine):
            self._log_reply(event.text)
        elif isinstance(event, Continuation):
            self._log_reply(f"+ {event.text}".rstrip())
        elif isinstance(event, EndOfMessage) and event.command not in ("RETR", "TOP"):
            self._log_reply(".")

    def _log_reply(self, text: str) -> None:
        for secret in self.secrets:
            text = text.replace(secret, "*")
        transcript.log_reply(_PROTO, text)

    def reply(self) -> Ok | Err:
        """Read a single-line reply (``+OK``/``-ERR``) to the oldest command."""
        event = self.next_event()
        if isinstance(event, Ok | Err):
            return event
        raise self._fail(ServerError(f"{self.host}: client and server out of step"))

    def listing(self) -> tuple[Err | None, list[ListingLine]]:
        """Read a whole multi-line listing reply; ``(Err, [])`` when refused."""
        first = self.reply()
        if isinstance(first, Err):
            return first, []
        lines: list[ListingLine] = []
        while True:
            event = self.next_event()
            if isinstance(event, EndOfMessage):
                return None, lines
            if not isinstance(event, ListingLine):
                raise self._fail(ServerError(f"{self.host}: client and server out of step"))
            lines.append(event)

    def replace_socket(self, sock: socket.socket) -> None:
        """Continue on *sock* (the TLS socket after STLS)."""
        self.sock = sock
        sock.settimeout(self.timeout)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        with contextlib.suppress(OSError):
            self.sock.close()
