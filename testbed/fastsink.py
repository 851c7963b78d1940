"""A fast counting SMTP/LMTP sink for benchmarks.

Responsibility: speak just enough SMTP (RFC 5321) or LMTP (RFC 2033) to take
mail as fast as a client can send it, counting messages and bytes, so that the
sink is never the bottleneck of a measurement (stock aiosmtpd reads DATA one
line at a time).

Invariants:

- Correct framing: commands are CRLF lines, pipelining (RFC 2920) is allowed,
  DATA ends at ``CRLF.CRLF`` (also when the body is empty), and the end-of-
  data reply comes only after the terminator. Replies produced by one read are
  written with one send.
- DATA is scanned in whatever chunks the socket delivers; only the last four
  bytes are kept between chunks unless *keep* is set, so memory stays flat
  even for a 100 MB message.
- ``messages`` and ``octets`` count accepted messages and their stuffed size
  (terminator excluded); with *keep* the unstuffed bytes are kept in
  ``kept``.
- Binds 127.0.0.1 only; runs its own event loop in a daemon thread
  (:class:`testbed.serving.LoopServer`).
"""

from __future__ import annotations

import asyncio
import threading
import time

from testbed.serving import Lifecycle, LoopServer

__all__ = ["FastSmtpSink"]

_TERMINATOR = b"\r\n.\r\n"


class _Connection(asyncio.Protocol):
    def __init__(self, sink: FastSmtpSink) -> None:
        self._sink = sink
        self._buf = bytearray()
        self._in_data = False
        self._data_seen = 0  # bytes of the current message already consumed
        self._message = bytearray()
        self._rcpts = 0
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(b"220 fastsink.localhost ESMTP ready\r\n")

    def data_received(self, data: bytes) -> None:
        self._buf += data
        out = bytearray()
        closing = self._process(out)
        if self._transport is not None:
            if out:
                self._transport.write(bytes(out))
            if closing:
                self._transport.close()

    def _process(self, out: bytearray) -> bool:
        while True:
            if self._in_data:
                if not self._scan_data(out):
                    return False
                continue
            end = self._buf.find(b"\n")
            if end < 0:
                return False
            line = bytes(self._buf[: end + 1]).rstrip(b"\r\n")
            del self._buf[: end + 1]
            if self._command(line, out):
                return True

    def _scan_data(self, out: bytearray) -> bool:
        """Consume DATA; True when a whole message ended (reply written to *out*)."""
        buf = self._buf
        if self._data_seen == 0 and buf.startswith(b".\r\n"):
            cut, body_end = 3, 0  # empty body
        else:
            idx = buf.find(_TERMINATOR)
            if idx < 0:
                keep = min(len(buf), 4)
                consumed = len(buf) - keep
                if consumed:
                    if self._sink.keep:
                        self._message += buf[:consumed]
                    self._data_seen += consumed
                    del buf[:consumed]
                return False
            cut, body_end = idx + len(_TERMINATOR), idx + 2
        if self._sink.keep:
            self._message += buf[:body_end]
            self._sink._keep(_unstuff(bytes(self._message)))
            self._message.clear()
        size = self._data_seen + body_end
        del buf[:cut]
        self._in_data = False
        self._data_seen = 0
        self._sink._count(size)
        replies = max(self._rcpts, 1) if self._sink.lmtp else 1
        out += b"250 2.0.0 OK\r\n" * replies
        self._rcpts = 0
        return True

    def _command(self, line: bytes, out: bytearray) -> bool:
        verb = line[:4].upper()
        if verb in (b"EHLO", b"LHLO"):
            out += b"250-fastsink.localhost\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
            out += b"250 ENHANCEDSTATUSCODES\r\n"
        elif verb == b"HELO":
            out += b"250 fastsink.localhost\r\n"
        elif verb == b"MAIL":
            self._rcpts = 0
            out += b"250 2.1.0 OK\r\n"
        elif verb == b"RCPT":
            self._rcpts += 1
            out += b"250 2.1.5 OK\r\n"
        elif verb == b"DATA":
            if self._rcpts == 0:
                out += b"503 5.5.1 need RCPT\r\n"
            else:
                self._in_data = True
                out += b"354 go ahead\r\n"
        elif verb in (b"RSET", b"NOOP"):
            self._rcpts = 0 if verb == b"RSET" else self._rcpts
            out += b"250 2.0.0 OK\r\n"
        elif verb == b"QUIT":
            out += b"221 2.0.0 bye\r\n"
            return True
        else:
            out += b"502 5.5.2 not implemented\r\n"
        return False


def _unstuff(data: bytes) -> bytes:
    """RFC 5321 §4.5.2: remove the leading dot of every line that starts with one."""
    lines = data.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


class FastSmtpSink(Lifecycle):
    """A counting SMTP (or LMTP with *lmtp*) sink on 127.0.0.1; ``host``/``port`` once started.

    ``messages`` and ``octets`` are totals over the sink's life; *keep* stores
    the unstuffed messages in ``kept`` (for correctness checks, not speed).
    """

    host = "127.0.0.1"

    def __init__(self, *, lmtp: bool = False, keep: bool = False) -> None:
        self.lmtp = lmtp
        self.keep = keep
        self.port = 0
        self._lock = threading.Lock()
        self._messages = 0
        self._bytes = 0
        self._kept: list[bytes] = []
        self._serving = LoopServer("fastsink")

    def start(self) -> None:
        """Start the event loop thread and listen on a free port."""
        self.port = self._serving.start(lambda: _Connection(self))

    def stop(self) -> None:
        """Close the server and stop the thread (idempotent)."""
        self._serving.stop()

    @property
    def messages(self) -> int:
        """Number of messages accepted so far."""
        with self._lock:
            return self._messages

    @property
    def octets(self) -> int:
        """Total DATA bytes accepted so far (as sent, terminator excluded)."""
        with self._lock:
            return self._bytes

    @property
    def kept(self) -> list[bytes]:
        """The messages (unstuffed) when *keep* is set."""
        with self._lock:
            return list(self._kept)

    def reset(self) -> None:
        """Zero the counters and drop kept messages."""
        with self._lock:
            self._messages = self._bytes = 0
            self._kept.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> int:
        """Wait until *count* messages arrived; return the count (raises on timeout)."""
        deadline = time.monotonic() + timeout
        while self.messages < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fast sink got {self.messages} of {count} messages")
            time.sleep(0.01)
        return self.messages

    def _count(self, size: int) -> None:
        with self._lock:
            self._messages += 1
            self._bytes += size

    def _keep(self, data: bytes) -> None:
        with self._lock:
            self._kept.append(data)
