"""SMTP sink against a real aiosmtpd listener on loopback (spec §6.2, §6.3)."""

from __future__ import annotations

import logging
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pyfetchmail.config.model import NameMapping, Query, RunControl, Server, User
from pyfetchmail.delivery.base import Envelope, Outcome
from pyfetchmail.delivery.factory import make_delivery
from pyfetchmail.delivery.smtp import SmtpDelivery, SmtpTimeouts, classify_reply, parse_hunt_entry
from pyfetchmail.errors import SmtpConnectError
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.mail.prepare import TraceInfo, prepare_message
from testbed.dovecot import free_ports
from testbed.fastsink import FastSmtpSink
from testbed.sinks import SmtpSink

pytestmark = pytest.mark.timeout(60)

FAST = SmtpTimeouts(*(5.0,) * 8)
RUN = RunControl(postmaster="postmaster")
MSG = b"From: s@remote.example\r\nTo: joe@remote.example\r\nSubject: t\r\n\r\nbody\r\n.dot line\r\n"


def _query(sink_hosts: tuple[str, ...], **kw: object) -> Query:
    server_kw = kw.pop("server", {})
    assert isinstance(server_kw, dict)
    kw.setdefault("localnames", (NameMapping("alice", "alice"),))
    return Query(
        Server("pop.test", **server_kw),
        User("joe", smtphunt=sink_hosts, **kw),  # type: ignore[arg-type]
    )


def _sink(q: Query, run: RunControl = RUN) -> SmtpDelivery:
    return SmtpDelivery(q, run, "vm", server_truename="pop.test", timeouts=FAST)


@pytest.fixture
def delivered(smtp_sink: SmtpSink) -> Iterator[SmtpDelivery]:
    d = _sink(_query((f"127.0.0.1/{smtp_sink.port}",)))
    yield d
    d.close()


def test_envelope_bytes_and_size(smtp_sink: SmtpSink, delivered: SmtpDelivery) -> None:
    msg = SpooledMessage.from_bytes(MSG, announced_size=304)
    result = delivered.deliver(msg, Envelope("s@remote.example", ("alice",)))
    assert result.outcome is Outcome.ACCEPTED
    assert result.code == 250
    assert result.where == f"127.0.0.1/{smtp_sink.port}"
    (got,) = smtp_sink.wait_for(1)
    assert got.mail_from == "s@remote.example"
    assert got.rcpt_tos == ["alice@127.0.0.1"]
    assert got.data == MSG  # dot-stuffed on the wire, unstuffed by the sink
    assert not [o for o in got.mail_options if o.startswith("SIZE")]  # SIZE not advertised


def test_size_parameter_and_552() -> None:
    with SmtpSink(data_size_limit=1000) as sink:
        d = _sink(_query((f"127.0.0.1/{sink.port}",)))
        try:
            ok = d.deliver(
                SpooledMessage.from_bytes(MSG, announced_size=304), Envelope("a@b", ("x",))
            )
            big = d.deliver(
                SpooledMessage.from_bytes(MSG, announced_size=5000), Envelope("a@b", ("x",))
            )
        finally:
            d.close()
        assert ok.outcome is Outcome.ACCEPTED
        assert "SIZE=304" in sink.wait_for(1)[0].mail_options
        assert (big.outcome, big.code) == (Outcome.PERMFAIL, 552)


def test_prepared_sample_message_through_smtp(smtp_sink: SmtpSink) -> None:
    q = _query((f"localhost/{smtp_sink.port}",))
    info = TraceInfo(
        "127.0.0.1",
        "127.0.0.1",
        "POP3",
        "vm",
        "127.0.0.1",
        "joe",
        None,
        False,
        datetime(2026, 11, 21, 7, 33, 27, tzinfo=UTC),
    )
    raw = SpooledMessage.from_bytes(
        b"Return-Path: <sender@remote.example>\r\nTo: joe\r\n\r\nHi\r\n"
    )
    p = prepare_message(raw, q, RUN, info)
    d = make_delivery(q, RUN, "vm", server_truename="127.0.0.1")
    try:
        assert d.deliver(p.message, p.envelope).outcome is Outcome.ACCEPTED
    finally:
        d.close()
    (got,) = smtp_sink.wait_for(1)
    assert got.rcpt_tos == ["alice@localhost"]
    assert got.mail_from == "sender@remote.example"
    assert b"\tfor <alice@localhost> (single-drop); Sat, 21 Nov 2026" in got.data
    assert b"Return-Path" not in got.data
    assert got.data.endswith(b"To: joe@127.0.0.1\r\n\r\nHi\r\n")


