"""Pop3Source against the scripted loopback server (faults Dovecot cannot produce)."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import trustme

from pyfetchmail.config.model import Auth, MailProtocol, Query, Server, User
from pyfetchmail.errors import (
    AuthError,
    RemoteProtocolError,
    ServerBusy,
    ServerError,
    ServerLockBusy,
    SocketError,
)
from pyfetchmail.protocols.base import MessageRef
from pyfetchmail.protocols.pop3_session import Pop3Session, Pop3Source
from pyfetchmail.protocols.transcript import TRANSCRIPT_LOGGER
from tests.fakes.fake_pop3 import FakePop3Server

pytestmark = pytest.mark.timeout(60)

MESSAGES = [
    b"From: a@example.org\r\nSubject: one\r\n\r\nHello one\r\n.dot line\r\n",
    b"From: b@example.org\r\nSubject: two\r\n\r\nbody two\r\n",
    b"From: c@example.org\r\nSubject: three\r\n\r\n.\r\n..\r\nend\r\n",
]


def make_query(port: int, **user_fields: object) -> Query:
    fields: dict[str, object] = {"sslproto": "", "sslcertck": False}
    fields.update(user_fields)
    server_fields: dict[str, object] = {"protocol": MailProtocol.POP3}
    server_fields.update({k: fields.pop(k) for k in ("auth", "protocol", "timeout") if k in fields})
    server = Server(pollname="127.0.0.1", service=str(port), **server_fields)  # type: ignore[arg-type]
    return Query(server, User(remote="joe", **fields))  # type: ignore[arg-type]


@pytest.fixture
def fake() -> Iterator[FakePop3Server]:
    with FakePop3Server(mailbox=list(MESSAGES)) as srv:
        yield srv


def _fetch_all(session: Pop3Session) -> list[bytes]:
    listing = session.select(None)
    out = []
    for _ref, msg in session.retrieve(listing.messages):
        with msg:
            out.append(msg.read_all())
    return out


def _consume(
    session: Pop3Session, refs: Sequence[MessageRef], got: list[int], *, delete: bool
) -> None:
    for ref, msg in session.retrieve(refs):
        msg.close()
        got.append(ref.number)
        if delete:
            session.delete(ref)


def test_plain_session_select_retrieve_delete_quit(fake: FakePop3Server) -> None:
    session = Pop3Source(make_query(fake.port), "secret").open()
    assert session.protocol_name == "POP3"
    assert session.peer_address == "127.0.0.1"
    listing = session.select(None)
    assert listing.count == 3
    assert listing.total_octets == sum(len(m) for m in MESSAGES)
    assert [(r.number, r.uid, r.size) for r in listing.messages] == [
        (1, "uid-0001", len(MESSAGES[0])),
        (2, "uid-0002", len(MESSAGES[1])),
        (3, "uid-0003", len(MESSAGES[2])),
    ]
    got = []
    for ref, msg in session.retrieve(listing.messages):
        got.append(msg.read_all())
        msg.close()
        session.delete(ref)
    assert got == MESSAGES
    session.close()
    assert fake.mailbox == []
    # auth any without CRAM-MD5 success path: CRAM-MD5 tried first (advertised).
    assert fake.commands[:2] == ["CAPA", "AUTH CRAM-MD5"]
    assert "QUIT" in fake.commands


def test_close_without_commit_keeps_deleted_messages(fake: FakePop3Server) -> None:
    session = Pop3Source(make_query(fake.port), "secret").open()
    listing = session.select(None)
    session.delete(listing.messages[0])
    session.close(commit=False)
    assert fake.mailbox == MESSAGES
    assert "QUIT" not in fake.commands


def test_retr_err_yields_earlier_messages_then_server_error(fake: FakePop3Server) -> None:
    fake.retr_err = {2}
    session = Pop3Source(make_query(fake.port), "secret").open()
    listing = session.select(None)
    got: list[int] = []
    with pytest.raises(ServerError, match="RETR 2 failed"):
        _consume(session, listing.messages, got, delete=False)
    assert got == [1]
    # The session is still in step: message 3 can be fetched and deleted.
    [(ref3, msg3)] = list(session.retrieve(listing.messages[2:]))
    assert msg3.read_all() == MESSAGES[2]
    msg3.close()
    session.delete(ref3)
    session.close()
    assert fake.mailbox == MESSAGES[:2]


def test_connection_dropped_mid_retr(fake: FakePop3Server) -> None:
    fake.drop_during_retr = 2
    session = Pop3Source(make_query(fake.port), "secret").open()
    listing = session.select(None)
    got: list[int] = []
    with pytest.raises(SocketError, match=r"closed the connection|read from server failed"):
        _consume(session, listing.messages, got, delete=True)
    assert got == [1]
    session.close()  # must not hang or raise: the channel is broken
    assert fake.mailbox == MESSAGES  # never QUIT: DELE 1 rolled back


def test_pipelined_retr_window_and_dele_behind_it() -> None:
    mailbox = [b"Subject: m%d\r\n\r\n" % i + b"x" * 1000 + b"\r\n" for i in range(40)]
    with FakePop3Server(mailbox=list(mailbox)) as srv:
        session = Pop3Source(make_query(srv.port), "secret").open()
        listing = session.select(None)
        got = []
        for ref, msg in session.retrieve(listing.messages):
            got.append(msg.read_all())
            msg.close()
            if ref.number % 2:
                session.delete(ref)  # DELE while later RETRs are in flight
        session.close()
        assert got == mailbox
        assert srv.mailbox == mailbox[1::2]
        # Pipelining happened: a DELE was received after a later RETR was sent.
        first_dele = srv.commands.index("DELE 1")
        assert srv.commands.index("RETR 2") < first_dele
        assert srv.commands.index("LIST") == srv.commands.index("UIDL") + 1


def test_no_pipelining_means_one_retr_at_a_time() -> None:
    with FakePop3Server(mailbox=list(MESSAGES), capabilities=["USER", "UIDL"]) as srv:
        session = Pop3Source(make_query(srv.port), "secret").open()
        listing = session.select(None)
        for ref, msg in session.retrieve(listing.messages):
            msg.close()
            session.delete(ref)
        session.close()
        cmds = [c for c in srv.commands if c.split()[0] in ("RETR", "DELE")]
        assert cmds == ["RETR 1", "DELE 1", "RETR 2", "DELE 2", "RETR 3", "DELE 3"]


def test_large_message_is_spooled_to_disk() -> None:
    big = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 5000 + b".leading dot\r\n"
    with FakePop3Server(mailbox=[big]) as srv:
        session = Pop3Source(make_query(srv.port), "secret").open()
        listing = session.select(None)
        [(_ref, msg)] = list(session.retrieve(listing.messages))
        with msg:
            assert not msg.in_memory
            assert msg.size == len(big)
            assert msg.read_all() == big
        session.close()


def test_uidl_failure_gives_no_uids() -> None:
    with FakePop3Server(mailbox=list(MESSAGES), uidl_err=True) as srv:
        session = Pop3Source(make_query(srv.port), "secret").open()
        listing = session.select(None)
        assert [r.uid for r in listing.messages] == [None, None, None]
        assert [r.size for r in listing.messages] == [len(m) for m in MESSAGES]
        session.close()


@pytest.mark.parametrize(
    ("err", "exc"),
    [
        ("-ERR [IN-USE] mailbox locked by another session", ServerLockBusy),
        ("-ERR [LOGIN-DELAY] wait a bit", ServerLockBusy),
        ("-ERR Service temporarily unavailable", ServerBusy),
        ("-ERR [AUTH] invalid login", AuthError),
    ],
)
def test_login_failures_are_classified(err: str, exc: type[Exception]) -> None:
    with FakePop3Server(mailbox=[], pass_err=err, capabilities=["USER"]) as srv:
        with pytest.raises(exc) as info:
            Pop3Source(make_query(srv.port), "wrong").open()
        if exc is AuthError:
            assert str(info.value) == "Authorization failure on joe@127.0.0.1"


def test_auth_any_falls_back_from_cram_md5_and_never_logs_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = "S3cr3t-Pa55"
    with FakePop3Server(mailbox=[], users={"joe": "other"}, pass_err="-ERR bad " + password) as srv:
        caplog.set_level(logging.DEBUG)
        caplog.set_level(logging.DEBUG, logger=TRANSCRIPT_LOGGER)
        with pytest.raises(AuthError) as info:
            Pop3Source(make_query(srv.port), password).open()
        assert "AUTH CRAM-MD5" in srv.commands
        assert "USER joe" in srv.commands  # fell through to USER/PASS
        assert password not in str(info.value)
        assert password not in caplog.text
        assert "POP3> PASS *" in caplog.text
        assert any(r.name == TRANSCRIPT_LOGGER for r in caplog.records)


def test_forced_cram_md5_and_bad_challenge_is_cancelled() -> None:
    with FakePop3Server(mailbox=list(MESSAGES), cram_challenge="!!not base64!!") as srv:
        with pytest.raises(AuthError):
            Pop3Source(make_query(srv.port, auth=Auth.CRAM_MD5), "secret").open()
        assert srv.commands == ["CAPA", "AUTH CRAM-MD5", "*"]
    with FakePop3Server(mailbox=list(MESSAGES)) as srv:
        session = Pop3Source(make_query(srv.port, auth=Auth.CRAM_MD5), "secret").open()
        session.close()
        assert "USER joe" not in srv.commands


def test_apop_login(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=TRANSCRIPT_LOGGER)
    with FakePop3Server(mailbox=list(MESSAGES)) as srv:
        session = Pop3Source(make_query(srv.port, protocol=MailProtocol.APOP), "secret").open()
        session.close()
        assert srv.commands[1].startswith("APOP joe ")
        assert "POP3> APOP joe *" in caplog.text
        digest = srv.commands[1].split()[2]
        assert digest not in caplog.text


@pytest.mark.parametrize(
    ("greeting", "match"),
    [
        ("+OK no timestamp here", "Required APOP timestamp not found"),
        ("+OK bad <stamp without at>", "Invalid APOP timestamp"),
    ],
)
def test_apop_rejects_bad_timestamps(greeting: str, match: str) -> None:
    with FakePop3Server(mailbox=[], greeting=greeting) as srv:
        with pytest.raises(AuthError, match=match):
            Pop3Source(make_query(srv.port, protocol=MailProtocol.APOP), "secret").open()
        assert not any(c.startswith("APOP") for c in srv.commands)


def test_plain_sasl_only_over_tls() -> None:
    with FakePop3Server(mailbox=[], capabilities=["USER", "SASL PLAIN"]) as srv:
        Pop3Source(make_query(srv.port), "secret").open().close()
        assert "AUTH PLAIN" not in srv.commands
        assert "USER joe" in srv.commands


@pytest.mark.parametrize(
    ("greeting", "exc"),
    [
        ("-ERR [IN-USE] locked", ServerLockBusy),
        ("-ERR service unavailable", ServerBusy),
        ("* OK IMAP4rev1", RemoteProtocolError),
    ],
)
def test_bad_greetings(greeting: str, exc: type[Exception]) -> None:
    with FakePop3Server(mailbox=[], greeting=greeting) as srv, pytest.raises(exc):
        Pop3Source(make_query(srv.port), "secret").open()


def test_timeout_waiting_for_greeting() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        query = make_query(port)
        with pytest.raises(ServerError, match=r"timeout after 0\.5 seconds waiting for server"):
            Pop3Source(query, "secret", timeout=0.5).open()


def test_connection_refused_is_socket_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    with pytest.raises(SocketError, match=r"connection to 127\.0\.0\.1 failed"):
        Pop3Source(make_query(port), "secret").open()


# --- STLS -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(ctx)
    return ctx


@pytest.fixture
def cafile(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def _tls_query(port: int, cafile: str, **fields: object) -> Query:
    base: dict[str, object] = {
        "sslproto": None,
        "sslcertck": True,
        "sslcertfile": cafile,
        "sslcommonname": "localhost",
    }
    base.update(fields)
    return make_query(port, **base)


def test_stls_mandatory_by_default_and_recapa(server_ctx: ssl.SSLContext, cafile: str) -> None:
    with FakePop3Server(mailbox=list(MESSAGES), tls_context=server_ctx) as srv:
        session = Pop3Source(_tls_query(srv.port, cafile), "secret").open()
        assert _fetch_all(session) == MESSAGES
        session.close()
        assert srv.commands[:3] == ["CAPA", "STLS", "CAPA"]
        assert "STLS" not in session.capabilities.lines


def test_stls_missing_fails_closed_without_sending_credentials(cafile: str) -> None:
    with FakePop3Server(mailbox=list(MESSAGES)) as srv:
        with pytest.raises(SocketError, match=r"127\.0\.0\.1: upgrade to TLS failed\."):
            Pop3Source(_tls_query(srv.port, cafile), "secret").open()
        assert srv.commands == ["CAPA", "STLS"]


def test_stls_may_continues_in_plaintext_when_not_offered() -> None:
    with FakePop3Server(mailbox=[]) as srv:
        query = make_query(srv.port, sslproto=None, sslcertck=False)
        Pop3Source(query, "secret").open().close()
        assert "STLS" not in srv.commands


def test_stls_with_wrong_ca_fails(server_ctx: ssl.SSLContext, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with FakePop3Server(mailbox=[], tls_context=server_ctx) as srv:
        with pytest.raises(SocketError, match="certificate verification"):
            Pop3Source(_tls_query(srv.port, str(other)), "secret").open()
        assert "USER joe" not in srv.commands


def test_stls_injected_plaintext_is_rejected(server_ctx: ssl.SSLContext, cafile: str) -> None:
    with FakePop3Server(
        mailbox=[], tls_context=server_ctx, after_stls_inject=b"+OK injected\r\n"
    ) as srv:
        with pytest.raises(RemoteProtocolError, match="after its STLS reply"):
            Pop3Source(_tls_query(srv.port, cafile), "secret").open()
        assert "USER joe" not in srv.commands


def test_plugin_connection(tmp_path: Path) -> None:
    # A plugin that just relays to the fake server (like `nc %h %p`).
    relay = tmp_path / "relay.py"
    relay.write_text(
        "import socket, sys, threading\n"
        "s = socket.create_connection((sys.argv[1], int(sys.argv[2])))\n"
        "def up():\n"
        "    while (d := sys.stdin.buffer.raw.read(65536)):\n"
        "        s.sendall(d)\n"
        "threading.Thread(target=up, daemon=True).start()\n"
        "while (d := s.recv(65536)):\n"
        "    sys.stdout.buffer.write(d); sys.stdout.buffer.flush()\n"
    )
    with FakePop3Server(mailbox=list(MESSAGES)) as srv:
        query = make_query(srv.port)
        server = query.server.__class__(
            pollname="127.0.0.1",
            protocol=MailProtocol.POP3,
            service=str(srv.port),
            plugin=f"python3 {relay} %h %p",
        )
        session = Pop3Source(Query(server, query.user), "secret").open()
        assert session.peer_address is None
        assert _fetch_all(session) == MESSAGES
        session.close()
    assert threading.active_count() >= 1


def test_auth_ssh_sends_no_credentials(fake: FakePop3Server) -> None:
    session = Pop3Source(make_query(fake.port, auth=Auth.SSH), None).open()
    session.close()
    assert fake.commands == ["CAPA", "QUIT"]


def test_auth_external_refused_is_auth_error(fake: FakePop3Server) -> None:
    with pytest.raises(AuthError):
        Pop3Source(make_query(fake.port, auth=Auth.EXTERNAL), None).open()
    assert fake.commands == ["CAPA", "AUTH EXTERNAL"]


def test_forced_password_auth_and_transcript(
    fake: FakePop3Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=TRANSCRIPT_LOGGER)
    session = Pop3Source(make_query(fake.port, auth=Auth.PASSWORD), "secret").open()
    session.close()
    assert fake.commands == ["CAPA", "USER joe", "PASS secret", "QUIT"]
    lines = [r.getMessage() for r in caplog.records if r.name == TRANSCRIPT_LOGGER]
    assert lines[0] == "POP3< +OK fake POP3 ready <1896.697170952@pop.test>"
    assert "POP3> USER joe" in lines
    assert "POP3> PASS *" in lines
    assert not any("secret" in line for line in lines)
