"""Pop3Source against the private Dovecot: TLS, pins, mechanisms, delete semantics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trustme

from pyfetchmail.config.model import Auth, MailProtocol, Query, Server, User
from pyfetchmail.errors import AuthError, SocketError
from pyfetchmail.protocols.pop3_session import Pop3Session, Pop3Source
from pyfetchmail.protocols.transcript import TRANSCRIPT_LOGGER

pytestmark = [pytest.mark.dovecot, pytest.mark.timeout(60)]

MSGS = [
    b"From: a@example.org\nTo: x@example.org\nSubject: one\n\nHello one\n.dot line\n",
    b"From: b@example.org\nSubject: two\n\nbody two\n",
]


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\n", b"\r\n")


def _query(dovecot: Any, mailuser: Any, *, ssl: bool = False, **fields: Any) -> Query:
    server_fields = {k: fields.pop(k) for k in ("auth", "protocol") if k in fields}
    port = dovecot.pop3s_port if ssl else dovecot.pop3_port
    server = Server(
        pollname="127.0.0.1",
        protocol=server_fields.pop("protocol", MailProtocol.POP3),
        service=str(port),
        **server_fields,
    )
    user_fields: dict[str, Any] = {
        "ssl": ssl,
        "sslcertfile": str(dovecot.ca_file),
        "sslcommonname": "localhost",
    }
    user_fields.update(fields)
    return Query(server, User(remote=mailuser.name, **user_fields))


def _fetch(session: Pop3Session) -> list[bytes]:
    listing = session.select(None)
    out = []
    for _ref, msg in session.retrieve(listing.messages):
        with msg:
            out.append(msg.read_all())
    return out


@pytest.fixture
def filled(mailuser: Any) -> Any:
    for raw in MSGS:
        mailuser.deliver(raw)
    return mailuser


def test_stls_verified_fetch_delete_quit(dovecot: Any, filled: Any) -> None:
    session = Pop3Source(_query(dovecot, filled), filled.password).open()
    assert session.capabilities.has("PIPELINING")
    listing = session.select(None)
    assert listing.count == 2
    assert all(r.uid for r in listing.messages)
    got = []
    for ref, msg in session.retrieve(listing.messages):
        with msg:
            got.append(msg.read_all())
        session.delete(ref)
    session.close()
    assert got == [_crlf(m) for m in MSGS]
    assert filled.messages() == []


def test_close_without_commit_keeps_messages(dovecot: Any, filled: Any) -> None:
    session = Pop3Source(_query(dovecot, filled), filled.password).open()
    listing = session.select(None)
    for ref in listing.messages:
        session.delete(ref)
    session.close(commit=False)
    assert len(filled.messages()) == 2


def test_pop3s_implicit_tls(dovecot: Any, filled: Any) -> None:
    session = Pop3Source(_query(dovecot, filled, ssl=True), filled.password).open()
    assert _fetch(session) == [_crlf(m) for m in MSGS]
    session.close()
    assert len(filled.messages()) == 2


def test_wrong_ca_is_socket_error(dovecot: Any, mailuser: Any, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    for ssl in (False, True):
        query = _query(dovecot, mailuser, ssl=ssl, sslcertfile=str(other))
        with pytest.raises(SocketError, match="certificate verification"):
            Pop3Source(query, mailuser.password).open()


@pytest.mark.parametrize("algo", ["cert_md5", "cert_sha256"])
def test_fingerprint_pins(dovecot: Any, mailuser: Any, algo: str) -> None:
    good = _query(dovecot, mailuser, ssl=True, sslfingerprint=getattr(dovecot, algo).lower())
    Pop3Source(good, mailuser.password).open().close()
    pin: str = getattr(dovecot, algo)
    wrong = ("11" if pin.startswith("00") else "00") + pin[2:]
    bad = _query(dovecot, mailuser, ssl=True, sslfingerprint=wrong)
    with pytest.raises(SocketError, match="fingerprints do not match"):
        Pop3Source(bad, mailuser.password).open()


@pytest.mark.parametrize(
    ("fields", "first_command"),
    [
        ({"auth": Auth.PASSWORD}, "USER"),
        ({"protocol": MailProtocol.APOP}, "APOP"),
        ({"auth": Auth.CRAM_MD5}, "AUTH CRAM-MD5"),
        ({"auth": Auth.ANY}, "AUTH"),
    ],
)
def test_mechanisms(
    dovecot: Any,
    filled: Any,
    fields: dict[str, Any],
    first_command: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=TRANSCRIPT_LOGGER)
    session = Pop3Source(_query(dovecot, filled, **fields), filled.password).open()
    assert len(_fetch(session)) == 2
    session.close()
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith("POP3> ")]
    assert any(line.startswith("POP3> " + first_command) for line in sent)
    assert filled.password not in caplog.text


def test_auth_any_over_tls_uses_sasl_plain(
    dovecot: Any, mailuser: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=TRANSCRIPT_LOGGER)
    # Dovecot advertises CRAM-MD5, which fetchmail's order tries first;
    # with a wrong password every method fails in turn, ending in USER/PASS.
    with pytest.raises(AuthError, match="Authorization failure"):
        Pop3Source(_query(dovecot, mailuser), "wrong-password").open()
    text = caplog.text
    assert "POP3> AUTH CRAM-MD5" in text
    assert "POP3> AUTH PLAIN" in text
    assert "POP3> PASS *" in text
    assert "wrong-password" not in text
