"""A scripted IMAP server on 127.0.0.1 for malformed and hostile replies.

One thread accepts connections (port 0); each connection gets its own thread
that sends the greeting, then reads command lines and answers from the
*replies* table.  Every socket read has a timeout, so a stuck test ends.

A reply is keyed by the upper-case command name (``"LOGIN"``, ``"SELECT"``,
``"UID FETCH"``, ``"IDLE"``, ``"DONE"``) and is either bytes (``{tag}`` is
replaced by the command's tag) or a callable ``(tag, args) -> bytes | None``
where ``None`` closes the connection.  ``CLOSE`` as bytes closes too, and
bytes ending in ``CLOSE`` are sent before the connection is closed.
A client line of one token that has no entry (SASL data) is answered from
``"CONTINUATION"`` with an empty tag.
Everything the client sent is kept in :attr:`FakeImapServer.received`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["CLOSE", "DEFAULT_MESSAGES", "DEFAULT_REPLIES", "FakeImapServer", "Reply"]

Reply = bytes | Callable[[bytes, bytes], bytes | None]

CLOSE = b"<close>"

DEFAULT_REPLIES: dict[str, Reply] = {
    "CAPABILITY": b"* CAPABILITY IMAP4rev1 AUTH=PLAIN IDLE\r\n{tag} OK done\r\n",
    "LOGIN": b"{tag} OK logged in\r\n",
    "SELECT": (
        b"* 2 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK [READ-WRITE] selected\r\n"
    ),
    "EXAMINE": b"* 2 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK [READ-ONLY] examined\r\n",
    "UID SEARCH": b"* SEARCH 11 12\r\n{tag} OK search done\r\n",
    "UID FETCH": lambda tag, args: _default_fetch(args),
    "UID STORE": b"{tag} OK stored\r\n",
    "EXPUNGE": b"{tag} OK expunged\r\n",
    "NOOP": b"{tag} OK noop\r\n",
    "LOGOUT": b"* BYE bye\r\n{tag} OK logout\r\n",
}


#: The default mailbox: (sequence number, UID, flags, body).
DEFAULT_MESSAGES = ((1, 11, b"", b"hello"), (2, 12, b"\\Seen", b"world!"))


def _default_fetch(args: bytes) -> bytes:
    """Answer ``UID FETCH`` for the default mailbox: bodies if asked, else flags and sizes."""
    if b"BODY" in args.upper():
        return body_fetch(*((seq, uid, body) for seq, uid, _flags, body in DEFAULT_MESSAGES))
    out = b""
    for seq, uid, flags, body in DEFAULT_MESSAGES:
        out += b"* %d FETCH (UID %d FLAGS (%s) RFC822.SIZE %d)\r\n" % (seq, uid, flags, len(body))
    return out + b"{tag} OK fetch done\r\n"


def body_fetch(*items: tuple[int, int, bytes]) -> bytes:
    """``UID FETCH`` reply lines with ``BODY[]`` literals for (seq, uid, body) items."""
    out = b""
    for seq, uid, body in items:
        out += b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (seq, uid, len(body)) + body + b")\r\n"
    return out + b"{tag} OK fetch done\r\n"


class FakeImapServer:
    """Scripted IMAP server; use as a context manager.  ``host``/``port`` once started."""

    host = "127.0.0.1"

    def __init__(
        self,
        greeting: bytes = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN IDLE] fake ready\r\n",
        replies: dict[str, Reply] | None = None,
        *,
        read_timeout: float = 10.0,
    ) -> None:
        self.greeting = greeting
        self.replies: dict[str, Reply] = dict(DEFAULT_REPLIES)
        start = greeting.find(b"[CAPABILITY ")
        if start >= 0:
            # Answer CAPABILITY with what the greeting announced.
            caps = greeting[start + 12 : greeting.index(b"]", start)]
            self.replies["CAPABILITY"] = b"* CAPABILITY " + caps + b"\r\n{tag} OK done\r\n"
        if replies:
            self.replies.update(replies)
        self.read_timeout = read_timeout
        self.received: list[bytes] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((self.host, 0))
        self._listener.listen(8)
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []

    def __enter__(self) -> FakeImapServer:
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def commands(self) -> list[str]:
        """Command names received (tag stripped), e.g. ``["CAPABILITY", "LOGIN"]``."""
        names = []
        for line in self.received:
            parts = line.split(b" ")
            if len(parts) >= 2:
                name = parts[1].upper()
                if name == b"UID" and len(parts) > 2:
                    name += b" " + parts[2].upper()
                names.append(name.decode("ascii", "replace"))
            else:
                names.append(line.decode("ascii", "replace").upper())
        return names

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(self.read_timeout)
        reader = conn.makefile("rb")
        try:
            conn.sendall(self.greeting)
            while not self._stop.is_set():
                line = reader.readline(1 << 20)
                if not line:
                    return
                line = line.rstrip(b"\r\n")
                self.received.append(line)
                if not self._answer(conn, line):
                    return
        except OSError:
            return
        finally:
            reader.close()
            with contextlib.suppress(OSError):
                conn.close()

    def _answer(self, conn: socket.socket, line: bytes) -> bool:
        parts = line.split(b" ", 2)
        if len(parts) == 1:
            tag, name, args = b"", parts[0].upper(), b""
        else:
            tag, name = parts[0], parts[1].upper()
            args = parts[2] if len(parts) > 2 else b""
            if name == b"UID":
                sub, _, rest = args.partition(b" ")
                name, args = b"UID " + sub.upper(), rest
        reply = self.replies.get(name.decode("ascii", "replace"))
        if reply is None and not args and len(parts) == 1:
            # An untagged client line: SASL continuation data.
            reply = self.replies.get("CONTINUATION")
        if reply is None:
            conn.sendall(tag + b" BAD unknown command\r\n")
            return True
        data = reply(tag, args) if callable(reply) else reply
        if data is None or data == CLOSE:
            return False
        close = data.endswith(CLOSE)
        if close:
            data = data[: -len(CLOSE)]
        if data:
            conn.sendall(data.replace(b"{tag}", tag))
        return not close
