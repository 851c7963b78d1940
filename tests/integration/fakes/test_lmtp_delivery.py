"""LMTP sink: per-recipient end-of-data replies (RFC 2033).

Real Dovecot LMTP: dovecot/test_lmtp_dovecot.py.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading

import pytest

from pyfetchmail.config.model import NameMapping, Query, RunControl, Server, User
from pyfetchmail.delivery.base import Envelope, Outcome
from pyfetchmail.delivery.smtp import SmtpDelivery, SmtpTimeouts
from pyfetchmail.mail.message import SpooledMessage
from testbed.sinks import SmtpSink

pytestmark = pytest.mark.timeout(60)

FAST = SmtpTimeouts(*(5.0,) * 8)
RUN = RunControl(postmaster="postmaster")
MSG = b"From: s@remote.example\r\nSubject: lmtp\r\n\r\nbody\r\n"


def _query(hosts: tuple[str, ...], **kw: object) -> Query:
    kw.setdefault("localnames", (NameMapping("alice", "alice"),))
    return Query(Server("pop.test"), User("joe", smtphunt=hosts, lmtp=True, **kw))  # type: ignore[arg-type]


def _deliver(sink: SmtpSink, recipients: tuple[str, ...]) -> tuple[Outcome, int, list[str]]:
    d = SmtpDelivery(
        _query((f"127.0.0.1/{sink.port}",)), RUN, "vm", server_truename="p", timeouts=FAST
    )
    try:
        r = d.deliver(SpooledMessage.from_bytes(MSG), Envelope("s@remote.example", recipients))
    finally:
        d.close()
    return r.outcome, r.code, [x.recipient for x in r.rejected_recipients]


def test_all_accepted(lmtp_sink: SmtpSink) -> None:
    assert _deliver(lmtp_sink, ("a", "b")) == (Outcome.ACCEPTED, 250, [])
    (got,) = lmtp_sink.wait_for(1)
    assert got.rcpt_tos == ["a@127.0.0.1", "b@127.0.0.1"]
    assert got.data == MSG


def test_one_tempfail_keeps_message(lmtp_sink: SmtpSink) -> None:
    lmtp_sink.lmtp_replies["b@127.0.0.1"] = "452 4.2.2 mailbox full"
    outcome, code, _ = _deliver(lmtp_sink, ("a", "b", "c"))
    assert (outcome, code) == (Outcome.TEMPFAIL, 452)


def test_partial_permanent_failure_is_reported(lmtp_sink: SmtpSink) -> None:
    lmtp_sink.lmtp_replies["b@127.0.0.1"] = "550 5.1.1 no such user"
    outcome, _, rejected = _deliver(lmtp_sink, ("a", "b"))
    assert outcome is Outcome.ACCEPTED
    assert rejected == ["b@127.0.0.1"]


def test_all_permanent_failures(lmtp_sink: SmtpSink) -> None:
    lmtp_sink.lmtp_replies["a@127.0.0.1"] = "550 5.1.1 no such user"
    outcome, code, rejected = _deliver(lmtp_sink, ("a",))
    assert (outcome, code, rejected) == (Outcome.PERMFAIL, 550, ["a@127.0.0.1"])


def test_uses_lhlo(lmtp_sink: SmtpSink) -> None:
    # aiosmtpd's LMTP answers EHLO with 500, so acceptance proves LHLO was sent
    assert _deliver(lmtp_sink, ("a",))[0] is Outcome.ACCEPTED


def test_unix_socket_is_always_lmtp() -> None:
    seen: list[bytes] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lmtp.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        srv.settimeout(10)
        script = [b"220 x\r\n", b"250 x\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"]

        def serve() -> None:
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(10)
                conn.sendall(script[0])
                buf = b""
                for reply in [*script[1:], b"250 delivered\r\n"]:
                    if reply == b"250 delivered\r\n":
                        while b"\r\n.\r\n" not in buf:
                            buf += conn.recv(65536)
                        conn.sendall(reply)
                        break
                    while b"\r\n" not in buf:
                        buf += conn.recv(65536)
                    line, _, buf = buf.partition(b"\r\n")
                    seen.append(line)
                    conn.sendall(reply)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        q = Query(Server("p"), User("joe", smtphunt=(path,), localnames=(NameMapping("a", "a"),)))
        d = SmtpDelivery(q, RUN, "vm", server_truename="p", timeouts=FAST)
        r = d.deliver(SpooledMessage.from_bytes(MSG), Envelope("s@x", ("a",)))
        if d._client is not None:
            d._client.abort()  # the scripted peer does not answer QUIT
        thread.join(10)
        srv.close()
    assert r.outcome is Outcome.ACCEPTED
    assert r.where == path
    assert seen == [b"LHLO vm", b"MAIL FROM:<s@x>", b"RCPT TO:<a@localhost>", b"DATA"]
