"""The private Dovecot test server itself works (POP3/IMAP/LMTP, TLS); see fakes/test_testbed.py.

These use only the standard library as clients, so a failure here means the
testbed is broken, not pyfetchmail.
"""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import ssl

import pytest

from testbed.dovecot import Dovecot, MailUser, fingerprint
from tests.integration.fakes.test_testbed import MESSAGE

pytestmark = pytest.mark.timeout(60)


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