@pytest.mark.parametrize(
    ("header", "pass8bits", "option"),
    [
        (b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\n", False, "BODY=8BITMIME"),
        (b"Content-Transfer-Encoding: 7bit\r\n", False, "BODY=7BIT"),
        (b"Subject: plain\r\n", True, "BODY=8BITMIME"),
        (b"Subject: plain\r\n", False, None),
    ],
)
def test_body_parameter(
    smtp_sink: SmtpSink, header: bytes, pass8bits: bool, option: str | None
) -> None:
    d = _sink(_query((f"127.0.0.1/{smtp_sink.port}",), pass8bits=pass8bits))
    try:
        d.deliver(SpooledMessage.from_bytes(header + b"\r\nb\xe9\r\n"), Envelope("a@b", ("x",)))
    finally:
        d.close()
    (got,) = smtp_sink.wait_for(1)
    body_opts = [o for o in got.mail_options if o.startswith("BODY=")]
    assert body_opts == ([option] if option else [])


def test_connection_reused_and_batchlimit(smtp_sink: SmtpSink) -> None:
    clients: list[object] = []
    d = _sink(_query((f"127.0.0.1/{smtp_sink.port}",), batchlimit=2))
    try:
        for _ in range(5):
            result = d.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("x",)))
            assert result.outcome is Outcome.ACCEPTED
            clients.append(d._client)
    finally:
        d.close()
    assert len(smtp_sink.wait_for(5)) == 5
    # two messages per connection: a new client after every second message
    assert clients[0] is clients[1]
    assert clients[1] is not clients[2]
    assert clients[2] is clients[3]
    assert clients[3] is not clients[4]


def test_tempfail_permfail_and_spam(smtp_sink: SmtpSink) -> None:
    q = _query((f"127.0.0.1/{smtp_sink.port}",), antispam=(571,))
    d = _sink(q)
    smtp_sink.reply_to_data(1, "451 4.3.0 try later")
    smtp_sink.reply_to_data(2, "550 5.7.1 rejected")
    smtp_sink.reply_to_data(3, "571 spam")
    smtp_sink.reply_to_data(4, "530 5.7.0 Must issue a STARTTLS command first")
    outcomes = []
    try:
        for _ in range(5):
            r = d.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("x",)))
            outcomes.append((r.outcome, r.code, r.spam))
    finally:
        d.close()
    assert outcomes == [
        (Outcome.TEMPFAIL, 451, False),
        (Outcome.PERMFAIL, 550, False),
        (Outcome.PERMFAIL, 571, True),
        (Outcome.TEMPFAIL, 530, False),
        (Outcome.ACCEPTED, 250, False),
    ]
    assert len(smtp_sink.received) == 1  # the connection survived every refusal (RSET)


def test_mail_from_refused(smtp_sink: SmtpSink, delivered: SmtpDelivery) -> None:
    smtp_sink.reject_mail("bad@x", "553 5.1.8 bad sender")
    r = delivered.deliver(SpooledMessage.from_bytes(MSG), Envelope("bad@x", ("x",)))
    assert (r.outcome, r.code) == (Outcome.PERMFAIL, 553)
    assert (
        delivered.deliver(SpooledMessage.from_bytes(MSG), Envelope("ok@x", ("x",))).outcome
        is Outcome.ACCEPTED
    )


def test_rcpt_rejections(smtp_sink: SmtpSink, delivered: SmtpDelivery) -> None:
    smtp_sink.reject_rcpt("bob@127.0.0.1", "550 5.1.1 no such user")
    r = delivered.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("alice", "bob")))
    assert r.outcome is Outcome.ACCEPTED
    assert [x.recipient for x in r.rejected_recipients] == ["bob@127.0.0.1"]
    (got,) = smtp_sink.wait_for(1)
    assert got.rcpt_tos == ["alice@127.0.0.1"]
    assert (
        b"X-Fetchmail-Warning: SMTP listener rejected local recipient addresses: "
        b"bob@127.0.0.1\r\n\r\nbody" in got.data
    )


