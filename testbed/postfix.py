"""Helpers for the system Postfix on 127.0.0.1:25 (set up by scripts/setup.sh).

Responsibility: tell whether Postfix answers on port 25, where a local user's
Maildir is (``home_mailbox = Maildir/``), and wait for deliveries to land.

Invariants: only 127.0.0.1 is contacted; every socket operation has a
timeout; nothing here starts or reconfigures Postfix (setup.sh does that as
root).
"""

from __future__ import annotations

import pwd
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.maildir import sorted_maildir_files

__all__ = [
    "POSTFIX_TEST_USER",
    "PostfixInfo",
    "maildir_of",
    "postfix_running",
    "wait_for_messages",
]

POSTFIX_TEST_USER = "pfmtest"
"""The Unix user setup.sh creates for tests that deliver through Postfix."""


def postfix_running(host: str = "127.0.0.1", port: int = 25, timeout: float = 3.0) -> bool:
    """True when *host*:*port* answers with a ``220`` SMTP greeting."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            greeting = sock.recv(512)
            # Be polite so Postfix does not log a lost connection.
            sock.sendall(b"QUIT\r\n")
            return greeting.startswith(b"220")
    except OSError:
        return False


def maildir_of(user: str) -> Path:
    """The Maildir Postfix's local(8) delivers to: ``~user/Maildir``."""
    return Path(pwd.getpwnam(user).pw_dir) / "Maildir"


def wait_for_messages(user: str, count: int, timeout: float = 10.0) -> list[Path]:
    """Wait until *user*'s Maildir holds at least *count* messages; return their paths.

    Raises ``TimeoutError`` naming how many arrived.
    """
    maildir = maildir_of(user)
    deadline = time.monotonic() + timeout
    while True:
        files = sorted_maildir_files(maildir)
        if len(files) >= count:
            return files
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{len(files)} of {count} messages arrived in {maildir} within {timeout} s"
            )
        time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class PostfixInfo:
    """What the ``postfix`` fixture yields: where to send and where mail lands."""

    host: str = "127.0.0.1"
    port: int = 25
    user: str = POSTFIX_TEST_USER

    @property
    def maildir(self) -> Path:
        """The test user's Maildir."""
        return maildir_of(self.user)

    def running(self) -> bool:
        """True when Postfix answers on port 25."""
        return postfix_running(self.host, self.port)

    def messages(self) -> list[Path]:
        """Paths of the messages now in the test user's Maildir, in delivery order."""
        return sorted_maildir_files(self.maildir)

    def clear(self) -> None:
        """Remove every message from the test user's Maildir (new/ and cur/)."""
        for path in self.messages():
            path.unlink(missing_ok=True)

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[Path]:
        """See :func:`wait_for_messages`."""
        return wait_for_messages(self.user, count, timeout)
