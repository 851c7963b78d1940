"""ImapSource against a scripted fake server: TLS policy, auth rules, hostile replies.

Every case must end in one of our errors (never a library exception or a
traceback) and must never send a credential where the rules forbid it.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import pytest

from pyfetchmail.config.model import Auth, MailProtocol, Query, Server, User
from pyfetchmail.errors import (
    AuthError,
    FetchmailError,
    RemoteProtocolError,
    ServerError,
    ServerLockBusy,
    SocketError,
)
from pyfetchmail.protocols.imap import ImapSession, ImapSource
from tests.fakes.fake_imap import FakeImapServer, body_fetch

pytestmark = pytest.mark.timeout(20)

PLAINTEXT: dict[str, Any] = {"sslproto": "", "sslcertck": False}


def make_query(
    fake: FakeImapServer, *, auth: Auth = Auth.ANY, timeout: int = 5, **user_opts: Any
) -> Query:
    server = Server(
        pollname=fake.host,
        protocol=MailProtocol.IMAP,
        service=str(fake.port),
        timeout=timeout,
        auth=auth,
    )
    return Query(server, User(remote="joe", **user_opts))


def open_plain(fake: FakeImapServer, password: str = "pw", **user_opts: Any) -> ImapSession:
    opts = dict(PLAINTEXT)
    opts.update(user_opts)
    return ImapSource(make_query(fake, **opts), password).open()


# -- TLS policy ---------------------------------------------------------------------


def test_starttls_required_but_not_offered_fails_closed() -> None:
    with (
        FakeImapServer(greeting=b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n") as fake,
        pytest.raises(SocketError, match="upgrade to TLS failed"),
    ):
        ImapSource(make_query(fake), "pw").open()  # sslcertck on: TLS is a must
    assert "LOGIN" not in fake.commands()
    assert "AUTHENTICATE" not in fake.commands()


def test_starttls_refused_fails_closed() -> None:
    replies = {"STARTTLS": b"{tag} NO not today\r\n"}
    greeting = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n"
    with (
        FakeImapServer(greeting=greeting, replies=replies) as fake,
        pytest.raises(SocketError, match="upgrade to TLS failed"),
    ):
        ImapSource(make_query(fake), "pw").open()
    assert "STARTTLS" in fake.commands()
    assert "LOGIN" not in fake.commands()


def test_starttls_refused_when_optional_continues_in_plaintext() -> None:
    replies = {"STARTTLS": b"{tag} NO not today\r\n"}
    greeting = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n"
    with FakeImapServer(greeting=greeting, replies=replies) as fake:
        query = make_query(fake, sslcertck=False)  # sslproto unset + no sslcertck: may
        ImapSource(query, "pw").open().close()
    assert fake.commands()[:3] == ["CAPABILITY", "STARTTLS", "LOGIN"]


def test_preauth_with_required_tls_aborts() -> None:
    with (
        FakeImapServer(greeting=b"* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n") as fake,
        pytest.raises(SocketError, match=r"authenticated state \(PREAUTH\)"),
    ):
        ImapSource(make_query(fake), "pw").open()
    assert not {"SELECT", "LOGIN", "STARTTLS"} & set(fake.commands())


def test_preauth_without_tls_skips_login() -> None:
    with FakeImapServer(greeting=b"* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n") as fake:
        session = open_plain(fake)
        assert session.select(None).count == 2
        session.close()
    assert "LOGIN" not in fake.commands()


def test_connection_refused_is_socket_error() -> None:
    with FakeImapServer() as fake:
        port = fake.port
    server = Server("127.0.0.1", protocol=MailProtocol.IMAP, service=str(port), timeout=2)
    query = Query(server, User(remote="joe", **PLAINTEXT))
    with pytest.raises(SocketError):
        ImapSource(query, "pw").open()


def test_silent_server_times_out_on_greeting() -> None:
    with FakeImapServer(greeting=b"") as fake:
        started = time.monotonic()
        with pytest.raises(SocketError, match="timeout after 1 seconds"):
            ImapSource(make_query(fake, timeout=1, **PLAINTEXT), "pw").open()
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "greeting",
    [b"* BYE too busy\r\n", b"* OK [CAPABILITY POP3] not imap\r\n", b"garbage\r\n"],
)
def test_bad_greetings(greeting: bytes) -> None:
    with FakeImapServer(greeting=greeting) as fake, pytest.raises(FetchmailError):
        ImapSource(make_query(fake, **PLAINTEXT), "pw").open()
    assert "LOGIN" not in fake.commands()


# -- authentication -----------------------------------------------------------------


def test_logindisabled_with_auth_password_is_auth_error() -> None:
    greeting = b"* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hi\r\n"
    with (
        FakeImapServer(greeting=greeting) as fake,
        pytest.raises(AuthError, match=r"forbids it \(LOGINDISABLED\)"),
    ):
        ImapSource(make_query(fake, auth=Auth.PASSWORD, **PLAINTEXT), "pw").open()
    assert "LOGIN" not in fake.commands()


def test_login_quotes_special_characters(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    greeting = b"* OK [CAPABILITY IMAP4rev1] hi\r\n"
    with FakeImapServer(greeting=greeting) as fake:
        open_plain(fake, password='a"b\\c d').close()
    (login,) = [line for line in fake.received if b" LOGIN " in line]
    assert login.endswith(b' LOGIN joe "a\\"b\\\\c d"')
    assert 'a"b' not in caplog.text


def test_non_ascii_password_uses_plain_when_login_cannot() -> None:
    state: dict[str, bytes] = {}

    def authenticate(tag: bytes, args: bytes) -> bytes:
        state["tag"] = tag
        return b"+ \r\n"

    def data(_tag: bytes, _args: bytes) -> bytes:
        return state["tag"] + b" OK authenticated\r\n"

    replies = {"AUTHENTICATE": authenticate, "CONTINUATION": data}
    with FakeImapServer(replies=replies) as fake:
        open_plain(fake, password="pässwörd").close()
    payload = base64.b64decode(fake.received[2])
    assert payload == "\0joe\0pässwörd".encode()
    assert "LOGIN" not in fake.commands()


def test_non_ascii_password_without_plain_is_auth_error() -> None:
    with (
        FakeImapServer(greeting=b"* OK [CAPABILITY IMAP4rev1] hi\r\n") as fake,
        pytest.raises(AuthError, match="non-ASCII"),
    ):
        open_plain(fake, password="pässwörd")


def test_login_refused_is_auth_error() -> None:
    replies = {"LOGIN": b"{tag} NO [AUTHENTICATIONFAILED] nope\r\n"}
    with (
        FakeImapServer(greeting=b"* OK [CAPABILITY IMAP4rev1] hi\r\n", replies=replies) as f,
        pytest.raises(AuthError, match=r"Authorization failure on joe@127\.0\.0\.1"),
    ):
        open_plain(f)


def test_forced_external_not_advertised() -> None:
    with FakeImapServer() as fake, pytest.raises(AuthError, match="--auth external requested"):
        ImapSource(make_query(fake, auth=Auth.EXTERNAL, **PLAINTEXT), None).open()


# -- hostile and broken replies -----------------------------------------------------


def _hostile(replies: dict[str, Any], action: str = "select") -> FetchmailError:
    with FakeImapServer(replies=replies) as fake:
        session = open_plain(fake)
        try:
            with pytest.raises(FetchmailError) as info:  # noqa: PT012
                listing = session.select(None)
                if action == "retrieve":
                    for _ref, msg in session.retrieve(listing.messages):
                        msg.close()
        finally:
            session.close(commit=False)
    return info.value


def test_non_numeric_uid_in_search_is_ignored() -> None:
    replies = {"UID SEARCH": b"* SEARCH 11 x12\r\n{tag} OK done\r\n"}
    with FakeImapServer(replies=replies) as fake:
        session = open_plain(fake)
        assert [r.uid for r in session.select(None).messages] == ["11"]
        session.close()


def test_non_numeric_uid_in_fetch() -> None:
    bad = b"* 1 FETCH (UID eleven FLAGS () RFC822.SIZE 5)\r\n{tag} OK done\r\n"
    assert isinstance(_hostile({"UID FETCH": bad}), RemoteProtocolError)


def test_non_numeric_size() -> None:
    bad = b"* 1 FETCH (UID 11 FLAGS () RFC822.SIZE big)\r\n{tag} OK done\r\n"
    assert isinstance(_hostile({"UID FETCH": bad}), RemoteProtocolError)


def test_garbage_line() -> None:
    assert isinstance(_hostile({"SELECT": b"HTTP/1.1 200 OK\r\n"}), SocketError)


def test_bye_during_session() -> None:
    err = _hostile({"SELECT": b"* BYE shutting down\r\n"})
    assert isinstance(err, SocketError)


def test_connection_closed_mid_literal() -> None:
    def fetch(tag: bytes, args: bytes) -> bytes | None:
        if b"BODY" in args:
            return b"* 1 FETCH (UID 11 BODY[] {500}\r\nonly a little"
        return b"* 1 FETCH (UID 11 FLAGS () RFC822.SIZE 500)\r\n" + tag + b" OK done\r\n"

    replies = {"UID SEARCH": b"* SEARCH 11\r\n{tag} OK done\r\n", "UID FETCH": fetch}
    with FakeImapServer(replies=replies) as fake:
        session = open_plain(fake)
        listing = session.select(None)
        gen = session.retrieve(listing.messages)
        # The fake answers, then waits for the next command: close it by exiting.
    with pytest.raises((SocketError, ServerError)):
        next(gen)
    session.close(commit=False)


def test_absurd_literal_size() -> None:
    def fetch(tag: bytes, args: bytes) -> bytes | None:
        if b"BODY" in args:
            return b"* 1 FETCH (UID 11 BODY[] {99999999999999999}\r\nxx"
        return b"* 1 FETCH (UID 11 FLAGS () RFC822.SIZE 5)\r\n" + tag + b" OK done\r\n"

    replies = {"UID SEARCH": b"* SEARCH 11\r\n{tag} OK done\r\n", "UID FETCH": fetch}
    err = _hostile(replies, action="retrieve")
    assert isinstance(err, RemoteProtocolError)  # MemoryError inside imaplib, mapped


def test_timeout_waiting_for_server() -> None:
    with FakeImapServer(replies={"SELECT": b""}) as fake:
        query = make_query(fake, timeout=1, **PLAINTEXT)
        session = ImapSource(query, "pw").open()
        started = time.monotonic()
        with pytest.raises(ServerError, match="timeout after 1 seconds"):
            session.select(None)
        assert time.monotonic() - started < 5
        session.close(commit=False)


def test_readonly_select_is_lock_busy() -> None:
    ro = b"* 2 EXISTS\r\n{tag} OK [READ-ONLY] selected\r\n"
    assert isinstance(_hostile({"SELECT": ro}), ServerLockBusy)


def test_readonly_select_tolerated_with_fetchall_keep() -> None:
    ro = b"* 2 EXISTS\r\n{tag} OK [READ-ONLY] selected\r\n"
    with FakeImapServer(replies={"SELECT": ro}) as fake:
        session = open_plain(fake, fetchall=True, keep=True)
        assert session.select(None).count == 2
        session.close()
    assert "EXAMINE" in fake.commands()


# -- per-message failures in a batch ------------------------------------------------


def _listing_then(body_reply: Any) -> dict[str, Any]:
    def fetch(tag: bytes, args: bytes) -> bytes | None:
        if b"BODY" in args:
            data = body_reply(args) if callable(body_reply) else body_reply
            return data.replace(b"{tag}", tag)
        return (
            b"* 1 FETCH (UID 11 FLAGS () RFC822.SIZE 5)\r\n"
            b"* 2 FETCH (UID 12 FLAGS () RFC822.SIZE 6)\r\n" + tag + b" OK done\r\n"
        )

    return {"UID FETCH": fetch}


def test_missing_item_raises_after_earlier_messages() -> None:
    replies = _listing_then(body_fetch((1, 11, b"first")))
    with FakeImapServer(replies=replies) as fake:
        session = open_plain(fake)
        listing = session.select(None)
        gen = session.retrieve(listing.messages)
        ref, msg = next(gen)
        assert (ref.uid, msg.read_all()) == ("11", b"first")
        with pytest.raises(ServerError, match="no body for UID 12"):
            next(gen)
        session.close(commit=False)


def test_no_for_batch_falls_back_to_single_fetches() -> None:
    def reply(args: bytes) -> bytes:
        if args.startswith(b"11,12") or args.startswith(b"11:12"):
            return b"{tag} NO some message is gone\r\n"
        if args.startswith(b"11 "):
            return body_fetch((1, 11, b"first"))
        return b"{tag} NO message 12 is gone\r\n"

    with FakeImapServer(replies=_listing_then(reply)) as fake:
        session = open_plain(fake)
        gen = session.retrieve(session.select(None).messages)
        assert next(gen)[1].read_all() == b"first"
        with pytest.raises(ServerError, match="refused to fetch UID 12"):
            next(gen)
        session.close(commit=False)


def test_store_no_is_server_error_and_not_pending() -> None:
    replies = {"UID STORE": b"{tag} NO cannot\r\n"}
    with FakeImapServer(replies=replies) as fake:
        session = open_plain(fake, keep=True)  # keep: no EXPUNGE after SELECT
        ref = session.select(None).messages[0]
        with pytest.raises(ServerError, match="cannot set flags"):
            session.delete(ref)
        session.close()
    assert "EXPUNGE" not in fake.commands()
    assert "UID EXPUNGE" not in fake.commands()


def test_expunge_after_select_without_keep_only() -> None:
    with FakeImapServer() as fake:
        for session in (
            open_plain(fake),
            open_plain(fake, keep=True),
            ImapSource(make_query(fake, **PLAINTEXT), "pw", check_only=True).open(),
        ):
            session.select(None)
            session.close()
    commands = fake.commands()
    assert commands.count("EXPUNGE") == 1
    assert commands[commands.index("EXPUNGE") - 1] == "SELECT"