def test_rcpt_tempfail_keeps_message(smtp_sink: SmtpSink, delivered: SmtpDelivery) -> None:
    smtp_sink.reject_rcpt("bob@127.0.0.1", "452 4.2.2 mailbox full")
    r = delivered.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("alice", "bob")))
    assert (r.outcome, r.code) == (Outcome.TEMPFAIL, 452)
    assert smtp_sink.received == []


def test_no_recipient_accepted_goes_to_postmaster(
    smtp_sink: SmtpSink, delivered: SmtpDelivery
) -> None:
    smtp_sink.reject_rcpt("alice@127.0.0.1")
    r = delivered.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("alice",)))
    assert r.outcome is Outcome.ACCEPTED
    (got,) = smtp_sink.wait_for(1)
    assert got.rcpt_tos == ["postmaster@127.0.0.1"]
    smtp_sink.reject_rcpt("postmaster@127.0.0.1")
    r2 = delivered.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("alice",)))
    assert (r2.outcome, r2.code) == (Outcome.PERMFAIL, 550)


def test_no_recipient_and_no_postmaster(smtp_sink: SmtpSink) -> None:
    smtp_sink.reject_rcpt("alice@127.0.0.1")
    d = _sink(_query((f"127.0.0.1/{smtp_sink.port}",)), RunControl(postmaster=""))
    try:
        r = d.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("alice",)))
    finally:
        d.close()
    assert r.outcome is Outcome.PERMFAIL
    assert r.text == "no address matches; no postmaster set."


def test_smtpname_and_smtpaddress(smtp_sink: SmtpSink) -> None:
    q = _query((f"127.0.0.1/{smtp_sink.port}",), smtpname="one@corp.test")
    d = _sink(q)
    try:
        d.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("alice", "bob", "x@y")))
    finally:
        d.close()
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ["one@corp.test", "x@y"]
    d2 = _sink(_query((f"127.0.0.1/{smtp_sink.port}",), smtpaddress="corp.test"))
    try:
        d2.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("alice",)))
    finally:
        d2.close()
    assert smtp_sink.wait_for(2)[1].rcpt_tos == ["alice@corp.test"]


def test_hunt_list_fallback_and_connect_error(smtp_sink: SmtpSink) -> None:
    (dead,) = free_ports(1)
    d = _sink(_query((f"127.0.0.1/{dead}", f"127.0.0.1/{smtp_sink.port}")))
    try:
        assert (
            d.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("x",))).outcome
            is Outcome.ACCEPTED
        )
    finally:
        d.close()
    nowhere = _sink(_query((f"127.0.0.1/{dead}",)))
    with pytest.raises(SmtpConnectError, match=f"SMTP connect to 127.0.0.1/{dead} failed"):
        nowhere.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("x",)))


def _scripted_server(scripts: list[list[bytes]], seen: list[bytes]) -> tuple[int, threading.Thread]:
    """A listener serving one scripted connection per entry of *scripts*.

    Each script is the greeting followed by one reply per command line read
    (after a 354 reply, the whole message up to ``.`` counts as one line,
    recorded as ``<data>``); ``CLOSE`` drops the connection instead of
    replying.  Lines read are appended to *seen*.
    """
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(2)
    srv.settimeout(10)

    def serve(conn: socket.socket, script: list[bytes]) -> None:
        conn.settimeout(10)
        conn.sendall(script[0])
        buf = b""
        in_data = False
        for reply in script[1:]:
            terminator = b"\r\n.\r\n" if in_data else b"\r\n"
            while terminator not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            line, _, buf = buf.partition(terminator)
            seen.append(b"<data>" if in_data else line)
            if reply == b"CLOSE":
                return
            conn.sendall(reply)
            in_data = reply.startswith(b"354")

    def run() -> None:
        with srv:
            for script in scripts:
                conn, _ = srv.accept()
                with conn:
                    serve(conn, script)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return srv.getsockname()[1], thread


