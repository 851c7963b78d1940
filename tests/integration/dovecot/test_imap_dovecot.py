"""ImapSource against the private Dovecot: TLS, auth, listing, fetch, flags, folders."""

from __future__ import annotations

import imaplib
import logging
import ssl
from typing import Any

import pytest
from imapclient.imap_utf7 import encode as utf7_encode

from pyfetchmail.config.model import Auth, MailProtocol, Query, Server, User
from pyfetchmail.errors import AuthError, SocketError
from pyfetchmail.protocols.imap import ImapSession, ImapSource
from testbed.dovecot import Dovecot, MailUser

pytestmark = [pytest.mark.dovecot, pytest.mark.timeout(30)]


def make_query(
    dovecot: Dovecot,
    user: MailUser,
    *,
    ssl_on: bool = False,
    auth: Auth = Auth.ANY,
    mailboxes: tuple[str, ...] = (),
    **user_opts: Any,
) -> Query:
    port = dovecot.imaps_port if ssl_on else dovecot.imap_port
    server = Server(
        pollname="127.0.0.1", protocol=MailProtocol.IMAP, service=str(port), timeout=10, auth=auth
    )
    opts: dict[str, Any] = {
        "sslcertfile": str(dovecot.ca_file),
        "sslcommonname": "localhost",
    }
    opts.update(user_opts)
    return Query(server, User(remote=user.name, ssl=ssl_on, mailboxes=mailboxes, **opts))


def open_session(query: Query, password: str | None, **kw: Any) -> ImapSession:
    return ImapSource(query, password, **kw).open()


MSG = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody line\r\n"


def _raw(n: int) -> bytes:
    return MSG.replace(b"hi", f"hi {n}".encode())


def test_starttls_verified_listing_and_exact_bytes(dovecot: Dovecot, mailuser: MailUser) -> None:
    mailuser.deliver(_raw(1))
    mailuser.deliver(_raw(2), seen=True)
    session = open_session(make_query(dovecot, mailuser), mailuser.password)
    try:
        listing = session.select(None)
        assert listing.folder == "INBOX"
        assert listing.count == 2
        assert listing.uidvalidity
        first, second = listing.messages
        assert (first.number, second.number) == (1, 2)
        assert first.uid is not None
        assert second.uid is not None
        assert int(first.uid) < int(second.uid)
        assert (first.size, second.size) == (len(_raw(1)), len(_raw(2)))
        assert (first.seen, second.seen) == (False, True)
        assert listing.total_octets == first.size + second.size
        got = [(ref, msg.read_all()) for ref, msg in session.retrieve(listing.messages)]
        assert [body for _, body in got] == [_raw(1), _raw(2)]
        assert session.peer_address == "127.0.0.1"
        assert session.protocol_name == "IMAP"
    finally:
        session.close()
    # BODY.PEEK[]: fetching did not set \Seen.
    assert mailuser.flags() == ["", "S"]


def test_imaps_and_mark_seen(dovecot: Dovecot, mailuser: MailUser) -> None:
    mailuser.deliver(_raw(1))
    session = open_session(make_query(dovecot, mailuser, ssl_on=True), mailuser.password)
    try:
        (ref,) = session.select("INBOX").messages
        session.mark_seen(ref)
    finally:
        session.close()
    assert mailuser.flags() == ["S"]


def test_wrong_certificate_name_fails(dovecot: Dovecot, mailuser: MailUser) -> None:
    query = make_query(dovecot, mailuser, sslcommonname="not-the-server.example")
    with pytest.raises(SocketError, match="certificate verification"):
        open_session(query, mailuser.password)


def test_fingerprint_pin(dovecot: Dovecot, mailuser: MailUser) -> None:
    good = make_query(dovecot, mailuser, sslfingerprint=dovecot.cert_md5.lower())
    open_session(good, mailuser.password).close()
    bad = make_query(dovecot, mailuser, sslfingerprint="00:" * 15 + "00")
    with pytest.raises(SocketError, match="fingerprints do not match"):
        open_session(bad, mailuser.password)


