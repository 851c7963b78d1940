"""Sans-I/O POP3 client protocol (RFC 1939, RFC 2449 CAPA/PIPELINING, RFC 5034 AUTH).

Like h11, this module owns no socket, clock, logger or configuration.  The
driver (:mod:`pyfetchmail.protocols.pop3_session`) feeds it bytes and sends
the bytes it returns:

- :meth:`Pop3Connection.send_command` turns a command into wire bytes and
  records what kind of reply it expects;
- :meth:`Pop3Connection.receive_data` appends server bytes (``b""`` = EOF);
- :meth:`Pop3Connection.next_event` returns the next typed event, or
  :class:`NeedData` when more bytes are required.

Rules (the whole state machine in one place):

1. The first reply is the greeting (:class:`Greeting` or :class:`Err`).
2. Replies answer commands strictly in the order sent, so any number of
   commands may be outstanding (RFC 2449 PIPELINING).  Each command has a
   reply shape fixed by its verb: single line; multi-line *listing*
   (``CAPA``, ``UIDL`` and ``LIST`` without argument, ``AUTH`` without
   argument); multi-line *message* (``RETR``, ``TOP``); or a SASL exchange
   (``AUTH mech``), which yields :class:`Continuation` events until ``+OK`` or
   ``-ERR`` ends it.  ``-ERR`` always ends a reply after one line.
3. Multi-line bodies are dot-unstuffed and their terminator (``.`` CRLF) is
   found wherever reads split the bytes; message bodies stream out as
   :class:`MessageChunk` events without waiting for line ends, so a message
   of any size needs O(read size) memory here.
4. Every server-supplied field is bounded: status and listing lines at
   :data:`MAX_LINE` bytes, UIDs at :data:`MAX_UID` characters of printable
   ASCII (RFC 1939 §7 says at most 70; we accept up to 512).  Anything
   malformed raises :class:`~pyfetchmail.errors.RemoteProtocolError` and
   nothing else; misuse by the caller raises
   :class:`~pyfetchmail.errors.LocalProtocolError`.
5. ``STLS``, ``AUTH`` and ``QUIT`` must be the last command in flight: after
   them nothing may be sent until their reply has arrived.  Bytes that follow
   the ``+OK`` to ``STLS`` in the same read were not protected by TLS and are
   rejected (plaintext command injection, cf. CVE-2011-0411).
6. Secrets: exception texts never quote command arguments.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from pyfetchmail.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "MAX_LINE",
    "MAX_UID",
    "ConnectionClosed",
    "Continuation",
    "EndOfMessage",
    "Err",
    "Event",
    "Greeting",
    "ListingLine",
    "MessageChunk",
    "NeedData",
    "Ok",
    "Pop3Connection",
    "ReplyShape",
    "parse_scan_line",
    "parse_stat",
]

#: Longest status or listing line we accept (RFC 2449 allows 512; be lenient).
MAX_LINE = 64 * 1024
#: Longest UID accepted (RFC 1939 §7: 1 to 70 characters in 0x21..0x7E).
MAX_UID = 512
_MAX_NUMBER_DIGITS = 18


@dataclass(frozen=True, slots=True)
class Greeting:
    """The server's ``+OK`` greeting; *text* follows ``+OK``."""

    text: str


@dataclass(frozen=True, slots=True)
class Ok:
    """``+OK`` status line answering *command* (verb, upper case)."""

    command: str
    text: str


@dataclass(frozen=True, slots=True)
class Err:
    """``-ERR`` status line answering *command* (``""`` for the greeting)."""

    command: str
    text: str


@dataclass(frozen=True, slots=True)
class Continuation:
    """A SASL server challenge (``+ base64``); *text* is the raw base64."""

    text: str


@dataclass(frozen=True, slots=True)
class ListingLine:
    """One line of a multi-line listing (CAPA, UIDL, LIST), unstuffed.

    For UIDL and LIST *number* is the message number and *value* the UID or
    the size text; for CAPA and AUTH both are ``None``.
    """

    command: str
    text: str
    number: int | None = None
    value: str | None = None


@dataclass(frozen=True, slots=True)
class MessageChunk:
    """A piece of a RETR/TOP body, dot-unstuffed, line ends as sent."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The terminating ``.`` of a multi-line reply (message or listing)."""

    command: str


@dataclass(frozen=True, slots=True)
class NeedData:
    """More bytes are needed before the next event."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The server closed the connection (EOF) while a reply was outstanding."""


Event = (
    Greeting
    | Ok
    | Err
    | Continuation
    | ListingLine
    | MessageChunk
    | EndOfMessage
    | NeedData
    | ConnectionClosed
)


