"""RFC 1725 ``LAST`` when the server refuses UIDL (spec §5.2 step 6).

Without UIDL there is no UID to remember; fetchmail then asks ``LAST`` and
treats messages numbered up to its answer as old.  We ask it only after
UIDL failed, list those messages with ``seen=True``, and the policy skips
them unless ``fetchall``.  The end-to-end cases run the console script
(and, for parity, the fetchmail oracle) against the scripted server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyfetchmail.config.model import MailProtocol, Query, Server, User
from pyfetchmail.engine import policy
from pyfetchmail.protocols.pop3_session import Pop3Source
from tests.fakes.fake_pop3 import FakePop3Server
from tests.integration.e2e_helpers import E2E, crlf, sample

pytestmark = pytest.mark.timeout(90)


def _query(port: int, **user_fields: Any) -> Query:
    server = Server(pollname="127.0.0.1", service=str(port), protocol=MailProtocol.POP3)
    return Query(server, User(remote="joe", sslproto="", sslcertck=False, **user_fields))


def _mailbox() -> list[bytes]:
    return [crlf(sample(n)) for n in (1, 2, 3)]


# --- the pure rule -------------------------------------------------------------


@pytest.mark.parametrize(
    ("uid", "last_seen", "fetchall", "new"),
    [
        (None, True, False, False),  # at or below LAST: old
        (None, False, False, True),  # above LAST: new
        (None, None, False, True),  # neither UIDL nor LAST: everything is new
        (None, True, True, True),  # fetchall fetches old ones too
        ("a", True, False, False),  # a UID decides, LAST is not consulted
        ("b", True, False, True),
    ],
)
def test_is_new_pop3_honours_last(
    uid: str | None, last_seen: bool | None, fetchall: bool, new: bool
) -> None:
    assert policy.is_new_pop3(uid, {"a"}, fetchall=fetchall, last_seen=last_seen) is new


# --- the session ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "seen"),
    [
        (2, [True, True, False]),
        (0, [False, False, False]),
        (3, [True, True, True]),
        (None, [None, None, None]),  # -ERR to LAST
        ("lots", [None, None, None]),  # malformed: ignored
        (7, [None, None, None]),  # more than the maildrop holds: ignored
    ],
)
def test_listing_marks_messages_up_to_last(last: int | str | None, seen: list[bool | None]) -> None:
    with FakePop3Server(mailbox=_mailbox(), uidl_err=True, last=last) as srv:
        session = Pop3Source(_query(srv.port), "secret").open()
        listing = session.select(None)
        session.close()
        assert [r.uid for r in listing.messages] == [None, None, None]
        assert [r.seen for r in listing.messages] == seen
        assert "LAST" in srv.commands
        assert srv.commands.index("LAST") > srv.commands.index("UIDL")


def test_last_not_asked_when_uidl_works() -> None:
    with FakePop3Server(mailbox=_mailbox(), last=2) as srv:
        session = Pop3Source(_query(srv.port), "secret").open()
        listing = session.select(None)
        session.close()
        assert [r.seen for r in listing.messages] == [None, None, None]
        assert "LAST" not in srv.commands


def test_last_not_asked_with_fetchall() -> None:
    with FakePop3Server(mailbox=_mailbox(), uidl_err=True, last=2) as srv:
        session = Pop3Source(_query(srv.port, fetchall=True), "secret").open()
        session.select(None)
        session.close()
        assert "LAST" not in srv.commands


# --- end to end, with fetchmail for parity ------------------------------------------


def _rc(env: E2E, port: int, smtp_port: int, opts: str) -> None:
    env.write_rc(
        f"poll 127.0.0.1 proto pop3 port {port} no dns\n"
        "  user joe password secret is joe here\n"
        f"  sslproto '' no sslcertck smtphost 127.0.0.1/{smtp_port} {opts}\n"
    )


def test_e2e_keep_without_last_refetches_every_poll(tmp_path: Path, smtp_sink: Any) -> None:
    env = E2E(tmp_path)
    with FakePop3Server(mailbox=_mailbox(), uidl_err=True, last=None) as srv:
        _rc(env, srv.port, smtp_sink.port, "keep")
        for _ in range(2):
            done = env.pyfetchmail()
            assert done.returncode == 0, done
        assert len(smtp_sink.received) == 6  # as fetchmail: no UIDL, no LAST, no memory
