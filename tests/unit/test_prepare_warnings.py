"""Warning-mail composition (spec §6.9): recipients, subject encoding, layout."""

from __future__ import annotations

from datetime import UTC, datetime

from pyfetchmail.config.model import NameMapping, Query, RunControl, Server, User
from pyfetchmail.delivery.warnings import (
    WarningMail,
    auth_failure_warning,
    auth_ok_warning,
    compose_warning,
    timeout_warning,
    warning_recipient,
)

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_recipient_single_vs_multidrop() -> None:
    single = Query(Server("p"), User("r", localnames=(NameMapping("alice", "alice"),)))
    multi = Query(Server("p"), User("r", localnames=(NameMapping("a", "a"),), wildcard=True))
    assert warning_recipient(single, RunControl(postmaster="pm")) == "alice"
    assert warning_recipient(multi, RunControl(postmaster="pm")) == "pm"


def test_non_ascii_subject_is_rfc2047_encoded() -> None:
    data = compose_warning(
        WarningMail("Größe", "Zeile\n"), sender="F@h", recipient="a@h", date=WHEN
    )
    assert b"Subject: =?utf-8?b?R3LDtsOfZQ==?=\r\n" in data
    assert data.endswith(b"\r\n\r\nZeile\r\n\r\n-- \r\nThe Fetchmail Daemon\r\n")


def test_subjects() -> None:
    assert timeout_warning("s", "u", 20).subject == "fetchmail sees repeated timeouts"
    assert (
        auth_failure_warning("s", "u", "IMAP").subject == "fetchmail authentication failed on u@s"
    )
    assert auth_ok_warning("s", "u").subject == "fetchmail authentication OK on u@s"
