"""Bounce (DSN) composition against fetchmail's sample, and sending to a sink."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pyfetchmail.config.model import Query, RunControl, Server, User
from pyfetchmail.delivery.base import DeliveryResult, Envelope, Outcome, RecipientResult
from pyfetchmail.delivery.bounce import (
    REASON_GENERAL,
    REASON_LMTP_PARTIAL,
    REASON_RECIPIENTS,
    BounceFailure,
    bounce_headers,
    bounce_recipient,
    compose_bounce,
    failures_of,
    send_bounce,
    send_dsn,
)
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.mail.prepare import prepare_message
from testbed.dovecot import free_ports
from testbed.sinks import SmtpSink
from tests.builders import SAMPLE_MESSAGE, sample_query, sample_trace
from tests.samples import SAMPLES

pytestmark = pytest.mark.timeout(60)

WHEN = datetime(2026, 11, 21, 7, 33, 28, tzinfo=UTC)
BOUNDARY = "foo-mani-padme-hum-30896-30894-1795246408"
ORIGINAL = SAMPLE_MESSAGE
NOSOFT = RunControl(postmaster="alice", softbounce=False)


def _sample_dsn() -> bytes:
    sample = SAMPLES / "bounce-message-smtp-view.txt"
    lines = [ln[3:] for ln in sample.read_text().splitlines() if ln.startswith("D: ")]
    assert lines[-1] == "."
    return "".join(ln + "\r\n" for ln in lines[:-1]).encode()


QUERY = sample_query()


def _prepared() -> SpooledMessage:
    return prepare_message(
        SpooledMessage.from_bytes(ORIGINAL), QUERY, NOSOFT, sample_trace()
    ).message


def test_dsn_byte_exact_against_fetchmail_sample() -> None:
    result = DeliveryResult(
        Outcome.PERMFAIL,
        550,
        "550 5.7.1 rejected",
        (RecipientResult("alice@localhost", 250, "250 ok"),),
    )
    dsn = compose_bounce(
        recipient="sender@remote.example",
        reason=REASON_GENERAL,
        failures=failures_of(result, ["alice@localhost"]),
        original_headers=bounce_headers(_prepared()),
        fetchmailhost="vm",
        date=WHEN,
        boundary=BOUNDARY,
    )
    assert dsn == _sample_dsn()


def test_dsn_several_failures_and_status_fallback() -> None:
    dsn = compose_bounce(
        recipient="s@x",
        reason=REASON_RECIPIENTS,
        failures=[BounceFailure("a@h", "550 5.1.1 unknown"), BounceFailure("b@h", "554 no")],
        original_headers=b"Subject: x\r\n",
        fetchmailhost="vm",
        date=WHEN,
        boundary="B",
        proto="LMTP",
    )
    text = dsn.decode()
    assert "a@h\r\n   LMTP error: 550 5.1.1 unknown\r\nb@h\r\n   LMTP error: 554 no\r\n" in text
    assert "Status: 5.1.1\r\n" in text
    assert "Status: 5.0.0\r\nDiagnostic-Code: 554 no\r\n\r\n--B\r\n" in text
    assert text.endswith("Content-Type: text/rfc822-headers\r\n\r\nSubject: x\r\n\r\n--B--\r\n")


@pytest.mark.parametrize(
    ("sender", "run", "expected"),
    [
        ("s@x", RunControl(), "s@x"),
        ("", RunControl(), None),
        ("<>", RunControl(), None),
        ("MAILER-DAEMON", RunControl(), None),
        ("mailer-daemon@relay.example", RunControl(), None),
        ("s@x", RunControl(bouncemail=False, postmaster="pm"), "pm"),
        ("s@x", RunControl(bouncemail=False, postmaster=""), None),
    ],
)
def test_bounce_recipient(sender: str, run: RunControl, expected: str | None) -> None:
    assert bounce_recipient(sender, run) == expected


def test_send_bounce_to_sink(smtp_sink: SmtpSink) -> None:
    sent = send_dsn(
        sender="sender@remote.example",
        reason=REASON_GENERAL,
        failures=[BounceFailure("alice@localhost", "550 5.7.1 rejected")],
        original_headers=b"Subject: first\r\n\r\n",
        fetchmailhost="vm",
        run=NOSOFT,
        host=smtp_sink.host,
        port=smtp_sink.port,
        timeout=5,
    )
    assert sent
    (got,) = smtp_sink.wait_for(1)
    assert got.mail_from == "<>"
    assert got.rcpt_tos == ["sender@remote.example"]
    assert got.data.startswith(b"Subject: Mail delivery failed: returning message to sender\r\n")
    assert b'boundary="foo-mani-padme-hum-' in got.data


def test_no_bounce_to_null_sender(smtp_sink: SmtpSink) -> None:
    for sender in ("", "<>", "MAILER-DAEMON@x"):
        assert not send_dsn(
            sender=sender,
            reason=REASON_GENERAL,
            failures=[BounceFailure("a@h", "550 x")],
            original_headers=b"",
            fetchmailhost="vm",
            run=NOSOFT,
            host=smtp_sink.host,
            port=smtp_sink.port,
        )
    assert smtp_sink.transactions == []


def test_bounce_refused_or_unreachable(smtp_sink: SmtpSink) -> None:
    smtp_sink.reject_rcpt("s@x", "550 no such user")
    kwargs = {
        "sender": "s@x",
        "reason": REASON_GENERAL,
        "failures": [BounceFailure("a@h", "550 x")],
        "original_headers": b"S: x\r\n\r\n",
        "fetchmailhost": "vm",
        "run": NOSOFT,
        "timeout": 5.0,
    }
    assert not send_dsn(host=smtp_sink.host, port=smtp_sink.port, **kwargs)  # type: ignore[arg-type]
    (dead,) = free_ports(1)
    assert not send_dsn(host="127.0.0.1", port=dead, **kwargs)  # type: ignore[arg-type]


def test_send_bounce_for_engine_result(smtp_sink: SmtpSink) -> None:
    message = _prepared()
    envelope = Envelope("sender@remote.example", ("alice",))
    result = DeliveryResult(Outcome.PERMFAIL, 550, "550 5.7.1 rejected", ())
    sent = send_bounce(
        message, envelope, result, query=QUERY, run=NOSOFT, fetchmailhost="vm",
        reason=REASON_GENERAL, host=smtp_sink.host, port=smtp_sink.port, timeout=5,
    )  # fmt: skip
    assert sent
    (got,) = smtp_sink.wait_for(1)
    text = got.data.decode("latin-1")
    assert "Reason: General SMTP/ESMTP error.\r\n" in text
    assert "alice@localhost\r\n   SMTP error: 550 5.7.1 rejected\r\n" in text
    assert "pyfetchmail-" not in text  # our own Received header is not echoed back
    assert "Content-Type: text/rfc822-headers\r\n\r\nReceived: from mx by pop.test" in text


def test_partial_rejection_reason(smtp_sink: SmtpSink) -> None:
    envelope = Envelope("s@x", ("alice", "bob"))
    result = DeliveryResult(
        Outcome.ACCEPTED, 250, "250 ok",
        (RecipientResult("alice@localhost", 250, "250 ok"),
         RecipientResult("bob@localhost", 550, "550 5.1.1 unknown")),
    )  # fmt: skip
    lmtp_query = Query(
        Server("p"), User("joe", lmtp=True, smtphunt=("h/24",), localnames=QUERY.user.localnames)
    )
    for query in (QUERY, lmtp_query):
        assert send_bounce(
            _prepared(), envelope, result, query=query, run=NOSOFT, fetchmailhost="vm",
            reason=REASON_GENERAL, host=smtp_sink.host, port=smtp_sink.port, timeout=5,
        )  # fmt: skip
    first, second = smtp_sink.wait_for(2)
    assert f"Reason: {REASON_RECIPIENTS}".encode() in first.data
    assert b"bob@localhost\r\n   SMTP error: 550 5.1.1 unknown\r\n" in first.data
    assert b"alice@localhost\r\n" not in first.data
    assert f"Reason: {REASON_LMTP_PARTIAL}".encode() in second.data
    assert b"   LMTP error: 550 5.1.1 unknown" in second.data
