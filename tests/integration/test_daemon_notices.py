"""Warning mails (spec section 6.9) go through the query's own sink."""

from __future__ import annotations

from typing import Any

import pytest

from pyfetchmail.config.model import NameMapping, Query, RunControl, Server, User
from pyfetchmail.notices import auth_failed, compose, send_notice

pytestmark = pytest.mark.timeout(30)


def test_compose_headers_and_signature() -> None:
    query = Query(Server("pop.example"), User("joe"))
    raw = compose(auth_failed(query, 3), sender="FETCHMAIL-DAEMON@vm", recipient="alice")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"From: FETCHMAIL-DAEMON@vm\r\n" in head
    assert b"To: alice\r\n" in head
    assert b"Subject: fetchmail authentication failed on joe@pop.example\r\n" in head
    assert b'Content-Type: text/plain; charset="UTF-8"' in head
    assert body.endswith(b"-- \r\nThe Fetchmail Daemon\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_notice_is_delivered_to_the_local_user(smtp_sink: Any) -> None:
    query = Query(
        Server("pop.example"),
        User(
            "joe",
            password="never-in-a-notice",
            localnames=(NameMapping("alice", "alice"),),
            smtphunt=(f"127.0.0.1/{smtp_sink.port}",),
        ),
    )
    assert send_notice(query, RunControl(), "vm.example", auth_failed(query, 3))
    assert smtp_sink.wait_for(1, 10)
    got = smtp_sink.received[0]
    assert got.mail_from == "FETCHMAIL-DAEMON@vm.example"
    assert got.rcpt_tos == ["alice@127.0.0.1"]
    assert b"fetchmail authentication failed on joe@pop.example" in got.data
    assert b"never-in-a-notice" not in got.data


def test_multidrop_notice_goes_to_the_postmaster(smtp_sink: Any) -> None:
    query = Query(
        Server("pop.example"),
        User("joe", wildcard=True, smtphunt=(f"127.0.0.1/{smtp_sink.port}",)),
    )
    assert send_notice(query, RunControl(postmaster="pm"), "vm", auth_failed(query, 3))
    assert smtp_sink.wait_for(1, 10)
    assert smtp_sink.received[0].rcpt_tos == ["pm@127.0.0.1"]


def test_unreachable_sink_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    query = Query(
        Server("pop.example"),
        User("joe", localnames=(NameMapping("a", "a"),), smtphunt=("127.0.0.1/1",)),
    )
    assert not send_notice(query, RunControl(), "vm", auth_failed(query, 3))
    assert "could not send the notice" in caplog.text
