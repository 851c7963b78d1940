"""End to end over IMAP: the installed ``pyfetchmail`` against the private Dovecot.

Every test runs the console script in a subprocess with a private HOME, an rc
file of mode 0600, its own ``--idfile``/``--pidfile``, STARTTLS verified
against the test CA (mandatory by default, spec §5.6) and a bounded timeout.
Delivery goes to the aiosmtpd sink.  What is checked is what a user sees:
exit status (spec §3), the bytes that arrived, what is left on the server
and with which flags (spec §5.3, §6.8).

"New" for IMAP follows :mod:`pyfetchmail.engine.poll`: by default (fetchmail
compatible) a message is new iff it is not ``\\Seen``; with ``uidl`` on the
entry a message is new iff its UID is not recorded for the folder's
UIDVALIDITY, with ``\\Seen`` as the fallback while no baseline exists.
Those rules are in ``test_e2e_imap_state.py``; IDLE, TLS and authentication
are in ``test_e2e_imap_session.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.e2e_helpers import E2E, crlf, sample, strip_received, without_return_path

pytestmark = [pytest.mark.dovecot, pytest.mark.timeout(90)]

_RECEIVED_IMAP = re.compile(rb"\A(Received: from 127\.0\.0\.1[^\r]*\r\n)\tby \S+ with IMAP ")


def imap_rc(
    dovecot: Any,
    user: Any,
    *,
    smtp_port: int | None = None,
    user_opts: str = "",
    server_opts: str = "",
    ssl: bool = False,
    password: str | None = None,
) -> str:
    """An rc for the test Dovecot over IMAP + verified STARTTLS (or IMAPS with *ssl*)."""
    port = dovecot.imaps_port if ssl else dovecot.imap_port
    sink = f" smtphost 127.0.0.1/{smtp_port}" if smtp_port is not None else ""
    secret = user.password if password is None else password
    return (
        f"poll 127.0.0.1 proto imap service {port} no dns {server_opts}\n"
        f'  user "{user.name}" password "{secret}" is joe here\n'
        f'  {"ssl " if ssl else ""}sslcertfile "{dovecot.ca_file}" sslcommonname localhost{sink}\n'
        f"  {user_opts}\n"
    )


@pytest.fixture
def e2e(tmp_path: Path) -> E2E:
    return E2E(tmp_path / "home")


def _fill(user: Any, *sizes: int, folder: str | None = None, first: int = 1) -> list[bytes]:
    raws = [sample(n, size=size) for n, size in enumerate(sizes, first)]
    for raw in raws:
        user.deliver(raw, folder=folder)
    return raws


def _bodies(sink: Any) -> list[bytes]:
    return [strip_received(m.data) for m in sink.received]


def _served(raw: bytes) -> bytes:
    """What the sink must get for a stored message: CRLF, no Return-Path (§6.6 step 11)."""
    return crlf(without_return_path(raw))


def test_starttls_exact_bytes_deleted_then_nomail(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raws = _fill(mailuser, 0, 0, 20_000)
    e2e.write_rc(imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port))
    first = e2e.pyfetchmail()
    assert first.returncode == 0, first
    assert _bodies(smtp_sink) == [_served(raw) for raw in raws]
    for msg in smtp_sink.received:
        assert _RECEIVED_IMAP.match(msg.data), msg.data[:200]
        assert msg.rcpt_tos == ["joe@127.0.0.1"]
    assert [m.mail_from for m in smtp_sink.received] == [
        f"sender{n}@remote.example" for n in (1, 2, 3)
    ]
    assert mailuser.messages() == []  # not keep: flagged \Deleted and expunged
    assert f"3 messages for {mailuser.name} at 127.0.0.1" in first.output
    assert first.output.count(" flushed") == 3

    second = e2e.pyfetchmail()
    assert second.returncode == 1, second
    assert len(smtp_sink.received) == 3


def test_imaps_to_smtp(e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any) -> None:
    raws = _fill(mailuser, 0, 0)
    e2e.write_rc(imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, ssl=True))
    run = e2e.pyfetchmail()
    assert run.returncode == 0, run
    assert _bodies(smtp_sink) == [_served(raw) for raw in raws]
    assert mailuser.messages() == []


def test_several_folders_each_delivered_once(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    # "Entwürfe" is stored under its modified UTF-7 name (RFC 3501 §5.1.3).
    inbox = _fill(mailuser, 0, 0)
    old = _fill(mailuser, 0, folder="Old Mail", first=10)
    drafts = _fill(mailuser, 0, 0, folder="Entw&APw-rfe", first=20)
    # pyfetchmail takes Unicode folder names in the rc and encodes them itself
    # (imapclient's folder encoding); see the wire-name test below.
    e2e.write_rc(
        imap_rc(
            dovecot,
            mailuser,
            smtp_port=smtp_sink.port,
            user_opts='folder INBOX "Old Mail" "Entwürfe"',
        )
    )
    first = e2e.pyfetchmail()
    assert first.returncode == 0, first
    assert sorted(_bodies(smtp_sink)) == sorted(_served(r) for r in inbox + old + drafts)
    for folder in (None, "Old Mail", "Entw&APw-rfe"):
        assert mailuser.messages(folder) == [], folder
    assert "(folder Old Mail)" in first.output

    # A new message in one folder: only it is fetched on the next poll.
    late = _fill(mailuser, 0, folder="Old Mail", first=30)
    second = e2e.pyfetchmail()
    assert second.returncode == 0, second
    assert _bodies(smtp_sink)[5:] == [_served(late[0])]
    third = e2e.pyfetchmail()
    assert third.returncode == 1, third
    assert len(smtp_sink.received) == 6


@pytest.mark.oracle
def test_fetchmail_sends_folder_names_as_written(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    # spec §5.3 step 7: fetchmail sends the rc string as is, so its users write
    # the modified UTF-7 wire name.
    drafts = _fill(mailuser, 0, folder="Entw&APw-rfe")
    e2e.write_rc(
        imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts='folder "Entw&APw-rfe"')
    )
    run = e2e.fetchmail()
    assert run.returncode == 0, run
    assert _bodies(smtp_sink)[-1:] == [_served(drafts[0])]


def test_folder_wire_name_as_fetchmail_users_write_it(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    drafts = _fill(mailuser, 0, folder="Entw&APw-rfe")
    e2e.write_rc(
        imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts='folder "Entw&APw-rfe"')
    )
    run = e2e.pyfetchmail()
    assert run.returncode == 0, run
    assert _bodies(smtp_sink) == [_served(drafts[0])]


def test_keep_sets_seen_and_leaves_message(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raws = _fill(mailuser, 0, 0)
    e2e.write_rc(imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="keep"))
    first = e2e.pyfetchmail()
    assert first.returncode == 0, first
    assert _bodies(smtp_sink) == [_served(raw) for raw in raws]
    assert mailuser.messages() == raws
    assert mailuser.flags() == ["S", "S"]  # STORE +FLAGS (\Seen), spec §6.8 step 5
    assert first.output.count(" not flushed") == 2

    second = e2e.pyfetchmail()
    assert second.returncode == 1, second
    assert len(smtp_sink.received) == 2
    assert mailuser.messages() == raws


def test_fetchall_refetches_seen_messages(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raws = _fill(mailuser, 0, 0)
    mailuser.set_seen(0)  # read by another client: not new (spec §5.3 step 9)
    e2e.write_rc(imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="keep"))
    first = e2e.pyfetchmail()
    assert first.returncode == 0, first
    assert _bodies(smtp_sink) == [_served(raws[1])]

    e2e.write_rc(imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="fetchall"))
    second = e2e.pyfetchmail()
    assert second.returncode == 0, second
    assert _bodies(smtp_sink)[1:] == [_served(raw) for raw in raws]
    assert mailuser.messages() == []


def test_limit_skips_big_messages_and_limitflush_deletes_them(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raws = _fill(mailuser, 0, 5000, 0)
    e2e.write_rc(imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="limit 2000"))
    first = e2e.pyfetchmail()
    assert first.returncode == 0, first
    assert _bodies(smtp_sink) == [_served(raws[0]), _served(raws[2])]
    assert mailuser.messages() == [raws[1]]
    assert mailuser.flags() == [""]  # oversized: not fetched, not marked seen (§6.8 step 2)
    assert "oversized" in first.output

    again = e2e.pyfetchmail()
    assert again.returncode == 1, again
    assert mailuser.messages() == [raws[1]]

    e2e.write_rc(
        imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="limit 2000 limitflush")
    )
    flushed = e2e.pyfetchmail()
    assert flushed.returncode in (0, 1), flushed
    assert mailuser.messages() == []
    assert len(smtp_sink.received) == 2


def test_fetchlimit_stops_with_maxfetch(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raws = _fill(mailuser, 0, 0, 0, 0)
    e2e.write_rc(imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="fetchlimit 2"))
    first = e2e.pyfetchmail()
    assert first.returncode == 13, first
    assert _bodies(smtp_sink) == [_served(raw) for raw in raws[:2]]
    assert mailuser.messages() == raws[2:]
    assert "Query status=13 (MAXFETCH)" in first.output

    # Exactly the limit left: nothing remains, so no MAXFETCH (as fetchmail).
    second = e2e.pyfetchmail()
    assert second.returncode == 0, second
    assert _bodies(smtp_sink) == [_served(raw) for raw in raws]
    assert mailuser.messages() == []


@pytest.mark.parametrize(("every", "groups"), [(2, [2, 2, 1]), (0, [5]), (1, [1] * 5)])
def test_expunge_n_removes_in_groups(
    every: int, groups: list[int], e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raws = _fill(mailuser, 0, 0, 0, 0, 0)
    e2e.write_rc(imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts=f"expunge {every}"))
    run = e2e.pyfetchmail("-v")
    assert run.returncode == 0, run
    assert _bodies(smtp_sink) == [_served(raw) for raw in raws]
    assert mailuser.messages() == []
    expunged = [int(n) for n in re.findall(r"expunged (\d+) message\(s\)", run.output)]
    assert expunged == groups, run.output
