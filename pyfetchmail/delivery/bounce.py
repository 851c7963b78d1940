"""Delivery status notifications ("bounces") for refused mail (RFC 3464).

fetchmail(1), RETRIEVAL FAILURE MODES, says when fetchmail bounces.

Responsibility: decide whether a delivery result warrants a bounce and to
whom, compose fetchmail's DSN (RFC 3464 ``multipart/report``) and send it
by SMTP from the null reverse-path.

Invariants:
- Never bounce to an empty sender, ``<>``, ``MAILER-DAEMON`` or
  ``MAILER-DAEMON@...`` (RFC 5321 §4.5.5: no bounce loops).
- *Whether* to bounce is the fetch engine's decision (``policy``: at most
  one bounce per message, so ``softbounce`` no longer re-bounces on every
  poll as fetchmail 6.4 did); this module composes
  and sends.
- The DSN layout is fetchmail's byte for byte (samples/
  bounce-message-smtp-view.txt), CRLF line ends; the bounce goes to
  ``localhost:25`` by default (host and port are parameters).
- Sending never raises: the caller gets True (accepted by the MTA) or False.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pyfetchmail.config.model import Query, RunControl
from pyfetchmail.delivery.base import DeliveryResult, Envelope, Outcome
from pyfetchmail.delivery.smtpwire import SmtpClient, SmtpWireError
from pyfetchmail.mail.headers import PRODUCT, field_name, format_date, split_fields
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.mail.prepare import destination_domain, qualify

__all__ = [
    "REASON_GENERAL",
    "REASON_LMTP_PARTIAL",
    "REASON_RECIPIENTS",
    "REASON_SPAM",
    "REASON_TOO_LARGE",
    "BounceFailure",
    "bounce_headers",
    "bounce_recipient",
    "compose_bounce",
    "failures_of",
    "send_bounce",
    "send_dsn",
]

log = logging.getLogger(__name__)

REASON_GENERAL = "General SMTP/ESMTP error."
REASON_TOO_LARGE = "This message was too large (SMTP error 552)."
REASON_SPAM = "spam filter or virus scanner rejected message because:"
REASON_RECIPIENTS = "Some addresses were rejected by the MDA fetchmail forwards to."
REASON_LMTP_PARTIAL = "LMTP partial delivery failure."

_ENHANCED = re.compile(r"^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class BounceFailure:
    """One failed address and the listener's reply (``550 5.7.1 rejected``)."""

    address: str
    reply: str


def bounce_recipient(sender: str, run: RunControl) -> str | None:
    """Whom to bounce to, or None when no bounce may be sent."""
    bare = sender.strip().strip("<>")
    lowered = bare.lower()
    if not bare or lowered == "mailer-daemon" or lowered.startswith("mailer-daemon@"):
        return None
    if run.bouncemail:
        return bare
    return run.postmaster or None


def failures_of(result: DeliveryResult, envelope_recipients: Sequence[str]) -> list[BounceFailure]:
    """The failed addresses of *result*, each with the reply that refused it.

    For a delivered message: its rejected recipients.  For a whole-message
    refusal: the recipients the listener had accepted at RCPT, else those it
    rejected, else *envelope_recipients* (refused before RCPT).
    """
    rejected = [BounceFailure(r.recipient, r.text) for r in result.rejected_recipients]
    if result.outcome is Outcome.ACCEPTED:
        return rejected
    accepted = [r.recipient for r in result.recipients if r.accepted]
    if accepted:
        return [BounceFailure(a, result.text) for a in accepted]
    return rejected or [BounceFailure(a, result.text) for a in envelope_recipients]


def _status(reply: str) -> str:
    match = _ENHANCED.match(reply)
    if match:
        return match.group(1)
    return f"{reply[:1] or '5'}.0.0"


def compose_bounce(
    *,
    recipient: str,
    reason: str,
    failures: Sequence[BounceFailure],
    original_headers: bytes,
    fetchmailhost: str,
    date: datetime,
    boundary: str,
    proto: str = "SMTP",
) -> bytes:
    """The DSN message (headers and body, CRLF, not dot-stuffed)."""
    when = format_date(date)
    text: list[str] = [
        "Subject: Mail delivery failed: returning message to sender",
        f"From: Mail Delivery System <MAILER-DAEMON@{fetchmailhost}>",
        f"To: {recipient}",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain",
        "",
        "This message was created automatically by mail delivery software.",
        "",
        "A message that you sent could not be delivered to one or more of its",
        "recipients. This is a permanent error.",
        "",
        f"Reason: {reason}",
        "",
        "The following address(es) failed:",
    ]
    for failure in failures:
        text += [failure.address, f"   {proto} error: {failure.reply}"]
    text += ["", f"--{boundary}", "Content-Type: message/delivery-status", ""]
    text += [f"Reporting-MTA: dns; {fetchmailhost}", ""]
    for failure in failures:
        text += [
            f"Final-Recipient: rfc822; {failure.address}",
            f"Last-Attempt-Date: {when}",
            "Action: failed",
            f"Status: {_status(failure.reply)}",
            f"Diagnostic-Code: {failure.reply}",
            "",
        ]
    text += [f"--{boundary}", "Content-Type: text/rfc822-headers", ""]
    head = "\r\n".join(text).encode("utf-8", "replace") + b"\r\n"
    headers = original_headers
    if headers and not headers.endswith((b"\r\n\r\n", b"\n\n")):
        headers += b"\r\n"  # the header block always ends with its empty line
    elif not headers:
        headers = b"\r\n"
    return head + headers + f"--{boundary}--\r\n".encode()


