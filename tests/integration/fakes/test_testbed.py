"""The test sinks themselves work (Dovecot and Postfix: ../dovecot, ../postfix test_testbed_*).

These use only the standard library as clients, so a failure here means the
testbed is broken, not pyfetchmail.
"""

from __future__ import annotations

import smtplib
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from testbed.fastsink import FastSmtpSink
from testbed.sinks import SmtpSink

pytestmark = pytest.mark.timeout(60)

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: t\r\n\r\nline 1\r\n.dot\r\n"


def test_smtp_sink_records_and_answers_scripted_451(smtp_sink: SmtpSink) -> None:
    smtp_sink.reply_to_data(2, "451 4.3.0 try later")
    smtp_sink.reject_rcpt("nobody@example.org", "550 5.1.1 no such user")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        smtp.sendmail("a@example.org", ["b@example.org"], MESSAGE, mail_options=["BODY=8BITMIME"])
        with pytest.raises(smtplib.SMTPDataError) as info:
            smtp.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert info.value.smtp_code == 451
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("a@example.org", ["nobody@example.org"], MESSAGE)
    (got,) = smtp_sink.received
    assert got.mail_from == "a@example.org"
    assert got.rcpt_tos == ["b@example.org"]
    assert got.data == MESSAGE
    assert got.mail_options == ["BODY=8BITMIME"]
    assert [t.replies for t in smtp_sink.transactions] == [
        ["250 2.0.0 OK queued"],
        ["451 4.3.0 try later"],
    ]


def test_lmtp_sink_per_recipient_replies(lmtp_sink: SmtpSink) -> None:
    # smtplib reads a single reply after DATA, so speak LMTP by hand.
    lmtp_sink.lmtp_replies["full@example.org"] = "452 4.2.2 mailbox full"
    with socket.create_connection((lmtp_sink.host, lmtp_sink.port), 10) as sock:
        sock.settimeout(10)
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220")
        sock.sendall(b"LHLO x\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        sock.sendall(b"MAIL FROM:<a@example.org>\r\n")
        assert reader.readline().startswith(b"250")
        for rcpt in (b"ok@example.org", b"full@example.org"):
            sock.sendall(b"RCPT TO:<" + rcpt + b">\r\n")
            assert reader.readline().startswith(b"250")
        sock.sendall(b"DATA\r\n")
        assert reader.readline().startswith(b"354")
        sock.sendall(MESSAGE.replace(b"\n.", b"\n..") + b".\r\nQUIT\r\n")
        assert reader.readline().startswith(b"250")
        assert reader.readline() == b"452 4.2.2 mailbox full\r\n"
    (got,) = lmtp_sink.received
    assert got.rcpt_tos == ["ok@example.org"]


def test_fast_sink_framing_and_counts() -> None:
    body = b"Subject: x\r\n\r\n..stuffed\r\n" + b"y" * 100_000 + b"\r\n"
    with FastSmtpSink(keep=True) as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            smtp.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\n.stuffed\r\n")
            smtp.sendmail("a@example.org", ["b@example.org"], body[:14] + b"." + body[15:])
            smtp.sendmail("a@example.org", ["b@example.org"], b"")
        sink.wait_for(3)
        assert sink.kept[0] == b"Subject: x\r\n\r\n.stuffed\r\n"
        assert sink.kept[1] == body[:14] + b"." + body[15:]
        assert sink.kept[2] == b"\r\n"  # smtplib ends the data with CRLF


def test_fast_sink_handles_split_terminator() -> None:
    with FastSmtpSink() as sink, socket.create_connection((sink.host, sink.port), 10) as sock:
        sock.settimeout(10)
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220")
        sock.sendall(b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
        replies = [reader.readline()[:3] for _ in range(4)]
        assert replies == [b"250", b"250", b"250", b"354"]
        for piece in (b"hello\r", b"\n.", b"\r", b"\nQUIT\r\n"):
            sock.sendall(piece)
        assert reader.readline().startswith(b"250")
        assert reader.readline().startswith(b"221")
        assert (sink.messages, sink.octets) == (1, 7)


def test_mailgen_is_deterministic_and_well_formed() -> None:
    import email
    import email.policy

    from testbed.mailgen import big_message, generate

    first = list(generate(60, seed=3))
    assert first == list(generate(60, seed=3))
    assert first != list(generate(60, seed=4))
    for raw in first:
        assert b"\n" not in raw.replace(b"\r\n", b"")
        assert max(len(line) for line in raw.split(b"\r\n")) <= 78
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        for header in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
            assert parsed[header], header
        assert not parsed.defects
    assert 4_990_000 <= len(big_message(5_000_000)) <= 5_000_100


def test_delay_proxy_adds_latency_and_keeps_order() -> None:
    import time

    from testbed.proxy import DelayProxy

    with FastSmtpSink(keep=True) as sink, DelayProxy(sink.host, sink.port, delay=0.05) as proxy:
        with smtplib.SMTP(proxy.host, proxy.port, timeout=10) as smtp:
            start = time.monotonic()
            smtp.noop()
            assert time.monotonic() - start >= 0.1  # one round trip = 2 x 50 ms
            payload = b"Subject: p\r\n\r\n" + b"".join(b"%08d\r\n" % i for i in range(20_000))
            smtp.sendmail("a@example.org", ["b@example.org"], payload)
        assert sink.kept == [payload]


def test_write_rc_is_private(write_rc: Callable[..., Path]) -> None:
    path = write_rc("poll example.org\n")
    assert path.read_text() == "poll example.org\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
