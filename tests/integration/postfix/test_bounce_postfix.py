"""Bounce (DSN) sent through the real Postfix on 127.0.0.1:25.

Composition and the sink cases are in fakes/test_bounce.py.
"""

from __future__ import annotations

import pytest

from pyfetchmail.delivery.base import DeliveryResult, Envelope, Outcome
from pyfetchmail.delivery.bounce import (
    REASON_GENERAL,
    send_bounce,
)
from testbed.postfix import PostfixInfo
from tests.integration.fakes.test_bounce import NOSOFT, QUERY, _prepared

pytestmark = pytest.mark.timeout(60)


@pytest.mark.postfix
def test_bounce_through_real_postfix_on_port_25(postfix: PostfixInfo) -> None:
    postfix.clear()
    envelope = Envelope(f"{postfix.user}@localhost", ("alice",))
    result = DeliveryResult(Outcome.PERMFAIL, 550, "550 5.7.1 rejected", ())
    # default host/port: localhost:25, as fetchmail hard-codes
    assert send_bounce(
        _prepared(), envelope, result, query=QUERY, run=NOSOFT, fetchmailhost="localhost",
        reason=REASON_GENERAL, timeout=10,
    )  # fmt: skip
    (path,) = postfix.wait_for_messages(1, timeout=20)
    stored = path.read_bytes()
    assert b"Subject: Mail delivery failed: returning message to sender\n" in stored
    assert b"Content-Type: message/delivery-status\n" in stored
    assert b"Return-Path: <>\n" in stored  # sent from the null reverse-path