def test_delete_and_expunge_removes_from_maildir(dovecot: Dovecot, mailuser: MailUser) -> None:
    for n in range(3):
        mailuser.deliver(_raw(n))
    session = open_session(make_query(dovecot, mailuser), mailuser.password)
    try:
        refs = session.select(None).messages
        session.delete(refs[1])
        session.expunge()
        # After EXPUNGE sequence numbers shift; UIDs must still address the right mail.
        session.delete(refs[2])
        listing = session.select(None)  # flagged messages are not listed
        assert [r.uid for r in listing.messages] == [refs[0].uid]
    finally:
        session.close()
    assert mailuser.messages() == [_raw(0).replace(b"\r\n", b"\n")]


def test_close_without_commit_keeps_messages(dovecot: Dovecot, mailuser: MailUser) -> None:
    mailuser.deliver(_raw(1))
    session = open_session(make_query(dovecot, mailuser), mailuser.password)
    (ref,) = session.select(None).messages
    session.delete(ref)
    session.close(commit=False)
    assert len(mailuser.messages()) == 1
    assert mailuser.flags() == ["ST"]  # Maildir: S = \\Seen, T = \\Deleted


def test_check_only_uses_examine(dovecot: Dovecot, mailuser: MailUser) -> None:
    mailuser.deliver(_raw(1))
    session = open_session(make_query(dovecot, mailuser), mailuser.password, check_only=True)
    try:
        assert session.select(None).count == 1
    finally:
        session.close()
    assert mailuser.flags() == [""]


