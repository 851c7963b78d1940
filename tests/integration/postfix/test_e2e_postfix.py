"""End to end through the system Postfix on 127.0.0.1:25 (spec §6.1, §6.2, §6.3).

With no ``smtphost`` at all pyfetchmail forwards to ``localhost`` port 25,
as fetchmail does; Postfix delivers to the Unix user ``pfmtest`` (set up by
scripts/setup.sh). Bounces always go to localhost:25 as well. The fixture
skips when Postfix is not running and CI is unset (fails in CI).

Other test runs may deliver to the same Maildir, so every check looks for a
message by a unique token rather than counting the whole Maildir.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.e2e_helpers import E2E, pop3_rc, received_top

pytestmark = [pytest.mark.postfix, pytest.mark.dovecot, pytest.mark.timeout(90)]


@pytest.fixture
def e2e(tmp_path: Path) -> E2E:
    return E2E(tmp_path / "home")


def _wait_for_token(postfix: Any, token: bytes, count: int = 1, timeout: float = 20) -> list[bytes]:
    """Messages in pfmtest's Maildir that contain *token* (at least *count* of them)."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for path in postfix.messages():
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # moved new/ -> cur/ meanwhile
                continue
            if token in data:
                found.append(data)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _message(token: str, sender: str = "sender@remote.example") -> bytes:
    return (
        f"Return-Path: <{sender}>\nFrom: {sender}\nTo: someone@remote.example\n"
        f"Subject: postfix e2e {token}\nMessage-ID: <{token}@remote.example>\n"
        "Date: Sat, 21 Nov 2026 07:00:00 +0000\n\n"
        f"token {token}\n.dot line\n"
    ).encode()


def test_default_smtphost_delivers_through_postfix(
    e2e: E2E, dovecot: Any, mailuser: Any, postfix: Any
) -> None:
    token = secrets.token_hex(8)
    raw = _message(token)
    mailuser.deliver(raw)
    e2e.write_rc(pop3_rc(dovecot, mailuser, local=postfix.user))
    done = e2e.pyfetchmail()
    assert done.returncode == 0, done
    assert mailuser.messages() == []
    found = _wait_for_token(postfix, token.encode())
    assert len(found) == 1, f"no message with {token} in {postfix.maildir}"
    data = found[0]
    # Postfix adds Return-Path/Delivered-To/Received of its own above ours.
    ours_at = data.index(b"Received: from 127.0.0.1")
    _, rest = received_top(data[ours_at:])
    assert b"with POP3 (pyfetchmail-" in data
    assert rest == raw.split(b"\n", 1)[1]  # our copy without its Return-Path
    assert data.startswith(b"Return-Path: <sender@remote.example>\n")
    assert f"Delivered-To: {postfix.user}@".encode() in data


def test_no_softbounce_bounce_reaches_local_sender(
    e2e: E2E, dovecot: Any, mailuser: Any, postfix: Any, smtp_sink: Any
) -> None:
    # The sender is the local Postfix user, so the bounce (always sent to
    # localhost:25) lands in the same Maildir.
    token = secrets.token_hex(8)
    mailuser.deliver(_message(token, sender=f"{postfix.user}@localhost"))
    smtp_sink.reply_to_data(1, "550 5.7.1 rejected " + token)
    e2e.write_rc(
        pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, globals_="set no softbounce\n")
    )
    done = e2e.pyfetchmail()
    assert done.returncode == 0, done
    assert mailuser.messages() == []
    found = _wait_for_token(postfix, token.encode())
    assert len(found) == 1, done
    bounce = found[0]
    assert b"Subject: Mail delivery failed: returning message to sender" in bounce
    assert b"Content-Type: multipart/report; report-type=delivery-status;" in bounce
    assert f"550 5.7.1 rejected {token}".encode() in bounce
    assert f"Message-ID: <{token}@remote.example>".encode() in bounce
