"""The test servers themselves work: Dovecot (POP3/IMAP/LMTP, TLS) and the sinks.

These use only the standard library as clients, so a failure here means the
testbed is broken, not pyfetchmail.
"""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import ssl
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from testbed.dovecot import Dovecot, MailUser, fingerprint
from testbed.fastsink import FastSmtpSink
from testbed.postfix import PostfixInfo
from testbed.sinks import SmtpSink

pytestmark = pytest.mark.timeout(60)

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: t\r\n\r\nline 1\r\n.dot\r\n"


def _tls(dovecot: Dovecot) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(dovecot.ca_file))


@pytest.mark.dovecot
def test_pop3_stls_verified_login_and_retr(dovecot: Dovecot, mailuser: MailUser) -> None:
    mailuser.deliver(MESSAGE)
    pop = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        assert "STLS" in pop.capa()
        pop.stls(_tls(dovecot))
        pop.user(mailuser.name)
        pop.pass_(mailuser.password)
        count, _size = pop.stat()
        assert count == 1
        _resp, lines, _octets = pop.retr(1)
        assert b"\r\n".join(lines) + b"\r\n" == MESSAGE
        pop.dele(1)
    finally:
        pop.quit()
    assert mailuser.messages() == []


@pytest.mark.dovecot
def test_pop3_wrong_password_is_rejected(dovecot: Dovecot, mailuser: MailUser) -> None:
    pop = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        pop.user(mailuser.name)
        with pytest.raises(poplib.error_proto):
            pop.pass_(mailuser.password + "x")
    finally:
        pop.close()


@pytest.mark.dovecot
def test_pop3s_certificate_matches_fingerprint(dovecot: Dovecot) -> None:
    pop = poplib.POP3_SSL(dovecot.host, dovecot.pop3s_port, context=_tls(dovecot), timeout=10)
    try:
        sock = pop.sock
        assert isinstance(sock, ssl.SSLSocket)
        der = sock.getpeercert(binary_form=True)
        assert der is not None
        assert fingerprint(der, "sha256") == dovecot.cert_sha256
        assert fingerprint(der, "md5") == dovecot.cert_md5
    finally:
        pop.quit()


@pytest.mark.dovecot
def test_pop3_apop_greeting(dovecot: Dovecot, mailuser: MailUser) -> None:
    pop = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        assert b"<" in pop.getwelcome()
        pop.apop(mailuser.name, mailuser.password)
        assert pop.stat()[0] == 0
    finally:
        pop.quit()


@pytest.mark.dovecot
def test_imaps_login_folders_and_seen_flags(dovecot: Dovecot, mailuser: MailUser) -> None:
    mailuser.create_folder("Archive")
    mailuser.deliver(MESSAGE, folder="Archive", seen=True)
    mailuser.deliver(MESSAGE)
    imap = imaplib.IMAP4_SSL(
        dovecot.host, dovecot.imaps_port, ssl_context=_tls(dovecot), timeout=10
    )
    try:
        imap.login(mailuser.name, mailuser.password)
        typ, data = imap.select("Archive", readonly=True)
        assert typ == "OK"
        assert data == [b"1"]
        typ, data = imap.search(None, "UNSEEN")
        assert data == [b""]
        typ, data = imap.select("INBOX")
        assert data == [b"1"]
        imap.store("1", "+FLAGS", "\\Seen")
        imap.close()
    finally:
        imap.logout()
    assert mailuser.flags() == ["S"]
    assert mailuser.messages() == [MESSAGE.replace(b"\r\n", b"\n")]


@pytest.mark.dovecot
def test_imap_starttls_and_idle_capability(dovecot: Dovecot, mailuser: MailUser) -> None:
    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        imap.starttls(_tls(dovecot))
        imap.login(mailuser.name, mailuser.password)
        assert "IDLE" in imap.capabilities
    finally:
        imap.logout()


@pytest.mark.dovecot
def test_lmtp_delivery_lands_in_maildir(dovecot: Dovecot, mailuser: MailUser) -> None:
    with smtplib.LMTP(dovecot.host, dovecot.lmtp_port, timeout=10) as lmtp:
        refused = lmtp.sendmail("sender@example.org", [f"{mailuser.name}@localhost"], MESSAGE)
    assert refused == {}
    (stored,) = mailuser.messages()
    assert stored.endswith(MESSAGE.replace(b"\r\n", b"\n"))
    assert b"Delivered-To: " + mailuser.name.encode() in stored


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


@pytest.mark.postfix
def test_postfix_delivers_to_the_test_user(postfix: PostfixInfo) -> None:
    postfix.clear()
    with smtplib.SMTP(postfix.host, postfix.port, timeout=10) as smtp:
        smtp.sendmail("a@localhost", [f"{postfix.user}@localhost"], MESSAGE)
    (path,) = postfix.wait_for_messages(1, timeout=20)
    stored = path.read_bytes()
    # Postfix adds Return-Path, Delivered-To, Received, Message-Id and Date.
    assert b"Delivered-To: pfmtest@localhost\n" in stored
    assert stored.endswith(b"\n\nline 1\n.dot\n")
    postfix.clear()
    assert postfix.messages() == []


@pytest.mark.dovecot
def test_utf7_folder_and_set_seen_visible_over_imap(dovecot: Dovecot, mailuser: MailUser) -> None:
    name = "Entw&APw-rfe"  # "Entwürfe" in modified UTF-7 (RFC 3501 §5.1.3)
    mailuser.create_folder(name)
    mailuser.deliver(MESSAGE, folder=name)
    mailuser.deliver(MESSAGE, folder=name)
    mailuser.set_seen(1, folder=name)
    assert mailuser.flags(name) == ["", "S"]
    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        imap.login(mailuser.name, mailuser.password)
        _typ, listing = imap.list()
        lines = [line for line in listing if isinstance(line, bytes)]
        assert any(line.endswith((b'"Entw&APw-rfe"', b" Entw&APw-rfe")) for line in lines)
        imap.select(f'"{name}"', readonly=True)
        _typ, unseen = imap.search(None, "UNSEEN")
        assert unseen == [b"1"]
    finally:
        imap.logout()


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
