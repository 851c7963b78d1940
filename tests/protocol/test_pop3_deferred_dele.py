"""POP3 DELE pipelined behind RETRs: replies matched in order, read late, never lost.

Part 1 drives :class:`Pop3Session` over a scripted stand-in for the socket
that hands out a fixed server byte transcript in chosen chunks (split at
every position, or one byte per read), so the reply routing is tested
independently of how TCP cuts the stream.  Part 2 runs the whole engine
(:func:`pyfetchmail.engine.poll.poll_query`) against the scripted loopback server
with one DELE answered ``-ERR``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyfetchmail.config.model import MailProtocol, Query, RunControl, Server, User
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.engine.poll import PollContext, poll_query
from pyfetchmail.errors import SocketError
from pyfetchmail.protocols import pop3_session
from pyfetchmail.protocols.base import DeletionReply
from pyfetchmail.protocols.pop3_channel import Pop3Channel
from pyfetchmail.protocols.pop3_session import Pop3Session, Pop3Source
from pyfetchmail.state.uidstore import UidStore
from tests.fakes.fake_pop3 import FakePop3Server
from tests.fakes.memory import FakeDelivery, fake_prepare

pytestmark = pytest.mark.timeout(60)

QUERY = Query(
    Server(pollname="pop.example", protocol=MailProtocol.POP3),
    User(remote="joe", sslproto="", sslcertck=False),
)
BODIES = [f"Subject: m{n}\r\n\r\nbody {n}\r\n.dot {n}\r\n".encode() for n in range(1, 5)]


class ScriptedSocket:
    """Stands in for the client's socket: reads return *chunks* in turn.

    Every write is recorded with how many reply bytes had been read by then,
    so a test can tell whether a command was sent before or after a reply.
    """

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = deque(c for c in chunks if c)
        self.consumed = 0
        self.writes: list[tuple[int, bytes]] = []

    def settimeout(self, timeout: float | None) -> None:
        pass

    def recv(self, size: int) -> bytes:
        if not self.chunks:
            return b""
        chunk = self.chunks.popleft()
        if len(chunk) > size:
            chunk, rest = chunk[:size], chunk[size:]
            self.chunks.appendleft(rest)
        self.consumed += len(chunk)
        return chunk

    def sendall(self, data: bytes) -> None:
        self.writes.append((self.consumed, data))

    def close(self) -> None:
        pass

    def commands(self) -> list[str]:
        return [
            line.decode()
            for _, data in self.writes
            for line in data.split(b"\r\n")
            if line and not line.startswith((b"USER", b"PASS"))
        ]


def _login(pipelining: bool) -> bytes:
    caps = b"USER\r\nUIDL\r\n" + (b"PIPELINING\r\n" if pipelining else b"")
    return (
        b"+OK ready\r\n"
        + b"+OK caps\r\n" + caps + b".\r\n"
        + b"+OK\r\n+OK logged in\r\n"
    )  # fmt: skip


def _listing() -> bytes:
    n = len(BODIES)
    uidl = b"".join(f"{i} u{i}\r\n".encode() for i in range(1, n + 1))
    sizes = b"".join(f"{i} {len(b)}\r\n".encode() for i, b in enumerate(BODIES, start=1))
    total = sum(len(b) for b in BODIES)
    return f"+OK {n} {total}\r\n".encode() + b"+OK\r\n" + uidl + b".\r\n+OK\r\n" + sizes + b".\r\n"


def _retr(n: int) -> bytes:
    stuffed = BODIES[n - 1].replace(b"\r\n.", b"\r\n..")
    return b"+OK message follows\r\n" + stuffed + b".\r\n"


def _dele(n: int, *, err: bool = False) -> bytes:
    return b"-ERR cannot delete now\r\n" if err else f"+OK message {n} deleted\r\n".encode()


#: With a window of 2 RETRs and a DELE after each yielded message, the
#: client sends RETR 1, RETR 2, DELE 1, RETR 3, DELE 2, RETR 4, DELE 3,
#: DELE 4, QUIT, and a server answers in that order.  DELE 2 is refused.
PIPELINED_REPLIES = (
    _login(True)
    + _listing()
    + _retr(1) + _retr(2) + _dele(1) + _retr(3) + _dele(2, err=True)
    + _retr(4) + _dele(3) + _dele(4)
    + b"+OK bye\r\n"
)  # fmt: skip
PIPELINED_COMMANDS = [
    "CAPA", "STAT", "UIDL", "LIST",
    "RETR 1", "RETR 2", "DELE 1", "RETR 3", "DELE 2", "RETR 4", "DELE 3", "DELE 4",
    "QUIT",
]  # fmt: skip


def _session(sock: ScriptedSocket) -> Pop3Session:
    chan = Pop3Channel(sock, "pop.example", 5.0)  # type: ignore[arg-type]
    session = Pop3Session(chan, QUERY, None, tls_active=False)
    session._start("pw")
    return session


def _run_pipelined(chunks: list[bytes]) -> tuple[ScriptedSocket, list[tuple[int, list[str]]]]:
    """Fetch and delete all four; return the socket and what each step reported."""
    sock = ScriptedSocket(chunks)
    session = _session(sock)
    listing = session.select(None)
    seen: list[tuple[int, list[str]]] = []
    for ref, msg in session.retrieve(listing.messages):
        with msg:
            assert msg.read_all() == BODIES[ref.number - 1]
        seen.append((ref.number, [_show(r) for r in session.deletion_replies()]))
        session.delete(ref)
    seen.append((0, [_show(r) for r in session.deletion_replies(wait=True)]))
    session.close()
    return sock, seen


def _show(reply: DeletionReply) -> str:
    return f"{reply.ref.number}:{'ok' if reply.confirmed else reply.error}"


EXPECTED_STEPS = [
    (1, []),
    (2, []),
    (3, ["1:ok"]),  # DELE 1's reply came before RETR 3's
    (4, ["2:joe@pop.example: DELE 2 failed: cannot delete now"]),
    (0, ["3:ok", "4:ok"]),  # collected on demand, before QUIT
]


@pytest.fixture(autouse=True)
def small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pop3_session, "WINDOW_COMMANDS", 2)


def test_dele_replies_interleaved_with_retr_whole_stream() -> None:
    sock, steps = _run_pipelined([PIPELINED_REPLIES])
    assert steps == EXPECTED_STEPS
    assert sock.commands() == PIPELINED_COMMANDS


def test_dele_replies_interleaved_with_retr_split_at_every_position() -> None:
    for cut in range(1, len(PIPELINED_REPLIES)):
        chunks = [PIPELINED_REPLIES[:cut], PIPELINED_REPLIES[cut:]]
        sock, steps = _run_pipelined(chunks)
        assert steps == EXPECTED_STEPS, cut
        assert sock.commands() == PIPELINED_COMMANDS, cut


def test_dele_replies_interleaved_with_retr_one_byte_per_read() -> None:
    chunks = _bytewise(PIPELINED_REPLIES)
    sock, steps = _run_pipelined(chunks)
    assert steps == EXPECTED_STEPS
    assert sock.commands() == PIPELINED_COMMANDS


def _bytewise(data: bytes) -> list[bytes]:
    return [bytes([b]) for b in data]


def test_dele_returns_before_its_reply_and_quit_waits_for_all_replies() -> None:
    sock = ScriptedSocket(_bytewise(PIPELINED_REPLIES))  # consumed = bytes parsed
    session = _session(sock)
    refs = session.select(None).messages
    for ref, msg in session.retrieve(refs):
        msg.close()
        read_before = sock.consumed
        session.delete(ref)
        assert sock.consumed == read_before  # returned without reading anything
    # The last two DELE replies have not been asked for: close() must read them.
    before_quit = len(PIPELINED_REPLIES) - len(b"+OK bye\r\n")
    session.close()
    quit_at = next(at for at, data in sock.writes if data.startswith(b"QUIT"))
    assert quit_at == before_quit
    # Nothing read at close is lost: the replies are still reported.
    assert [_show(r) for r in session.deletion_replies()][-2:] == ["3:ok", "4:ok"]


def test_expunge_collects_outstanding_dele_replies() -> None:
    sock = ScriptedSocket(_bytewise(PIPELINED_REPLIES))
    session = _session(sock)
    refs = session.select(None).messages
    shown: list[str] = []
    for ref, msg in session.retrieve(refs):
        msg.close()
        shown += [_show(r) for r in session.deletion_replies()]
        session.delete(ref)
    session.expunge()
    shown += [_show(r) for r in session.deletion_replies()]
    assert [s.split(":")[0] for s in shown] == ["1", "2", "3", "4"]
    assert sock.consumed == len(PIPELINED_REPLIES) - len(b"+OK bye\r\n")
    session.close()


def test_without_pipelining_dele_is_answered_before_returning() -> None:
    replies = (
        _login(False) + _listing()
        + _retr(1) + _dele(1) + _retr(2) + _dele(2, err=True)
        + _retr(3) + _dele(3) + _retr(4) + _dele(4) + b"+OK bye\r\n"
    )  # fmt: skip
    for chunks in ([replies], _bytewise(replies)):
        sock = ScriptedSocket(chunks)
        session = _session(sock)
        got = []
        for ref, msg in session.retrieve(session.select(None).messages):
            msg.close()
            session.delete(ref)
            got += [_show(r) for r in session.deletion_replies()]
        session.close()
        assert got == [
            "1:ok",
            "2:joe@pop.example: DELE 2 failed: cannot delete now",
            "3:ok",
            "4:ok",
        ]
        assert sock.commands() == [
            "CAPA", "STAT", "UIDL", "LIST",
            "RETR 1", "DELE 1", "RETR 2", "DELE 2", "RETR 3", "DELE 3", "RETR 4", "DELE 4",
            "QUIT",
        ]  # fmt: skip


def test_connection_lost_before_dele_reply_reports_nothing_and_sends_no_quit() -> None:
    cut = PIPELINED_REPLIES.index(_dele(1))
    sock = ScriptedSocket([PIPELINED_REPLIES[:cut]])
    session = _session(sock)
    refs = session.select(None).messages
    gen = session.retrieve(refs)
    ref, msg = next(gen)
    msg.close()
    session.delete(ref)
    next(gen)[1].close()  # RETR 2 was answered before DELE 1
    with pytest.raises(SocketError):
        next(gen)  # EOF where DELE 1's reply should be
    with pytest.raises(SocketError):
        session.deletion_replies(wait=True)
    assert session.deletion_replies() == []
    session.close()
    assert not any(data.startswith(b"QUIT") for _, data in sock.writes)


# -- Part 2: the engine against the scripted loopback server ----------------


def _loopback_query(port: int) -> Query:
    server = Server(pollname="127.0.0.1", service=str(port), protocol=MailProtocol.POP3, dns=False)
    return Query(server, User(remote="joe", sslproto="", sslcertck=False))


def _context(store: UidStore, delivery: FakeDelivery) -> PollContext:
    return PollContext(
        run=RunControl(),
        options=CommandLineOptions(),
        identity=None,
        uidstore=store,
        source_factory=lambda q, p, c: Pop3Source(q, "secret", timeout=10),
        delivery_factory=lambda q, c, t: delivery,
        prepare=fake_prepare(),
        resolve_truename=lambda q: q.server.queryname,
        sleep=lambda s: None,
    )


@pytest.fixture
def server() -> Iterator[FakePop3Server]:
    mail = [f"Subject: s{n}\r\n\r\nbody {n}\r\n".encode() for n in range(1, 6)]
    with FakePop3Server(mailbox=mail, dele_err={3}) as srv:
        yield srv


def test_engine_refused_dele_stays_pending_and_is_deleted_next_poll(
    server: FakePop3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    idfile = str(tmp_path / "fetchids")
    query = _loopback_query(server.port)
    delivery = FakeDelivery()
    caplog.set_level(logging.INFO, logger="pyfetchmail")
    assert poll_query(query, _context(UidStore.load(idfile), delivery)) == 0
    assert len(delivery.accepted) == 5
    reading = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reading")]
    assert reading == [
        f"reading message joe@127.0.0.1:{n} of 5 ({len(server_body(n))} octets)"
        + (" not flushed" if n == 3 else " flushed")
        for n in range(1, 6)
    ]
    assert any("DELE 3 failed" in r.getMessage() for r in caplog.records)
    # The others were deleted at QUIT; message 3 stays, recorded as pending.
    assert server.uids == ["uid-0003"]
    store = UidStore.load(idfile)
    assert store.folder_state("joe", "127.0.0.1").pending_delete == {"uid-0003"}
    # Next poll: DELE is accepted now; the message is deleted without refetching.
    server.dele_err.clear()
    caplog.clear()
    assert poll_query(query, _context(UidStore.load(idfile), delivery)) == 1  # NOMAIL
    assert len(delivery.accepted) == 5
    assert server.mailbox == []
    assert "RETR 1" in server.commands
    assert server.commands.count("RETR 3") == 1
    assert UidStore.load(idfile).folder_state("joe", "127.0.0.1").pending_delete == set()


def server_body(n: int) -> bytes:
    return f"Subject: s{n}\r\n\r\nbody {n}\r\n".encode()


def test_engine_many_messages_dele_interleaved_on_the_wire(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A window of 2 RETRs (autouse fixture) over 12 messages: every DELE but
    # the last ones is answered between RETR bodies on the real socket.
    mail = [f"Subject: t{n}\r\n\r\nbody {n}\r\n".encode() for n in range(1, 13)]
    with FakePop3Server(mailbox=list(mail)) as srv:
        delivery = FakeDelivery()
        caplog.set_level(logging.INFO, logger="pyfetchmail")
        store = UidStore.load(str(tmp_path / "fetchids"))
        assert poll_query(_loopback_query(srv.port), _context(store, delivery)) == 0
        assert srv.mailbox == []
    assert delivery.accepted == mail
    reading = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reading")]
    assert reading == [
        f"reading message joe@127.0.0.1:{n} of 12 ({len(mail[n - 1])} octets) flushed"
        for n in range(1, 13)
    ]
