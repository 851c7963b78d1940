"""POP3 ``auth any`` with SASL LOGIN (our addition, only over TLS, only without PLAIN).

Against the scripted server (which advertises exactly what a test asks for);
dovecot/test_pop3_sasl_login_dovecot.py runs against the private Dovecot,
which speaks LOGIN for real: there the
capability list is forced to ``SASL LOGIN`` by calling
:func:`~pyfetchmail.protocols.pop3_auth.authenticate` on a live channel.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
import trustme

from pyfetchmail.config.model import MailProtocol, Query, Server, User
from pyfetchmail.errors import AuthError
from pyfetchmail.protocols.pop3_session import Pop3Source
from pyfetchmail.protocols.transcript import TRANSCRIPT_LOGGER
from tests.fakes.fake_pop3 import FakePop3Server

pytestmark = pytest.mark.timeout(60)

MESSAGES = [b"From: a@example.org\r\nSubject: one\r\n\r\nHello\r\n"]


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


def _query(port: int, cafile: str | None) -> Query:
    server = Server(pollname="127.0.0.1", service=str(port), protocol=MailProtocol.POP3)
    if cafile is None:  # plaintext: no STLS
        return Query(server, User(remote="joe", sslproto="", sslcertck=False))
    user = User(remote="joe", sslcertck=True, sslcertfile=cafile, sslcommonname="localhost")
    return Query(server, user)


def _sent(srv: FakePop3Server) -> list[str]:
    return [c for c in srv.commands if c.split()[0].isupper()]


def test_login_used_over_tls_when_only_login_is_offered(
    server_ctx: ssl.SSLContext, cafile: str
) -> None:
    caps = ["USER", "UIDL", "PIPELINING", "SASL LOGIN"]
    with FakePop3Server(mailbox=list(MESSAGES), tls_context=server_ctx, capabilities=caps) as srv:
        session = Pop3Source(_query(srv.port, cafile), "secret").open()
        assert session.select(None).count == 1
        session.close()
        assert _sent(srv)[:4] == ["CAPA", "STLS", "CAPA", "AUTH LOGIN"]
        assert "USER joe" not in srv.commands
        # The two answers: user name, then password, base64 (draft-murchison-sasl-login).
        i = srv.commands.index("AUTH LOGIN")
        assert srv.commands[i + 1 : i + 3] == ["am9l", "c2VjcmV0"]


def test_login_not_tried_without_tls() -> None:
    with FakePop3Server(mailbox=[], capabilities=["USER", "SASL LOGIN"]) as srv:
        Pop3Source(_query(srv.port, None), "secret").open().close()
        assert "AUTH LOGIN" not in srv.commands
        assert "USER joe" in srv.commands


def test_plain_preferred_over_login(server_ctx: ssl.SSLContext, cafile: str) -> None:
    caps = ["USER", "SASL PLAIN LOGIN"]
    with FakePop3Server(mailbox=[], tls_context=server_ctx, capabilities=caps) as srv:
        Pop3Source(_query(srv.port, cafile), "secret").open().close()
        assert "AUTH PLAIN" in srv.commands
        assert "AUTH LOGIN" not in srv.commands


def test_login_failure_falls_through_to_user_pass(
    server_ctx: ssl.SSLContext, cafile: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=TRANSCRIPT_LOGGER)
    caps = ["USER", "SASL LOGIN"]
    with FakePop3Server(mailbox=[], tls_context=server_ctx, capabilities=caps) as srv:
        with pytest.raises(AuthError, match=r"Authorization failure on joe@127\.0\.0\.1"):
            Pop3Source(_query(srv.port, cafile), "wrong-pass").open()
        assert "AUTH LOGIN" in srv.commands
        assert "USER joe" in srv.commands
    assert "wrong-pass" not in caplog.text
    assert "d3JvbmctcGFzcw" not in caplog.text  # nor its base64


# --- the real Dovecot ---------------------------------------------------------
