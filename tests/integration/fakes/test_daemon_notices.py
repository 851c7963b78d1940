"""Warning mails sent by the daemon (spec section 6.9) go through the query's own sink."""

from __future__ import annotations

from typing import Any

import pytest

from pyfetchmail.config.model import NameMapping, Query, RunControl, Server, User
from pyfetchmail.delivery.warnings import auth_failure_warning, send_warning_mail

pytestmark = pytest.mark.timeout(30)


def _mail(query: Query) -> Any:
    return auth_failure_warning(query.server.pollname, query.user.remote, "POP3")


def test_warning_is_delivered_to_the_local_user(smtp_sink: Any) -> None:
    query = Query(
        Server("pop.example"),
        User(
            "joe",
            password="never-in-a-notice",
            localnames=(NameMapping("alice", "alice"),),
            smtphunt=(f"127.0.0.1/{smtp_sink.port}",),
        ),
    )
    assert send_warning_mail(query, RunControl(), "vm.example", _mail(query))
    assert smtp_sink.wait_for(1, 10)
    got = smtp_sink.received[0]
    assert got.mail_from == "FETCHMAIL-DAEMON@vm.example"
    assert got.rcpt_tos == ["alice@127.0.0.1"]
    assert b"Subject: fetchmail authentication failed on joe@pop.example" in got.data
    assert got.data.rstrip(b"\r\n").endswith(b"-- \r\nThe Fetchmail Daemon")
    assert b"never-in-a-notice" not in got.data


def test_multidrop_warning_goes_to_the_postmaster(smtp_sink: Any) -> None:
    query = Query(
        Server("pop.example"),
        User("joe", wildcard=True, smtphunt=(f"127.0.0.1/{smtp_sink.port}",)),
    )
    assert send_warning_mail(query, RunControl(postmaster="pm"), "vm", _mail(query))
    assert smtp_sink.wait_for(1, 10)
    assert smtp_sink.received[0].rcpt_tos == ["pm@127.0.0.1"]


def test_unreachable_sink_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    query = Query(
        Server("pop.example"),
        User("joe", localnames=(NameMapping("a", "a"),), smtphunt=("127.0.0.1/1",)),
    )
    assert not send_warning_mail(query, RunControl(), "vm", _mail(query))
    assert "could not send the warning mail" in caplog.text
