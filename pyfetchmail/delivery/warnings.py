"""Warning mails fetchmail writes itself, sent through the query's sink.

See fetchmail(1), ``--warnings`` and RETRIEVAL FAILURE MODES.

Responsibility: the texts (oversized messages, repeated timeouts,
authentication failed / OK), the message layout, the recipient choice and
handing the mail to a :class:`~pyfetchmail.delivery.base.Delivery`.  *When*
to send is the caller's decision (daemon mode, ``warnings`` interval...).

Invariants:
- Headers: ``From: FETCHMAIL-DAEMON@<smtpaddress or fetchmailhost>``, ``To:``,
  ``Date:``, ``MIME-Version: 1.0``, ``Content-Transfer-Encoding: 8bit``,
  ``Content-Type: text/plain; charset="UTF-8"``, and ``Subject:`` (RFC 2047
  encoded when not ASCII).  The body ends with the ``-- `` signature
  ``The Fetchmail Daemon``.  CRLF line ends (the canonical form).
- The envelope sender is the ``From`` address; the recipient is the local
  user for single-drop queries and the postmaster for multidrop ones.
- The wording is ours (fetchmail's texts are not copied); the subjects are
  fetchmail's, since users filter on them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import Header

from pyfetchmail.config.model import Query, RunControl
from pyfetchmail.delivery.base import Delivery, DeliveryResult, Envelope, Outcome
from pyfetchmail.delivery.factory import make_delivery
from pyfetchmail.errors import FetchmailError
from pyfetchmail.mail.headers import format_date
from pyfetchmail.mail.message import SpooledMessage

__all__ = [
    "OversizedItem",
    "WarningMail",
    "auth_failure_warning",
    "auth_ok_warning",
    "compose_warning",
    "oversized_warning",
    "send_warning",
    "send_warning_mail",
    "timeout_warning",
    "warning_recipient",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WarningMail:
    """Subject and plain-text body (LF line ends; converted on composing)."""

    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class OversizedItem:
    """One oversized message: its number on the server, size, and whether deleted."""

    number: int
    size: int
    deleted: bool = False


def oversized_warning(server: str, account: str, items: Sequence[OversizedItem]) -> WarningMail:
    """The "oversized-messages" warning for *items* of *account* on *server*."""
    lines: list[str] = []
    kept = [i for i in items if not i.deleted]
    deleted = [i for i in items if i.deleted]
    if kept:
        lines.append(f"These messages are over the size limit and remain on {server}")
        lines.append(f"(account {account}); they were not fetched:")
        lines.append("")
        lines += [f"  message {i.number}: {i.size} octets, skipped." for i in kept]
        lines.append("")
    if deleted:
        lines.append(f"These messages were over the size limit and were deleted on {server}")
        lines.append(f"(account {account}) because of the limitflush option:")
        lines.append("")
        lines += [f"  message {i.number}: {i.size} octets, deleted." for i in deleted]
        lines.append("")
    return WarningMail("Fetchmail oversized-messages warning", "\n".join(lines))


def timeout_warning(server: str, account: str, count: int) -> WarningMail:
    """The warning sent when a query is marked wedged after *count* timeouts."""
    body = (
        f"More than {count} consecutive timeouts happened while fetching mail\n"
        f"for account {account} on {server}.\n"
        "\n"
        "The mail server may be stuck, the local mail transport may not be\n"
        "answering, or the mailbox on the server may be damaged.  Running with\n"
        "-v -v shows the conversation.\n"
        "\n"
        "This account will not be polled again until the daemon is restarted\n"
        "or woken with SIGUSR1.\n"
    )
    return WarningMail("fetchmail sees repeated timeouts", body)


def auth_failure_warning(server: str, account: str, protocol: str) -> WarningMail:
    """The warning sent after repeated authentication failures."""
    body = (
        f"Logging in to {server} as {account} with {protocol} failed repeatedly.\n"
        "\n"
        "The password may have changed or the account may be locked; the\n"
        "server's own error messages are in the log.  Polling continues, and\n"
        "another mail is sent once logging in works again.\n"
    )
    return WarningMail(f"fetchmail authentication failed on {account}@{server}", body)


def auth_ok_warning(server: str, account: str) -> WarningMail:
    """The all-clear sent when logging in works again after a failure warning."""
    body = f"Logging in to {server} as {account} works again.\n"
    return WarningMail(f"fetchmail authentication OK on {account}@{server}", body)


def warning_recipient(query: Query, run: RunControl) -> str:
    """The local user for single-drop, the postmaster for multidrop (bare names)."""
    user = query.user
    if not user.multidrop and user.localnames:
        return user.localnames[0].local
    return run.postmaster or (user.localnames[0].local if user.localnames else user.remote)


def _encoded_subject(subject: str) -> str:
    if subject.isascii():
        return subject
    return Header(subject, "utf-8").encode()


def compose_warning(mail: WarningMail, *, sender: str, recipient: str, date: datetime) -> bytes:
    """The complete warning message (CRLF line ends)."""
    head = [
        f"From: {sender}",
        f"To: {recipient}",
        f"Date: {format_date(date)}",
        "MIME-Version: 1.0",
        "Content-Transfer-Encoding: 8bit",
        'Content-Type: text/plain; charset="UTF-8"',
        f"Subject: {_encoded_subject(mail.subject)}",
        "",
    ]
    body = [*mail.body.rstrip("\n").split("\n"), "", "-- ", "The Fetchmail Daemon"]
    return ("\r\n".join(head + body) + "\r\n").encode("utf-8")


def send_warning(
    delivery: Delivery,
    mail: WarningMail,
    *,
    query: Query,
    run: RunControl,
    fetchmailhost: str,
    date: datetime | None = None,
) -> DeliveryResult:
    """Compose *mail* and deliver it through *delivery* (the query's own sink)."""
    domain = query.user.smtpaddress or fetchmailhost
    sender = f"FETCHMAIL-DAEMON@{domain}"
    recipient = warning_recipient(query, run)
    to = recipient if "@" in recipient else f"{recipient}@{domain}"
    data = compose_warning(
        mail, sender=sender, recipient=to, date=date or datetime.now().astimezone()
    )
    with SpooledMessage.from_bytes(data) as message:
        result = delivery.deliver(message, Envelope(sender, (recipient,)))
    log.info("warning mail %r to %s: %s", mail.subject, recipient, result.outcome.value)
    return result


def send_warning_mail(query: Query, run: RunControl, fetchmailhost: str, mail: WarningMail) -> bool:
    """Best effort: open *query*'s own sink, deliver *mail*, close it; True if accepted.

    Used by the daemon outside a poll.  A failure is logged and never raised:
    a warning mail must not break the polling loop.
    """
    try:
        sink: Delivery = make_delivery(
            query, run, fetchmailhost, server_truename=query.server.queryname
        )
        try:
            result = send_warning(sink, mail, query=query, run=run, fetchmailhost=fetchmailhost)
        finally:
            sink.close()
    except (FetchmailError, OSError) as exc:
        log.warning('could not send the warning mail "%s": %s', mail.subject, exc)
        return False
    if result.outcome is not Outcome.ACCEPTED:
        log.warning('the warning mail "%s" was refused: %s', mail.subject, result.text)
        return False
    return True