class ReplyShape(enum.Enum):
    """How the reply to a command is framed."""

    GREETING = "greeting"
    SINGLE = "single"
    LISTING = "listing"
    MESSAGE = "message"
    SASL = "sasl"


class _Phase(enum.Enum):
    STATUS = "status"  # waiting for the status line of the head command
    BODY = "body"  # inside the multi-line body of the head command


_BARRIERS = frozenset({"STLS", "AUTH", "QUIT"})


def _shape(verb: str, args: tuple[str, ...]) -> ReplyShape:
    if verb in ("RETR", "TOP"):
        return ReplyShape.MESSAGE
    if verb == "CAPA" or (verb in ("UIDL", "LIST", "AUTH") and not args):
        return ReplyShape.LISTING
    if verb == "AUTH":
        return ReplyShape.SASL
    return ReplyShape.SINGLE


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return line


def _number(text: str, what: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > _MAX_NUMBER_DIGITS:
        raise RemoteProtocolError(f"malformed {what} in server reply")
    return int(text)


def parse_stat(text: str) -> tuple[int, int]:
    """Parse the text of a STAT ``+OK``: ``"3 623"`` -> ``(3, 623)``."""
    parts = text.split()
    if len(parts) < 2:
        raise RemoteProtocolError("malformed STAT reply")
    return _number(parts[0], "message count"), _number(parts[1], "mailbox size")


def parse_scan_line(text: str, command: str) -> tuple[int, str]:
    """Parse ``"n value ..."`` from a LIST/UIDL listing or single reply.

    For UIDL the value is the UID, checked against RFC 1939 §7 (printable
    ASCII, bounded); for LIST it must be a decimal size.
    """
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise RemoteProtocolError(f"malformed {command} line")
    number = _number(parts[0], "message number")
    value = parts[1]
    if command == "UIDL":
        if len(value) > MAX_UID:
            raise RemoteProtocolError(f"UID of message {number} is longer than {MAX_UID}")
        if not all(0x21 <= ord(ch) <= 0x7E for ch in value):
            raise RemoteProtocolError(f"UID of message {number} has invalid characters")
    else:
        _number(value, "message size")
    return number, value


@dataclass(slots=True)
class _Pending:
    verb: str
    shape: ReplyShape


class Pop3Connection:
    """The client side of one POP3 conversation, as a pure state machine."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._eof = False
        self._pending: deque[_Pending] = deque([_Pending("", ReplyShape.GREETING)])
        self._phase = _Phase.STATUS
        self._line_start = True  # message body: next byte begins a line
        self._closed = False
        self._sasl_turn = False  # a Continuation awaits our response

    # -- introspection ---------------------------------------------------
    @property
    def outstanding(self) -> tuple[str, ...]:
        """Verbs of the commands whose replies have not been fully read."""
        return tuple(p.verb for p in self._pending)

    @property
    def closed(self) -> bool:
        """True after the ``+OK`` to QUIT (or EOF)."""
        return self._closed

    # -- commands in, bytes out ------------------------------------------
    def send_command(self, verb: str, *args: str) -> bytes:
        """Return the wire bytes for ``verb args...`` and queue its reply.

        Raises :class:`LocalProtocolError` when the command may not be sent
        now (after QUIT, while STLS/AUTH/QUIT is outstanding) or contains CR,
        LF or NUL.
        """
        verb = verb.upper()
        if self._closed:
            raise LocalProtocolError(f"cannot send {verb}: connection closed")
        if any(p.verb in _BARRIERS for p in self._pending):
            raise LocalProtocolError(f"cannot send {verb} while STLS/AUTH/QUIT is outstanding")
        if not verb.isalpha() or not verb.isascii():
            raise LocalProtocolError("invalid POP3 command verb")
        for arg in args:
            if any(ch in arg for ch in "\r\n\0"):
                # Never quote *arg*: it may be a password.
                raise LocalProtocolError(f"invalid argument for {verb}")
        self._pending.append(_Pending(verb, _shape(verb, args)))
        return " ".join((verb, *args)).encode("utf-8") + b"\r\n"

    def send_sasl_response(self, response: str) -> bytes:
        """Return the bytes answering the last :class:`Continuation` (base64 or ``*``)."""
        if not self._sasl_turn:
            raise LocalProtocolError("no SASL challenge to answer")
        if any(ch in response for ch in "\r\n\0"):
            raise LocalProtocolError("invalid SASL response")
        self._sasl_turn = False
        return response.encode("ascii", errors="strict") + b"\r\n"

    # -- bytes in, events out --------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the server; ``b""`` signals end of file."""
        if data:
            if self._eof:
                raise LocalProtocolError("data received after EOF")
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Event:
        """Return the next event; :class:`NeedData` when the buffer is exhausted."""
        if not self._pending:
            if self._buf:
                raise RemoteProtocolError("server sent data nobody asked for")
            if self._eof:
                return ConnectionClosed()
            return NeedData()  # idle: nothing asked, nothing received
        head = self._pending[0]
        if self._phase is _Phase.BODY:
            if head.shape is ReplyShape.MESSAGE:
                return self._message_event(head)
            return self._listing_event(head)
        return self._status_event(head)

    # -- internals ---------------------------------------------------------
    def _take_line(self) -> bytes | None:
        end = self._buf.find(b"\n", 0, MAX_LINE + 1)
        if end < 0:
            if len(self._buf) > MAX_LINE:
                raise RemoteProtocolError(f"server line longer than {MAX_LINE} bytes")
            return None
        line = bytes(self._buf[: end + 1])
        del self._buf[: end + 1]
        return line

    def _no_line(self) -> Event:
        if self._eof:
            self._closed = True
            self._pending.clear()
            self._buf.clear()
            return ConnectionClosed()
        return NeedData()

    def _status_event(self, head: _Pending) -> Event:
        if self._sasl_turn:
            raise LocalProtocolError("answer the SASL challenge before reading on")
        raw = self._take_line()
        if raw is None:
            return self._no_line()
        line = _strip_eol(raw)
        upper = line[:4].upper()
        if upper.startswith(b"+OK"):
            return self._ok(head, _decode(line[3:].lstrip(b" ")))
        if upper.startswith(b"-ERR"):
            self._pending.popleft()
            return Err(head.verb, _decode(line[4:].lstrip(b" ")))
        if head.shape is ReplyShape.SASL and line.startswith(b"+") and line[1:2] in (b"", b" "):
            self._sasl_turn = True
            return Continuation(_decode(line[2:]).strip())
        raise RemoteProtocolError(
            f"unexpected reply to {head.verb or 'connect'}: expected +OK or -ERR"
        )

    def _ok(self, head: _Pending, text: str) -> Event:
        if head.shape is ReplyShape.GREETING:
            self._pending.popleft()
            return Greeting(text)
        if head.shape in (ReplyShape.LISTING, ReplyShape.MESSAGE):
            self._phase = _Phase.BODY
            self._line_start = True
            return Ok(head.verb, text)
        self._pending.popleft()
        if head.verb == "STLS" and self._buf:
            raise RemoteProtocolError("server sent data after its STLS reply (injection attempt?)")
        if head.verb == "QUIT":
            self._closed = True
        return Ok(head.verb, text)

    def _finish_body(self, head: _Pending) -> EndOfMessage:
        self._pending.popleft()
        self._phase = _Phase.STATUS
        return EndOfMessage(head.verb)

    def _listing_event(self, head: _Pending) -> Event:
        raw = self._take_line()
        if raw is None:
            return self._no_line()
        line = _strip_eol(raw)
        if line.startswith(b"."):
            if line == b".":
                return self._finish_body(head)
            line = line[1:]  # RFC 1939 §3: undo byte-stuffing
        text = _decode(line)
        if head.verb in ("UIDL", "LIST"):
            number, value = parse_scan_line(text, head.verb)
            return ListingLine(head.verb, text, number, value)
        return ListingLine(head.verb, text)

    def _message_event(self, head: _Pending) -> Event:
        buf = self._buf
        out = bytearray()
        while buf:
            if self._line_start:
                if buf[0:1] != b".":
                    self._line_start = False
                    continue
                if len(buf) < 2 or (buf[1:2] == b"\r" and len(buf) < 3):
                    break  # cannot tell a terminator from a stuffed line yet
                if buf[1:2] == b"\n" or buf[1:3] == b"\r\n":
                    if out:
                        return MessageChunk(bytes(out))
                    del buf[: 2 if buf[1:2] == b"\n" else 3]
                    return self._finish_body(head)
                del buf[:1]  # a stuffed dot
                self._line_start = False
                continue
            # Mid-line: everything up to the next "\n." belongs to the message.
            cut = buf.find(b"\n.")
            if cut < 0:
                out += buf
                self._line_start = buf.endswith(b"\n")
                buf.clear()
                break
            out += buf[: cut + 1]
            del buf[: cut + 1]
            self._line_start = True
        if out:
            return MessageChunk(bytes(out))
        if self._eof:
            return self._no_line()
        return NeedData()
