"""The blocking POP3 driver fed arbitrary server byte streams over a socketpair.

Whatever the server sends, a whole session (greeting, CAPA, login, STAT,
UIDL, LIST, RETR, DELE, QUIT) ends normally or with a FetchmailError that is
*not* our own bug (LocalProtocolError): never another exception.
"""

from __future__ import annotations

import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyfetchmail.config.model import Auth, MailProtocol, Query, Server, User
from pyfetchmail.errors import FetchmailError, LocalProtocolError
from pyfetchmail.protocols.pop3_channel import Pop3Channel
from pyfetchmail.protocols.pop3_session import Pop3Session

QUERY_ANY = Query(
    Server(pollname="fuzz.example", protocol=MailProtocol.POP3),
    User(remote="joe", sslproto="", sslcertck=False),
)
QUERY_APOP = Query(
    Server(pollname="fuzz.example", protocol=MailProtocol.APOP, auth=Auth.ANY),
    User(remote="joe", sslproto="", sslcertck=False),
)

_FRAGMENTS = [
    b"+OK ready <1.2@x>\r\n",
    b"+OK\r\n",
    b"-ERR no\r\n",
    b"-ERR [IN-USE] locked\r\n",
    b"+ PDEyMz4=\r\n",
    b"+ !!\r\n",
    b"STLS\r\n",
    b"SASL PLAIN CRAM-MD5\r\n",
    b"PIPELINING\r\n",
    b".\r\n",
    b"..x\r\n",
    b"1 uid-a\r\n",
    b"2 99\r\n",
    b"+OK 2 300\r\n",
    b"+OK 0 0\r\n",
    b"body\r\n",
    b"\r\n",
    b"\xff\xfe\r\n",
]


def _run(query: Query, server_bytes: bytes) -> None:
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(server_bytes)
        theirs.shutdown(socket.SHUT_WR)
        session = Pop3Session(Pop3Channel(ours, "fuzz.example", 2.0), query, None, tls_active=False)
        try:
            session._start("pw")
            listing = session.select(None)
            for ref, msg in session.retrieve(listing.messages):
                msg.close()
                session.delete(ref)
            session.close()
        finally:
            session.close(commit=False)
    finally:
        ours.close()
        theirs.close()


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(
        st.one_of(st.sampled_from(_FRAGMENTS), st.binary(min_size=1, max_size=12)),
        max_size=30,
    ),
    apop=st.booleans(),
)
def test_session_never_raises_anything_but_remote_errors(parts: list[bytes], apop: bool) -> None:
    try:
        _run(QUERY_APOP if apop else QUERY_ANY, b"".join(parts))
    except LocalProtocolError:
        raise
    except FetchmailError:
        pass


def test_well_formed_script_completes() -> None:
    script = (
        b"+OK ready\r\n"
        b"+OK\r\nUSER\r\nUIDL\r\n.\r\n"  # CAPA
        b"+OK\r\n+OK\r\n"  # USER, PASS
        b"+OK 1 6\r\n"  # STAT
        b"+OK\r\n1 u1\r\n.\r\n"  # UIDL
        b"+OK\r\n1 6\r\n.\r\n"  # LIST
        b"+OK\r\nbody\r\n.\r\n"  # RETR 1
        b"+OK\r\n+OK bye\r\n"  # DELE 1, QUIT
    )
    _run(QUERY_ANY, script)
