"""The system Postfix test setup itself works; see fakes/test_testbed.py."""

from __future__ import annotations

import smtplib

import pytest

from testbed.postfix import PostfixInfo
from tests.integration.fakes.test_testbed import MESSAGE

pytestmark = pytest.mark.timeout(60)


@pytest.mark.postfix
def test_postfix_delivers_to_the_test_user(postfix: PostfixInfo) -> None:
    postfix.clear()
    with smtplib.SMTP(postfix.host, postfix.port, timeout=10) as smtp:
        smtp.sendmail("a@localhost", [f"{postfix.user}@localhost"], MESSAGE)
    (path,) = postfix.wait_for_messages(1, timeout=20)
    stored = path.read_bytes()
    # Postfix adds Return-Path, Delivered-To, Received, Message-Id and Date.
    assert b"Delivered-To: pfmtest@localhost\n" in stored
    assert stored.endswith(b"\n\nline 1\n.dot\n")
    postfix.clear()
    assert postfix.messages() == []