@pytest.mark.parametrize(
    ("auth", "password_factory", "mechanism"),
    [
        (Auth.PASSWORD, None, "LOGIN"),
        (Auth.CRAM_MD5, None, "CRAM-MD5"),
        (Auth.ANY, None, "CRAM-MD5"),
        (Auth.PASSWORD, 'q"uo\\te sp é', "PLAIN"),
        (Auth.PASSWORD, 'q"uo\\te sp', "LOGIN"),
        (Auth.ANY, 'q"uo\\te sp é', "CRAM-MD5"),
    ],
)
def test_authentication_mechanisms(
    dovecot: Dovecot,
    auth: Auth,
    password_factory: str | None,
    mechanism: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import secrets

    password = password_factory or secrets.token_urlsafe(10)
    user = dovecot.add_user(f"a{secrets.token_hex(5)}", password)
    caplog.set_level(logging.DEBUG)
    transcript = logging.getLogger("pyfetchmail.transcript")
    old = transcript.level
    transcript.setLevel(logging.DEBUG)
    try:
        session = open_session(make_query(dovecot, user, auth=auth), password)
        session.select(None)
        session.close()
    finally:
        transcript.setLevel(old)
    assert f"authenticated {user.name} with {mechanism}" in caplog.text
    assert "IMAP> " in caplog.text
    assert "IMAP< " in caplog.text
    assert password not in caplog.text


def test_wrong_password_is_auth_error(
    dovecot: Dovecot, mailuser: MailUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as info:
        open_session(make_query(dovecot, mailuser, auth=Auth.PASSWORD), "wrong-" + "pw")
    assert mailuser.name in str(info.value)
    assert "wrong-pw" not in caplog.text


def test_several_folders_with_utf7_and_space(dovecot: Dovecot, mailuser: MailUser) -> None:
    names = ["Entwürfe", "Old Mail"]
    for n, name in enumerate(names):
        mailuser.create_folder(utf7_encode(name).decode("ascii"))
        mailuser.deliver(_raw(n), folder=utf7_encode(name).decode("ascii"))
    query = make_query(dovecot, mailuser, mailboxes=tuple(names))
    session = open_session(query, mailuser.password)
    try:
        bodies = []
        for name in names:
            listing = session.select(name)
            assert listing.folder == name
            assert all(ref.folder == name for ref in listing.messages)
            bodies += [m.read_all() for _, m in session.retrieve(listing.messages)]
            for ref in listing.messages:
                session.delete(ref)
        assert bodies == [_raw(0), _raw(1)]
    finally:
        session.close()
    for name in names:
        assert mailuser.messages(utf7_encode(name).decode("ascii")) == []


def test_batches_many_messages_in_order(dovecot: Dovecot, mailuser: MailUser) -> None:
    for n in range(250):
        mailuser.deliver(_raw(n))
    session = open_session(make_query(dovecot, mailuser), mailuser.password)
    try:
        listing = session.select(None)
        assert listing.count == 250
        got = [m.read_all() for _, m in session.retrieve(listing.messages)]
    finally:
        session.close()
    assert got == [_raw(n) for n in range(250)]


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_large_message_is_chunked_with_bounded_memory(dovecot: Dovecot, mailuser: MailUser) -> None:
    import tracemalloc

    line = b"x" * 76 + b"\r\n"
    big = MSG + line * (20 * (1 << 20) // len(line))
    mailuser.deliver(big)
    session = open_session(make_query(dovecot, mailuser), mailuser.password)
    try:
        listing = session.select(None)
        tracemalloc.start()
        try:
            ((_ref, msg),) = list(session.retrieve(listing.messages))
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert msg.size == len(big)
        assert not msg.in_memory
        assert b"".join(msg.iter_chunks()) == big
    finally:
        session.close()
    # One 1 MiB chunk plus parsing copies, far below the 20 MiB message.
    assert peak < 8 * (1 << 20), peak


def test_append_from_other_client_is_listed(dovecot: Dovecot, mailuser: MailUser) -> None:
    ctx = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=ctx, timeout=10) as imap:
        imap.login(mailuser.name, mailuser.password)
        imap.append("INBOX", None, None, _raw(7))
    session = open_session(make_query(dovecot, mailuser), mailuser.password)
    try:
        (ref,) = session.select(None).messages
        ((_r, msg),) = list(session.retrieve([ref]))
        assert msg.read_all() == _raw(7)
    finally:
        session.close()


def test_no_wire_lines_at_plain_debug(
    dovecot: Dovecot, mailuser: MailUser, caplog: pytest.LogCaptureFixture
) -> None:
    """-v (DEBUG) without -vv: no raw imaplib wire lines, and never the password."""
    caplog.set_level(logging.DEBUG)
    logging.getLogger("pyfetchmail.transcript").setLevel(logging.CRITICAL + 1)
    try:
        session = open_session(make_query(dovecot, mailuser, auth=Auth.PASSWORD), mailuser.password)
        session.close()
    finally:
        logging.getLogger("pyfetchmail.transcript").setLevel(logging.NOTSET)
    assert "authenticated" in caplog.text
    assert "REDACTED" not in caplog.text  # imapclient's raw wire lines
    assert "CAPABILITY" not in caplog.text
    assert "IMAP>" not in caplog.text
    assert mailuser.password not in caplog.text


def test_certificate_checked_against_ip_without_commonname(
    dovecot: Dovecot, mailuser: MailUser
) -> None:
    # The test certificate carries IP:127.0.0.1, the poll name here.
    query = make_query(dovecot, mailuser, ssl_on=True, sslcommonname=None)
    open_session(query, mailuser.password).close()


def test_no_sslcertck_warns_and_still_uses_tls(
    dovecot: Dovecot, mailuser: MailUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    query = make_query(
        dovecot, mailuser, sslcertck=False, sslcertfile=None, sslcommonname="wrong.example"
    )
    open_session(query, mailuser.password).close()
    assert "the connection is insecure" in caplog.text
    assert "key fingerprint" in caplog.text  # logged after every TLS handshake


@pytest.mark.parametrize("keep", [False, True])
def test_select_expunges_leftover_deleted_unless_keep(
    dovecot: Dovecot, mailuser: MailUser, keep: bool
) -> None:
    mailuser.deliver(_raw(1))
    mailuser.deliver(_raw(2))
    ctx = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=ctx, timeout=10) as imap:
        imap.login(mailuser.name, mailuser.password)
        imap.select("INBOX")
        imap.store("1", "+FLAGS", "(\\Deleted)")
        imap.logout()
    session = open_session(make_query(dovecot, mailuser, keep=keep), mailuser.password)
    try:
        listing = session.select(None)
        assert [r.size for r in listing.messages] == [len(_raw(2))]
    finally:
        session.close()
    assert len(mailuser.messages()) == (2 if keep else 1)
