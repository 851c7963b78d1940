"""Warning mails from the daemon to the user (spec section 6.9).

fetchmail composes these itself and sends them through the query's own sink
(SMTP/LMTP, MDA or BSMTP) to the local user of a single-drop query, or to
the postmaster of a multidrop one:

- ``fetchmail authentication failed on u@h``: daemon mode, after 3
  consecutive failures of a query that never authenticated (10 if it did);
  sent once;
- ``fetchmail authentication OK on u@h``: the first success after that;
- ``fetchmail sees repeated timeouts``: the query has just been wedged.

We keep fetchmail's subjects (users filter on them) and its envelope sender
``FETCHMAIL-DAEMON@<smtpaddress or this host>``.  Sending is best effort: a
failure is logged and never affects the poll.

Invariant: a notice never carries a password; its text is built from the
query's labels only.
"""

from __future__ import annotations

import email.utils
import importlib
import logging
from dataclasses import dataclass
from email.header import Header
from typing import Any

from pyfetchmail.config.model import Query, RunControl
from pyfetchmail.delivery.base import Envelope, Outcome
from pyfetchmail.errors import FetchmailError
from pyfetchmail.message import SpooledMessage

__all__ = ["Notice", "auth_failed", "auth_ok", "compose", "send_notice", "timeouts"]

log = logging.getLogger(__name__)

_SIGNATURE = "-- \nThe Fetchmail Daemon\n"


@dataclass(frozen=True, slots=True)
class Notice:
    """One warning mail: *subject* and plain-text *body*."""

    subject: str
    body: str


def auth_failed(query: Query, failures: int) -> Notice:
    """The notice after repeated authentication failures."""
    label = f"{query.user.remote}@{query.server.pollname}"
    return Notice(
        f"fetchmail authentication failed on {label}",
        f"pyfetchmail could not log in to {query.server.pollname} as {query.user.remote}\n"
        f"{failures} times in a row.  The password may have been changed on the\n"
        "server, or the account may be locked.  Update the password (rc file,\n"
        "~/.netrc or keyring); the daemon keeps trying and will tell you when\n"
        "logging in works again.\n",
    )


def auth_ok(query: Query) -> Notice:
    """The notice after authentication works again."""
    label = f"{query.user.remote}@{query.server.pollname}"
    return Notice(
        f"fetchmail authentication OK on {label}",
        f"pyfetchmail logged in to {query.server.pollname} as {query.user.remote} again.\n",
    )


def timeouts(query: Query, count: int) -> Notice:
    """The notice when a query is wedged by consecutive timeouts."""
    return Notice(
        "fetchmail sees repeated timeouts",
        f"pyfetchmail saw {count} consecutive timeouts while polling\n"
        f"{query.user.remote} at {query.server.pollname}.  It will not poll this\n"
        "account again until it is woken up (run pyfetchmail, or send it SIGUSR1)\n"
        "or restarted.\n",
    )


def _recipient(query: Query, run: RunControl) -> str | None:
    user = query.user
    if not user.multidrop and user.localnames:
        return user.localnames[0].local
    return run.postmaster or None


def compose(notice: Notice, *, sender: str, recipient: str) -> bytes:
    """The mail as bytes (CRLF line ends, UTF-8, 8bit as fetchmail sends it)."""
    subject = (
        Header(notice.subject, "utf-8").encode()
        if not notice.subject.isascii()
        else (notice.subject)
    )
    head = (
        f"From: {sender}\r\n"
        f"To: {recipient}\r\n"
        f"Date: {email.utils.formatdate(localtime=True)}\r\n"
        f"Subject: {subject}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        'Content-Type: text/plain; charset="UTF-8"\r\n'
        "\r\n"
    )
    body = (notice.body + "\n" + _SIGNATURE).replace("\n", "\r\n")
    return (head + body).encode("utf-8")


def send_notice(query: Query, run: RunControl, fetchmailhost: str, notice: Notice) -> bool:
    """Deliver *notice* through *query*'s sink; True if it was accepted."""
    recipient = _recipient(query, run)
    if recipient is None:
        log.debug("no recipient for the notice %r", notice.subject)
        return False
    sender = f"FETCHMAIL-DAEMON@{query.user.smtpaddress or fetchmailhost}"
    message = SpooledMessage.from_bytes(compose(notice, sender=sender, recipient=recipient))
    try:
        factory: Any = importlib.import_module("pyfetchmail.delivery.factory")
        sink = factory.make_delivery(
            query, run, fetchmailhost, server_truename=query.server.queryname
        )
        try:
            result = sink.deliver(message, Envelope(sender, (recipient,)))
        finally:
            sink.close()
    except (FetchmailError, OSError) as exc:
        log.warning('could not send the notice "%s": %s', notice.subject, exc)
        return False
    finally:
        message.close()
    if result.outcome is not Outcome.ACCEPTED:
        log.warning('the notice "%s" was refused: %s', notice.subject, result.text)
        return False
    log.info('sent the notice "%s" to %s', notice.subject, recipient)
    return True
