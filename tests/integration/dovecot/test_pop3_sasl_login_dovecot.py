"""POP3 SASL LOGIN against the private Dovecot .

The cases against the scripted server are in fakes/test_pop3_sasl_login.py.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from pyfetchmail.config.model import MailProtocol, Query, Server, User
from pyfetchmail.errors import AuthError
from pyfetchmail.net import tls
from pyfetchmail.protocols.pop3 import Greeting, Ok
from pyfetchmail.protocols.pop3_auth import Capabilities, authenticate
from pyfetchmail.protocols.pop3_channel import Pop3Channel
from pyfetchmail.protocols.transcript import TRANSCRIPT_LOGGER

pytestmark = pytest.mark.timeout(60)


@pytest.mark.dovecot
def test_login_against_dovecot(
    dovecot: Any, mailuser: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=TRANSCRIPT_LOGGER)
    server = Server(
        pollname="127.0.0.1", service=str(dovecot.pop3s_port), protocol=MailProtocol.POP3
    )
    user = User(
        remote=mailuser.name, ssl=True, sslcertfile=str(dovecot.ca_file), sslcommonname="localhost"
    )
    query = Query(server, user)
    sock = tls.wrap(
        socket.create_connection(("127.0.0.1", dovecot.pop3s_port), 10), user, query, 10
    )
    chan = Pop3Channel(sock, "127.0.0.1", 10)
    try:
        greeting = chan.next_event()
        assert isinstance(greeting, Greeting)
        caps = Capabilities(("USER", "SASL LOGIN"))
        authenticate(chan, query, mailuser.password, caps, greeting.text, tls_active=True)
        chan.send([("STAT", ())])
        assert isinstance(chan.reply(), Ok)  # only a logged-in session answers STAT
    finally:
        chan.close()
    assert "POP3> AUTH LOGIN" in caplog.text
    assert "USER" not in caplog.text
    assert mailuser.password not in caplog.text


@pytest.mark.dovecot
def test_login_wrong_password_against_dovecot(dovecot: Any, mailuser: Any) -> None:
    server = Server(
        pollname="127.0.0.1", service=str(dovecot.pop3s_port), protocol=MailProtocol.POP3
    )
    user = User(
        remote=mailuser.name, ssl=True, sslcertfile=str(dovecot.ca_file), sslcommonname="localhost"
    )
    query = Query(server, user)
    sock = tls.wrap(
        socket.create_connection(("127.0.0.1", dovecot.pop3s_port), 10), user, query, 10
    )
    chan = Pop3Channel(sock, "127.0.0.1", 10)
    try:
        greeting = chan.next_event()
        assert isinstance(greeting, Greeting)
        caps = Capabilities(("SASL LOGIN",))
        with pytest.raises(AuthError, match="Authorization failure"):
            authenticate(chan, query, "wrong-password", caps, greeting.text, tls_active=True)
    finally:
        chan.close()
