"""Turn a retrieved message into what the local side gets.

fetchmail(1) documents the header handling under ``--rewrite``,
``--envelope`` and THE USE AND ABUSE OF MULTIDROP MAILBOXES.

Responsibility: header processing in fetchmail's order, the envelope
(sender and local recipients), and the decision to refuse a message before
any delivery is attempted.  Sink-independent except where fetchmail itself
differs per sink (Return-Path kept only for an MDA).

Invariants:
- Only the header block is held in memory (bounded by
  :data:`pyfetchmail.mail.message.MAX_HEADER_BYTES`); the body is streamed from
  the original spool into the new one, untouched except for ``forcecr``.
- The original :class:`SpooledMessage` is never modified; the caller owns
  (and closes) both the original and :attr:`PreparedMessage.message`.
- Recipients in the envelope are bare local names (``joe``) or whole
  addresses (``localdomains`` matches, a postmaster with ``@``); the sink
  qualifies bare names.
- Our Received header is inserted before the first field *named*
  ``Received`` (fetchmail searched for the substring ``Received:`` anywhere,
  so an ``X-Received:`` field could capture it), or at
  the top when there is none.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from pyfetchmail.config.model import BadHeader, Query, RunControl
from pyfetchmail.mail.envelope import Envelope
from pyfetchmail.mail.headers import (
    ADDRESS_HEADERS,
    ReceivedMode,
    decode_encoded_words,
    field_name,
    field_value,
    first_address,
    rcpt_address,
    received_header,
    rewrite_address_list,
    split_fields,
)
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.mail.mimedecode import DecodePlan, decode_body, plan_decode
from pyfetchmail.mail.multidrop import find_recipients
from pyfetchmail.mail.trace import TraceInfo

__all__ = [
    "BAD_HEADER_REASON",
    "NO_POSTMASTER_REASON",
    "PreparedMessage",
    "TraceInfo",
    "destination_domain",
    "envelope_sender",
    "prepare_message",
    "qualify",
]

BAD_HEADER_REASON = "incorrect header line found - see manpage for bad-header option"
NO_POSTMASTER_REASON = "no address matches; no postmaster set."
DUPLICATE_REASON = "message is a duplicate of the previous one (multidrop, no envelope)"

#: Sender headers in fetchmail's priority order; True = needs ``@`` or ``!``.
_SENDER_HEADERS = (
    (b"resent-sender", True),
    (b"sender", True),
    (b"resent-from", False),
    (b"from", False),
    (b"reply-to", False),
    (b"apparently-from", False),
)
_DOTTED_QUAD = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """A message ready for a sink, or the reason it must not be delivered.

    *warnings* are texts for the log.  *retained* is True when the message
    carries UW-IMAP's ``X-IMAP`` pseudo-message header: the engine retains
    message 1 of such a folder (neither delivered nor deleted).
    *header_digest* is the MD5 of the raw header block, for the multidrop
    duplicate check of the next message (pass it as *previous_digest*).
    """

    message: SpooledMessage
    envelope: Envelope
    warnings: tuple[str, ...]
    refused: str | None
    retained: bool = False
    header_digest: bytes = b""


def destination_domain(query: Query) -> str:
    """Domain for bare local names (fetchmail's ``destaddr``).

    ``smtpaddress``, else the first ``smtphost`` without ``/port`` when
    delivering by SMTP/LMTP over TCP, else ``localhost``.
    """
    user = query.user
    if user.smtpaddress:
        return user.smtpaddress
    if user.bsmtp is None and user.mda is None and user.smtphunt:
        host = user.smtphunt[0]
        if not host.startswith("/"):
            return host.rsplit("/", 1)[0] if "/" in host else host
    return "localhost"


def qualify(name: str, domain: str) -> str:
    """``name@domain`` unless *name* already carries a domain."""
    return name if "@" in name else f"{name}@{domain}"


def _truename_domain(truename: str) -> str:
    return f"[{truename}]" if _DOTTED_QUAD.match(truename) else truename


def envelope_sender(fields: Iterable[bytes], remote: str, truename: str) -> str:
    """Envelope sender as fetchmail chooses it (``""`` stands for ``<>``).

    Return-Path first, then the sender headers in priority order; fallback
    ``remote@truename``.  A bare local part gets ``@truename``.
    """
    found: dict[bytes, str] = {}
    for field in fields:
        name = field_name(field)
        if name in found:
            continue
        if name == b"return-path" or any(name == h for h, _ in _SENDER_HEADERS):
            addr = first_address(field_value(field))
            if addr is not None:
                found[name] = addr
    candidates = [found.get(b"return-path")]
    for name, needs_at in _SENDER_HEADERS:
        addr = found.get(name)
        if addr is not None and needs_at and "@" not in addr and "!" not in addr:
            addr = None
        candidates.append(addr)
    for addr in candidates:
        if addr is None:
            continue
        if addr == "" and candidates[0] == "":
            return ""  # RFC 5321 §4.5.5 null reverse-path preserved
        if addr and not addr.startswith("@"):
            if "@" not in addr and "!" not in addr:
                return f"{addr}@{_truename_domain(truename)}"
            return addr
    if "@" in remote or "!" in remote:
        return remote
    return f"{remote}@{_truename_domain(truename)}"


def _forcecr(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Turn bare LF into CRLF, also when a CRLF pair straddles two chunks."""
    previous = b""
    for chunk in chunks:
        if not chunk:
            continue
        fixed = re.sub(rb"(?<!\r)\n", b"\r\n", chunk)
        if previous == b"\r" and chunk.startswith(b"\n"):
            fixed = fixed[1:]  # the CR ended the previous chunk
        previous = chunk[-1:]
        yield fixed


def _is_mda(query: Query) -> bool:
    return query.user.bsmtp is None and query.user.mda is not None


def _process_fields(
    fields: list[bytes], query: Query, truename: str
) -> tuple[list[bytes], str | None, bool]:
    """Header processing proper (``rewrite``, ``dropstatus``, ``dropdelivered``).

    Returns (fields, refusal, retained).
    """
    user, server = query.user, query.server
    out: list[bytes] = []
    retained = False
    for field in fields:
        if field.startswith((b"From ", b">From ")):
            continue  # mbox separator (step 7)
        name = field_name(field)
        if not name and field[:1] not in (b" ", b"\t"):
            if server.badheader is BadHeader.REJECT:
                return fields, BAD_HEADER_REASON, False
            out.append(field)
            continue
        if user.mimedecode:
            head, _, value = field.partition(b":")
            field = head + b":" + decode_encoded_words(value)
        if name == b"x-imap":
            retained = True
        if name in (b"status", b"x-mozilla-status") and (user.dropstatus or not field_value(field)):
            continue
        if user.rewrite and name in ADDRESS_HEADERS:
            head, _, value = field.partition(b":")
            field = head + b":" + rewrite_address_list(value, truename)
        out.append(field)
    return out, None, retained


def _drop_delivered(fields: list[bytes], query: Query) -> list[bytes]:
    server = query.server
    keep_index = -1
    if server.envelope and server.envelope.lower() == "delivered-to":
        keep_index = server.envskip
    out: list[bytes] = []
    seen = 0
    for field in fields:
        if field_name(field) == b"delivered-to":
            seen += 1
            if seen - 1 != keep_index:
                continue
        out.append(field)
    return out


def _insert_received(fields: list[bytes], received: bytes) -> list[bytes]:
    for index, field in enumerate(fields):
        if field_name(field) == b"received":
            return [*fields[:index], received, *fields[index:]]
    return [received, *fields]


def prepare_message(
    raw: SpooledMessage,
    query: Query,
    run: RunControl,
    info: TraceInfo,
    *,
    previous_digest: bytes | None = None,
) -> PreparedMessage:
    """Apply header processing to *raw* and find its envelope (``--envelope``).

    *previous_digest* is :attr:`PreparedMessage.header_digest` of the
    previous message of the same query, for multidrop duplicate suppression.
    """
    user, server = query.user, query.server
    truename = info.server_truename
    if info.date is None:
        info = replace(info, date=datetime.now().astimezone())
    block = raw.header_bytes()
    digest = hashlib.md5(block, usedforsecurity=False).digest()
    warnings: list[str] = []
    header_warnings: list[str] = []

    header = block
    if b"\0" in header:
        header = header.replace(b"\0", b"")
        header_warnings.append("message has embedded NULs")
    if user.forcecr:
        header = re.sub(rb"(?<!\r)\n", b"\r\n", header)
    eol = b"\n" if header.endswith(b"\n") and not header.endswith(b"\r\n") else b"\r\n"
    raw_fields = split_fields(header)
    if raw_fields and not raw_fields[-1].endswith(b"\n"):
        raw_fields[-1] += eol  # header-only message without a final line end
    fields, refusal, retained = _process_fields(raw_fields, query, truename)
    headerless = not fields

    def result(envelope: Envelope, message: SpooledMessage, refused: str | None) -> PreparedMessage:
        return PreparedMessage(message, envelope, tuple(warnings), refused, retained, digest)

    sender = envelope_sender(fields, user.remote, truename)
    if refusal is not None:
        return result(Envelope(sender, ()), raw, refusal)

    domain = destination_domain(query)
    mode = ReceivedMode.SINGLE
    if user.multidrop:
        match = find_recipients(fields, server, user, truename=truename)
        recipients = list(match.recipients)
        mode = ReceivedMode.MULTI
        if not match.envelope_found and previous_digest == digest:
            return result(Envelope(sender, ()), raw, DUPLICATE_REASON)
        if not recipients:
            # fetchmail 6.4.37 names the address when exactly one was rejected,
            # and uses the general text otherwise (checked against the binary).
            if len(match.rejected) == 1:
                header_warnings.append(
                    f"recipient address {match.rejected[0]} didn't match any local name"
                )
            else:
                header_warnings.append("no recipient addresses matched declared local names")
            if not run.postmaster:
                warnings.extend(header_warnings)
                return result(Envelope(sender, ()), raw, NO_POSTMASTER_REASON)
            recipients = [run.postmaster]  # fetchmail still says "(multi-drop)" here
            warnings.append(f"no local matches, forwarding to {run.postmaster}")
        if user.dropdelivered:
            fields = _drop_delivered(fields, query)
    else:
        if user.localnames:
            recipients = [user.localnames[0].local]
        elif run.postmaster:
            recipients = [run.postmaster]
            mode = ReceivedMode.BY_DEFAULT
        else:
            return result(Envelope(sender, ()), raw, NO_POSTMASTER_REASON)
        if user.dropdelivered:
            fields = [f for f in fields if field_name(f) != b"delivered-to"]

    if not _is_mda(query):
        fields = [f for f in fields if field_name(f) != b"return-path"]
    plan: DecodePlan | None = None
    if user.mimedecode:
        fields, plan = plan_decode(fields)
    if headerless:
        # fetchmail addresses the synthesised header to the invoking user.
        to = qualify(info.invoking_user or recipients[0], info.fetchmailhost)
        fields = [
            b"From: FETCHMAIL-DAEMON" + eol,
            f"To: {to}".encode("latin-1", "replace") + eol,
            f"Subject: Headerless mail from {user.remote}'s mailbox on {truename}".encode(
                "latin-1", "replace"
            )
            + eol,
        ]
        warnings.append("headerless message: synthesised a header")
    lines = header.splitlines(keepends=True)
    terminator = lines[-1] if lines and lines[-1] in (b"\r\n", b"\n") else b""
    if not terminator and headerless:
        terminator = eol  # empty message: give the synthesised header its separator
    if not run.invisible:
        # The "for" clause names the address RCPT TO will use (smtpname included).
        qualified = [rcpt_address(r, user.smtpname, domain) for r in recipients]
        fields = _insert_received(fields, received_header(info, qualified, mode, server.tracepolls))
    if header_warnings:
        text = "; ".join(header_warnings).encode("latin-1", "replace")
        fields.append(b"X-Fetchmail-Warning: " + text + eol)
        warnings.extend(header_warnings)

    body: Iterable[bytes] = raw.iter_chunks_from(len(block))
    if user.forcecr:
        body = _forcecr(body)
    if plan is not None:
        body = decode_body(body, plan)
    message = SpooledMessage.from_parts(
        b"".join(fields) + terminator, body, raw.announced_size, raw.max_memory
    )
    return result(Envelope(sender, tuple(recipients)), message, None)