def _boundary() -> str:
    return f"foo-mani-padme-hum-{os.getpid()}-{os.getppid()}-{int(time.time())}"


def send_dsn(
    *,
    sender: str,
    reason: str,
    failures: Sequence[BounceFailure],
    original_headers: bytes,
    fetchmailhost: str,
    run: RunControl,
    host: str = "localhost",
    port: int = 25,
    timeout: float = 30.0,
    proto: str = "SMTP",
    date: datetime | None = None,
) -> bool:
    """Compose and send a DSN for a message from *sender*; True if the MTA took it.

    Nothing is sent (False) when :func:`bounce_recipient` forbids it or
    *failures* is empty.
    """
    recipient = bounce_recipient(sender, run)
    if recipient is None or not failures:
        return False
    message = compose_bounce(
        recipient=recipient,
        reason=reason,
        failures=failures,
        original_headers=original_headers,
        fetchmailhost=fetchmailhost,
        date=date or datetime.now().astimezone(),
        boundary=_boundary(),
        proto=proto,
    )
    try:
        client = SmtpClient.connect(host, port, timeout)
    except OSError as exc:
        log.warning("Connection errors for this poll: bounce to %s/%d: %s", host, port, exc)
        return False
    try:
        ok = _transaction(client, fetchmailhost, recipient, message, timeout)
    except SmtpWireError as exc:
        log.warning("bounce to %s failed: %s", recipient, exc)
        client.abort()
        return False
    client.quit(timeout)
    if ok:
        log.info("mail from MAILER-DAEMON@%s bounced to %s", fetchmailhost, recipient)
    return ok


def _transaction(
    client: SmtpClient, name: str, recipient: str, message: bytes, timeout: float
) -> bool:
    steps = (("", 220), (f"HELO {name}", 250), ("MAIL FROM:<>", 250))
    for command, want in (*steps, (f"RCPT TO:<{recipient}>", 250), ("DATA", 354)):
        reply = client.command(command, timeout) if command else client.read_reply(timeout)
        if reply.code // 100 != want // 100:
            log.warning("bounce to %s refused: %s", recipient, reply.text)
            return False
    client.send_data([message], timeout)
    reply = client.read_reply(timeout)
    if reply.code // 100 != 2:
        log.warning("bounce to %s refused: %s", recipient, reply.text)
        return False
    return True


def bounce_headers(message: SpooledMessage) -> bytes:
    """The header block of a prepared *message* without the lines we added.

    Our Received header and ``X-Fetchmail-Warning`` are dropped, so the
    ``text/rfc822-headers`` part shows the message as the sender's side
    produced it (after rewrite), as fetchmail's bounces do.
    """
    header = message.header_bytes()
    ours = f"({PRODUCT}".encode()
    kept = [
        f
        for f in split_fields(header)
        if not (field_name(f) == b"received" and ours in f)
        and field_name(f) != b"x-fetchmail-warning"
    ]
    lines = header.splitlines(keepends=True)
    blank = lines[-1] if lines and lines[-1] in (b"\r\n", b"\n") else b"\r\n"
    return b"".join(kept) + blank


def send_bounce(
    message: SpooledMessage,
    envelope: Envelope,
    result: DeliveryResult,
    *,
    query: Query,
    run: RunControl,
    fetchmailhost: str,
    reason: str,
    host: str = "localhost",
    port: int = 25,
    timeout: float = 30.0,
    date: datetime | None = None,
) -> bool:
    """Bounce a refused (or partly refused) message; True if the MTA took the DSN.

    *reason* is the engine's text; for a delivered message with rejected
    recipients the reason is fetchmail's recipient-rejection text instead
    (``Some addresses were rejected ...`` / ``LMTP partial delivery
    failure.``), since only that describes what happened.
    """
    lmtp = query.user.lmtp or any(h.startswith("/") for h in query.user.smtphunt)
    if result.outcome is Outcome.ACCEPTED and result.rejected_recipients:
        reason = REASON_LMTP_PARTIAL if lmtp else REASON_RECIPIENTS
    domain = destination_domain(query)
    failures = failures_of(result, [qualify(r, domain) for r in envelope.recipients])
    return send_dsn(
        sender=envelope.sender,
        reason=reason,
        failures=failures,
        original_headers=bounce_headers(message),
        fetchmailhost=fetchmailhost,
        run=run,
        host=host,
        port=port,
        timeout=timeout,
        proto="LMTP" if lmtp else "SMTP",
        date=date,
    )
