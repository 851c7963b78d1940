"""``plugout``: the SMTP/LMTP listener reached through a command (spec §6.2, §7.6).

The command is ``tests/integration/tcp_relay.py %h %p TRACE`` (a tiny ``nc``),
run without a shell on a socketpair; it records its arguments, so the
``%h``/``%p`` substitution is checked, and the aiosmtpd/LMTP sinks show what
arrived through it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pyfetchmail.config.model import NameMapping, Query, RunControl, Server, User
from pyfetchmail.delivery.base import Envelope, Outcome
from pyfetchmail.delivery.smtp import SmtpDelivery, SmtpTimeouts
from pyfetchmail.errors import SmtpConnectError
from pyfetchmail.mail.message import SpooledMessage
from testbed.sinks import SmtpSink

pytestmark = pytest.mark.timeout(60)

RELAY = Path(__file__).resolve().parent.parent / "tcp_relay.py"
FAST = SmtpTimeouts(*(5.0,) * 8)
RUN = RunControl(postmaster="postmaster")
MSG = b"From: s@remote.example\r\nTo: joe@remote.example\r\nSubject: t\r\n\r\nbody\r\n.dot\r\n"


def relay_command(trace: Path) -> str:
    return f"{sys.executable} {RELAY} %h %p {trace}"


def _delivery(sink_entry: str, plugout: str, *, lmtp: bool = False) -> SmtpDelivery:
    query = Query(
        Server("pop.test", plugout=plugout),
        User(
            "joe",
            smtphunt=(sink_entry,),
            lmtp=lmtp,
            localnames=(NameMapping("alice", "alice"),),
        ),
    )
    return SmtpDelivery(query, RUN, "vm", server_truename="pop.test", timeouts=FAST)


def test_smtp_through_plugout(smtp_sink: SmtpSink, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    sink = _delivery(f"127.0.0.1/{smtp_sink.port}", relay_command(trace))
    try:
        for n in range(2):  # one plugout connection serves both messages
            result = sink.deliver(
                SpooledMessage.from_bytes(MSG), Envelope(f"s{n}@remote.example", ("alice",))
            )
            assert result.outcome is Outcome.ACCEPTED, result
    finally:
        sink.close()
    got = smtp_sink.wait_for(2)
    assert [m.mail_from for m in got] == ["s0@remote.example", "s1@remote.example"]
    assert got[0].data.endswith(b"body\r\n.dot\r\n")
    assert trace.read_text() == f"127.0.0.1 {smtp_sink.port}\n"


def test_lmtp_through_plugout(lmtp_sink: SmtpSink, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    sink = _delivery(f"127.0.0.1/{lmtp_sink.port}", relay_command(trace), lmtp=True)
    try:
        result = sink.deliver(SpooledMessage.from_bytes(MSG), Envelope("s@x.example", ("alice",)))
    finally:
        sink.close()
    assert result.outcome is Outcome.ACCEPTED, result
    (got,) = lmtp_sink.wait_for(1)
    assert got.rcpt_tos == ["alice@127.0.0.1"]
    assert trace.read_text() == f"127.0.0.1 {lmtp_sink.port}\n"


def test_plugout_that_cannot_run_is_a_connect_failure(tmp_path: Path) -> None:
    sink = _delivery("127.0.0.1/2525", str(tmp_path / "no-such-program") + " %h %p")
    with pytest.raises(SmtpConnectError):
        sink.deliver(SpooledMessage.from_bytes(MSG), Envelope("s@x.example", ("alice",)))


def test_plugout_whose_peer_refuses_is_a_connect_failure(tmp_path: Path) -> None:
    # The relay cannot reach the (closed) port and exits: EOF instead of a greeting.
    sink = _delivery("127.0.0.1/1", relay_command(tmp_path / "trace"))
    with pytest.raises(SmtpConnectError):
        sink.deliver(SpooledMessage.from_bytes(MSG), Envelope("s@x.example", ("alice",)))