def test_helo_fallback_auth_and_lost_connection() -> None:
    seen: list[bytes] = []
    port, thread = _scripted_server(
        [
            [b"220 hi\r\n", b"500 what\r\n", b"221 bye\r\n"],
            [
                b"220 hi\r\n",
                b"250 hi\r\n",
                b"250 ok\r\n",
                b"250 ok\r\n",
                b"354 go\r\n",
                b"CLOSE",
            ],
        ],
        seen,
    )
    d = _sink(_query((f"127.0.0.1/{port}",)))
    r = d.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("x",)))
    thread.join(10)
    d.close()
    assert seen[:4] == [b"EHLO vm", b"QUIT", b"HELO vm", b"MAIL FROM:<a@b>"]
    assert r.outcome is Outcome.TEMPFAIL  # connection lost before end-of-data reply


@pytest.mark.parametrize(
    ("mechs", "expected"),
    [
        (b"PLAIN LOGIN", [b"AUTH PLAIN AHUAczNjcmV0"]),
        (b"LOGIN", [b"AUTH LOGIN", b"dQ==", b"czNjcmV0"]),
    ],
)
def test_smtp_auth(mechs: bytes, expected: list[bytes]) -> None:
    seen: list[bytes] = []
    replies = [b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n"][: len(expected) - 1]
    script = [
        b"220 hi\r\n",
        b"250-hi\r\n250 AUTH " + mechs + b"\r\n",
        *replies,
        b"235 ok\r\n",
        b"221 bye\r\n",
    ]
    port, thread = _scripted_server([script], seen)
    q = _query((f"127.0.0.1/{port}",), server={"esmtppassword": "s3cret", "esmtpname": "u"})
    d = _sink(q)
    assert d._connection() is not None
    d.close()
    thread.join(10)
    assert seen[1:-1] == expected


def test_no_auth_without_password() -> None:
    seen: list[bytes] = []
    port, thread = _scripted_server(
        [[b"220 hi\r\n", b"250-hi\r\n250 AUTH PLAIN\r\n", b"221 bye\r\n"]], seen
    )
    d = _sink(_query((f"127.0.0.1/{port}",), server={"esmtpname": "u"}))
    d._connection()
    d.close()
    thread.join(10)
    assert seen == [b"EHLO vm", b"QUIT"]


def test_classify_and_hunt_entry_parsing() -> None:
    assert classify_reply(552, ()) == (Outcome.PERMFAIL, False)
    assert classify_reply(451, (451,)) == (Outcome.PERMFAIL, True)
    assert classify_reply(421, ()) == (Outcome.TEMPFAIL, False)
    assert parse_hunt_entry("mx") == ("mx", 25, None)
    assert parse_hunt_entry("[::1]/2525") == ("[::1]", 2525, None)
    assert parse_hunt_entry("h/smtp") == ("h", 25, None)
    assert parse_hunt_entry("/run/lmtp.sock") == ("localhost", None, "/run/lmtp.sock")


@pytest.mark.slow
def test_30mb_message_streams_with_bounded_memory() -> None:
    raw = SpooledMessage()
    raw.write(b"Subject: big\r\n\r\n")
    line = b"." + b"y" * 997 + b"\r\n"  # every line needs dot-stuffing
    for _ in range(30 * 1024):
        raw.write(line)
    assert not raw.in_memory
    info = TraceInfo("pop.test", None, "POP3", "vm", "pop.test", "joe", None, False)
    with FastSmtpSink() as sink:
        q = _query((f"127.0.0.1/{sink.port}",))
        d = _sink(q)
        tracemalloc.start()
        try:
            p = prepare_message(raw, q, RUN, info)
            result = d.deliver(p.message, p.envelope)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            d.close()
        assert result.outcome is Outcome.ACCEPTED
        assert sink.wait_for(1, timeout=30) == 1
        # stuffed size: one extra dot per line
        assert sink.octets == p.message.size + 30 * 1024
    assert peak < 8 << 20  # header-sized state plus write buffers, not 30 MB
    p.message.close()
    raw.close()


def test_warning_mail_through_smtp(smtp_sink: SmtpSink) -> None:
    from pyfetchmail.delivery.warnings import (
        OversizedItem,
        oversized_warning,
        send_warning,
    )

    q = _query((f"127.0.0.1/{smtp_sink.port}",))
    d = _sink(q)
    mail = oversized_warning("pop.test", "joe", [OversizedItem(3, 9000), OversizedItem(4, 1, True)])
    try:
        r = send_warning(
            d,
            mail,
            query=q,
            run=RUN,
            fetchmailhost="vm",
            date=datetime(2026, 11, 21, 7, 33, 27, tzinfo=UTC),
        )
    finally:
        d.close()
    assert r.outcome is Outcome.ACCEPTED
    (got,) = smtp_sink.wait_for(1)
    assert got.mail_from == "FETCHMAIL-DAEMON@vm"
    assert got.rcpt_tos == ["alice@127.0.0.1"]
    assert got.data.startswith(
        b"From: FETCHMAIL-DAEMON@vm\r\nTo: alice@vm\r\n"
        b"Date: Sat, 21 Nov 2026 07:33:27 +0000 (UTC)\r\nMIME-Version: 1.0\r\n"
        b'Content-Transfer-Encoding: 8bit\r\nContent-Type: text/plain; charset="UTF-8"\r\n'
        b"Subject: Fetchmail oversized-messages warning\r\n\r\n"
    )
    assert b"  message 3: 9000 octets, skipped.\r\n" in got.data
    assert b"  message 4: 1 octets, deleted.\r\n" in got.data
    assert got.data.endswith(b"\r\n-- \r\nThe Fetchmail Daemon\r\n")


def test_invisible_uses_server_truename_in_ehlo() -> None:
    seen: list[bytes] = []
    port, thread = _scripted_server([[b"220 hi\r\n", b"250 hi\r\n", b"221 bye\r\n"]], seen)
    q = _query((f"127.0.0.1/{port}",))
    d = SmtpDelivery(q, RunControl(invisible=True), "vm", server_truename="pop.test", timeouts=FAST)
    d._connection()
    d.close()
    thread.join(10)
    assert seen == [b"EHLO pop.test", b"QUIT"]


def test_idle_connection_dropped_by_listener_is_reopened() -> None:
    seen: list[bytes] = []
    ok = [b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"]
    first = [b"220 hi\r\n", b"250 hi\r\n", *ok, b"250 queued\r\n", b"CLOSE"]
    second = [b"220 hi\r\n", b"250 hi\r\n", *ok, b"250 queued\r\n", b"221 bye\r\n"]
    port, thread = _scripted_server([first, second], seen)
    d = _sink(_query((f"127.0.0.1/{port}",)))
    one = d.deliver(SpooledMessage.from_bytes(b"S: 1\r\n\r\n"), Envelope("a@b", ("x",)))
    d._last_response -= 60  # pretend the connection sat idle
    two = d.deliver(SpooledMessage.from_bytes(b"S: 2\r\n\r\n"), Envelope("a@b", ("x",)))
    d.close()
    thread.join(10)
    assert (one.outcome, two.outcome) == (Outcome.ACCEPTED, Outcome.ACCEPTED)
    assert b"NOOP" in seen
    assert seen.count(b"EHLO vm") == 2


def test_garbled_reply_is_tempfail_and_reconnects() -> None:
    seen: list[bytes] = []
    first = [b"220 hi\r\n", b"250 hi\r\n", b"what is this\r\n"]
    second = [b"220 hi\r\n", b"250 hi\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n",
              b"250 queued\r\n", b"221 bye\r\n"]  # fmt: skip
    port, thread = _scripted_server([first, second], seen)
    d = _sink(_query((f"127.0.0.1/{port}",)))
    bad = d.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("x",)))
    good = d.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("x",)))
    d.close()
    thread.join(10)
    assert bad.outcome is Outcome.TEMPFAIL
    assert "protocol error" in bad.text
    assert good.outcome is Outcome.ACCEPTED


def test_auth_secrets_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[bytes] = []
    script = [b"220 hi\r\n", b"250-hi\r\n250 AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n",
              b"334 UGFzc3dvcmQ6\r\n", b"535 no\r\n", b"221 bye\r\n"]  # fmt: skip
    port, thread = _scripted_server([script], seen)
    q = _query((f"127.0.0.1/{port}",), server={"esmtppassword": "s3cret!", "esmtpname": "u"})
    with caplog.at_level(logging.DEBUG):
        d = _sink(q)
        d._connection()
        d.close()
    thread.join(10)
    assert seen[3] == b"czNjcmV0IQ=="  # the password went to the server...
    text = caplog.text
    assert "s3cret!" not in text  # ...but never to the log, plain or encoded
    assert "czNjcmV0IQ==" not in text
    assert "AUTH as u failed: 535 no" in text
