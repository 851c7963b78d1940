"""A scripted, threaded POP3 server on 127.0.0.1 for faults Dovecot cannot produce.

It implements enough of RFC 1939/2449/5034 for a client (USER/PASS, APOP,
AUTH CRAM-MD5/PLAIN/LOGIN, STLS, CAPA, STAT, UIDL, LIST, RETR, TOP, DELE,
RSET, NOOP, QUIT, and RFC 1725's LAST) and reads commands from a buffer, so pipelined commands work.
Deletions are applied to :attr:`FakePop3Server.mailbox` only at QUIT, as
RFC 1939 §6 requires.

Faults are set as attributes before connecting: ``retr_err`` (message
numbers answered with ``-ERR``), ``dele_err`` (the same for DELE: the
message is not marked), ``drop_during_retr`` (close the connection
half-way through that message), ``greeting``, ``capabilities`` (``None``
means CAPA fails), ``stls_reply`` (e.g. ``"-ERR no"``), ``pass_err`` (the
``-ERR`` text for a failed login), ``after_stls_inject`` (plaintext bytes
sent together with the STLS ``+OK``), ``raw_after_greeting``, ``uidl_err``
(UIDL answers ``-ERR``), ``last`` (the number ``LAST`` reports; ``None``
means ``-ERR``).
Every command line received is appended to :attr:`commands`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import socket
import ssl
import threading
from dataclasses import dataclass, field

from tests.fakes.loopback import LoopbackServer

__all__ = ["FakePop3Server"]

TIMESTAMP = "<1896.697170952@pop.test>"


@dataclass
class FakePop3Server(LoopbackServer):
    """Serve *mailbox* (raw messages, CRLF) for *users* (name -> password)."""

    mailbox: list[bytes] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=lambda: {"joe": "secret"})
    uids: list[str] | None = None
    greeting: str = f"+OK fake POP3 ready {TIMESTAMP}"
    capabilities: list[str] | None = field(
        default_factory=lambda: ["USER", "UIDL", "TOP", "PIPELINING", "SASL CRAM-MD5 PLAIN"]
    )
    tls_context: ssl.SSLContext | None = None
    stls_reply: str = "+OK begin TLS"
    retr_err: set[int] = field(default_factory=set)
    dele_err: set[int] = field(default_factory=set)
    drop_during_retr: int | None = None
    pass_err: str = "-ERR [AUTH] invalid login"
    uidl_err: bool = False
    after_stls_inject: bytes = b""
    raw_after_greeting: bytes = b""
    cram_challenge: str | None = None
    last: int | str | None = None
    commands: list[str] = field(default_factory=list)
    sessions: int = 0

    def __post_init__(self) -> None:
        if self.uids is None:
            self.uids = [f"uid-{n:04d}" for n in range(1, len(self.mailbox) + 1)]
        self._lock = threading.Lock()
        self.serve()

    def handle_connection(self, conn: socket.socket) -> None:
        self.sessions += 1
        session = _Session(self, conn)
        with contextlib.suppress(OSError, ssl.SSLError, _Hangup):
            session.run()
        session.sock.close()  # the TLS socket after STLS; LoopbackServer closes conn


class _Hangup(Exception):
    pass


class _Session:
    def __init__(self, server: FakePop3Server, sock: socket.socket) -> None:
        self.srv = server
        self.sock: socket.socket = sock
        self.buf = b""
        self.user: str | None = None
        self.authed = False
        self.deleted: set[int] = set()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self, text: str) -> None:
        self.send(text.encode() + b"\r\n")

    def readline(self) -> str:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise _Hangup
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\r\n", 1)
        return raw.decode()

    def _sasl_answer(self) -> str:
        answer = self.readline()
        self.srv.commands.append(answer)
        return answer

    def run(self) -> None:
        self.line(self.srv.greeting)
        if self.srv.raw_after_greeting:
            self.send(self.srv.raw_after_greeting)
        if not self.srv.greeting.startswith("+OK"):
            return
        while True:
            text = self.readline()
            self.srv.commands.append(text)
            verb, _, arg = text.partition(" ")
            handler = getattr(self, "do_" + verb.upper(), None)
            if handler is None:
                self.line("-ERR unknown command")
            elif handler(arg) is False:
                return

    # -- authorization -----------------------------------------------------
    def do_CAPA(self, arg: str) -> None:
        if self.srv.capabilities is None:
            self.line("-ERR CAPA not supported")
            return
        caps = list(self.srv.capabilities)
        if self.srv.tls_context is not None and not isinstance(self.sock, ssl.SSLSocket):
            caps.append("STLS")
        self.line("+OK capability list follows")
        for cap in caps:
            self.line(cap)
        self.line(".")

    def do_STLS(self, arg: str) -> None:
        if self.srv.tls_context is None or not self.srv.stls_reply.startswith("+OK"):
            self.line(self.srv.stls_reply if self.srv.tls_context else "-ERR no TLS here")
            return
        self.send(self.srv.stls_reply.encode() + b"\r\n" + self.srv.after_stls_inject)
        self.sock = self.srv.tls_context.wrap_socket(self.sock, server_side=True)

    def do_USER(self, arg: str) -> None:
        self.user = arg
        self.line("+OK")

    def _login(self, ok: bool) -> None:
        if ok:
            self.authed = True
            self.line("+OK logged in")
        else:
            self.line(self.srv.pass_err)

    def do_PASS(self, arg: str) -> None:
        self._login(self.user is not None and self.srv.users.get(self.user) == arg)

    def do_APOP(self, arg: str) -> None:
        name, _, digest = arg.partition(" ")
        secret = self.srv.users.get(name)
        expected = hashlib.md5((TIMESTAMP + (secret or "")).encode()).hexdigest()
        self.user = name
        self._login(secret is not None and digest == expected)

    def do_AUTH(self, arg: str) -> None:
        mech = arg.upper()
        if mech == "CRAM-MD5":
            challenge = b"<12345.67890@pop.test>"
            self.line("+ " + (self.srv.cram_challenge or base64.b64encode(challenge).decode()))
            answer = self._sasl_answer()
            if answer == "*":
                self.line("-ERR cancelled")
                return
            name, _, digest = base64.b64decode(answer).decode().partition(" ")
            secret = self.srv.users.get(name, "")
            good = hmac.new(secret.encode(), challenge, hashlib.md5).hexdigest()
            self.user = name
            self._login(name in self.srv.users and digest == good)
        elif mech == "PLAIN":
            self.line("+ ")
            answer = self._sasl_answer()
            if answer == "*":
                self.line("-ERR cancelled")
                return
            _authz, name, secret = base64.b64decode(answer).decode().split("\0")
            self.user = name
            self._login(self.srv.users.get(name) == secret)
        elif mech == "LOGIN":
            self.line("+ " + base64.b64encode(b"Username:").decode())
            name_b64 = self._sasl_answer()
            if name_b64 == "*":
                self.line("-ERR cancelled")
                return
            self.line("+ " + base64.b64encode(b"Password:").decode())
            secret_b64 = self._sasl_answer()
            if secret_b64 == "*":
                self.line("-ERR cancelled")
                return
            name = base64.b64decode(name_b64).decode()
            self.user = name
            self._login(self.srv.users.get(name) == base64.b64decode(secret_b64).decode())
        else:
            self.line("-ERR unsupported mechanism")

    # -- transaction -------------------------------------------------------
    def _need_auth(self) -> bool:
        if not self.authed:
            self.line("-ERR not authenticated")
        return self.authed

    def _live(self) -> list[int]:
        return [n for n in range(1, len(self.srv.mailbox) + 1) if n not in self.deleted]

    def _uid(self, n: int) -> str:
        assert self.srv.uids is not None
        return self.srv.uids[n - 1]

    def do_STAT(self, arg: str) -> None:
        if self._need_auth():
            live = self._live()
            size = sum(len(self.srv.mailbox[n - 1]) for n in live)
            self.line(f"+OK {len(live)} {size}")

    def _listing(self, arg: str, value: object) -> None:
        if arg:
            n = int(arg)
            if n not in self._live():
                self.line("-ERR no such message")
            else:
                self.line(f"+OK {n} {value if not callable(value) else value(n)}")
            return
        lines = [f"{n} {value(n) if callable(value) else value}" for n in self._live()]
        self.send(("+OK\r\n" + "".join(x + "\r\n" for x in lines) + ".\r\n").encode())

    def do_UIDL(self, arg: str) -> None:
        if not self._need_auth():
            return
        if self.srv.uidl_err:
            self.line("-ERR UIDL not supported")
            return
        self._listing(arg, self._uid)

    def do_LAST(self, arg: str) -> None:
        if not self._need_auth():
            return
        if self.srv.last is None:
            self.line("-ERR LAST not supported")
        else:
            self.line(f"+OK {self.srv.last}")

    def do_LIST(self, arg: str) -> None:
        if self._need_auth():
            self._listing(arg, lambda n: len(self.srv.mailbox[n - 1]))

    def do_RETR(self, arg: str) -> bool | None:
        if not self._need_auth():
            return None
        n = int(arg)
        if n in self.srv.retr_err or n not in self._live():
            self.line("-ERR no such message")
            return None
        stuffed = b"".join(
            (b"." + ln if ln.startswith(b".") else ln)
            for ln in self.srv.mailbox[n - 1].splitlines(keepends=True)
        )
        if not stuffed.endswith(b"\n"):
            stuffed += b"\r\n"
        if self.srv.drop_during_retr == n:
            self.send(b"+OK\r\n" + stuffed[: len(stuffed) // 2])
            return False
        self.send(b"+OK message follows\r\n" + stuffed + b".\r\n")
        return None

    def do_TOP(self, arg: str) -> bool | None:
        return self.do_RETR(arg.split()[0])

    def do_DELE(self, arg: str) -> None:
        if not self._need_auth():
            return
        n = int(arg)
        if n in self.srv.dele_err:
            self.line("-ERR cannot delete message now")
            return
        if n not in self._live():
            self.line("-ERR no such message")
            return
        self.deleted.add(n)
        self.line(f"+OK message {n} deleted")

    def do_RSET(self, arg: str) -> None:
        self.deleted.clear()
        self.line("+OK")

    def do_NOOP(self, arg: str) -> None:
        self.line("+OK")

    def do_QUIT(self, arg: str) -> bool:
        if self.authed:
            with self.srv._lock:
                keep = [i for i in range(len(self.srv.mailbox)) if i + 1 not in self.deleted]
                self.srv.mailbox[:] = [self.srv.mailbox[i] for i in keep]
                assert self.srv.uids is not None
                self.srv.uids[:] = [self.srv.uids[i] for i in keep]
        self.line("+OK bye")
        return False
