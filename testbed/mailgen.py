"""Deterministic, realistic test messages for benchmarks and the demo.

Responsibility: make RFC 5322 messages that look like a real mailbox (plain
text, multipart/alternative, base64 attachments; mostly 2-20 KB, a few of
100 KB-1 MB) from a seed, and put many of them into a Maildir quickly.

Invariants:

- Same seed and index → same bytes, on every machine and Python version
  (only ``random.Random`` with an explicit seed, no clock, no host name).
- Messages use CRLF line ends and lines of at most 78 characters; every
  message has From, To, Subject, Date, Message-ID and MIME-Version.
- ``big_message(size)`` builds one message of about *size* bytes without
  holding more than a few copies of a small block in Python objects.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from testbed.maildir import MailUser

__all__ = ["MailStats", "big_message", "fill", "generate", "make_message", "message_size"]

_VOCABULARY = (
    "the quarterly report meeting agenda attached please review budget numbers "
    "deadline friday project status update server migration invoice customer "
    "schedule release notes draft proposal feedback thanks regards team office "
    "travel expenses contract signed shipment order delivery warehouse backup "
    "password policy reminder holiday calendar lunch conference slides demo"
)
_WORDS = tuple(_VOCABULARY.split())
_NAMES = ("Alice Archer", "Bob Baker", "Carol Chen", "Dave Dietrich", "Eve Eriksen", "Frank Ho")
_EPOCH = datetime(2024, 3, 1, 8, 0, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class MailStats:
    """What :func:`fill` wrote: message count and total bytes (CRLF form)."""

    count: int
    octets: int


def message_size(rng: random.Random) -> int:
    """A realistic size: 97% between 2 and 20 KB, 3% between 100 KB and 1 MB."""
    if rng.random() < 0.03:
        return rng.randint(100_000, 1_000_000)
    return rng.randint(2_000, 20_000)


def _text(rng: random.Random, size: int) -> bytes:
    lines: list[str] = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 11)))
        line = line[:76].capitalize()
        lines.append(line)
        total += len(line) + 2
        if rng.random() < 0.12:
            lines.append("")
            total += 2
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _base64_block(rng: random.Random, size: int) -> bytes:
    raw = rng.randbytes(size * 3 // 4)
    encoded = base64.b64encode(raw)
    return b"".join(encoded[i : i + 76] + b"\r\n" for i in range(0, len(encoded), 76))


def _address(name: str) -> str:
    local = name.split()[0].lower()
    return f"{name} <{local}@example.org>"


def make_message(index: int, size: int, *, seed: int = 0, to: str = "user@localhost") -> bytes:
    """Message number *index* of about *size* bytes; deterministic in (*seed*, *index*)."""
    rng = random.Random(f"{seed}:{index}")
    sender = rng.choice(_NAMES)
    subject = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 6))).capitalize()
    date = format_datetime(_EPOCH + timedelta(minutes=7 * index))
    headers = (
        f"From: {_address(sender)}\r\n"
        f"To: {to}\r\n"
        f"Subject: {subject} #{index}\r\n"
        f"Date: {date}\r\n"
        f"Message-ID: <{seed}.{index}.{rng.getrandbits(40):x}@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
    ).encode("ascii")
    kind = rng.random()
    attach = size > 30_000 or kind < 0.2
    boundary = f"=_pfm_{seed}_{index}"
    if not attach and kind < 0.6:
        return (
            headers
            + b"Content-Type: text/plain; charset=us-ascii\r\n"
            + b"Content-Transfer-Encoding: 7bit\r\n\r\n"
            + _text(rng, max(size - len(headers) - 100, 200))
        )
    text_size = min(max(size // 5, 400), 8_000) if attach else max(size - len(headers) - 300, 400)
    parts = [
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + _text(rng, text_size),
    ]
    if attach:
        name = f"{rng.choice(_WORDS)}-{index}.{rng.choice(('pdf', 'png', 'zip', 'docx'))}"
        blob = _base64_block(rng, max(size - text_size - len(headers) - 500, 300))
        parts.append(
            (
                f'Content-Type: application/octet-stream; name="{name}"\r\n'
                f'Content-Disposition: attachment; filename="{name}"\r\n'
                "Content-Transfer-Encoding: base64\r\n\r\n"
            ).encode("ascii")
            + blob
        )
        subtype = "mixed"
    else:
        parts.append(b"Content-Type: text/html; charset=us-ascii\r\n\r\n<p>see text part</p>\r\n")
        subtype = "alternative"
    body = b"This is a multi-part message in MIME format.\r\n\r\n"
    for part in parts:
        body += f"--{boundary}\r\n".encode("ascii") + part + b"\r\n"
    body += f"--{boundary}--\r\n".encode("ascii")
    content_type = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'
    return headers + content_type.encode("ascii") + body


def generate(count: int, *, seed: int = 0, to: str = "user@localhost") -> Iterator[bytes]:
    """*count* messages with realistic sizes, deterministic in *seed*."""
    sizes = random.Random(f"sizes:{seed}")
    for index in range(count):
        yield make_message(index, message_size(sizes), seed=seed, to=to)


def fill(user: MailUser, count: int, *, seed: int = 0, folder: str | None = None) -> MailStats:
    """Deliver *count* generated messages straight into *user*'s Maildir."""
    octets = 0
    for raw in generate(count, seed=seed, to=f"{user.name}@localhost"):
        user.deliver(raw, folder=folder)
        octets += len(raw)
    return MailStats(count, octets)


def big_message(size: int, *, to: str = "user@localhost") -> bytes:
    """One message of about *size* bytes: short text plus one large base64 attachment."""
    rng = random.Random("big")
    block = _base64_block(rng, 1 << 20)  # ~1 MB of base64 lines, repeated
    head = make_message(0, 2_000, seed=7, to=to).split(b"\r\n\r\n", 1)[0]
    boundary = b"=_pfm_big"
    parts = [
        head.replace(b"Content-Type: text/plain; charset=us-ascii", b"X-Big: yes"),
        b'\r\nContent-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n',
        b"--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\nA big file.\r\n",
        b"--" + boundary + b"\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n",
    ]
    head_bytes = b"".join(parts)
    body_size = max(size - len(head_bytes), len(block))
    repeats, rest = divmod(body_size, len(block))
    tail = block[: block.rfind(b"\r\n", 0, rest) + 2] if rest > 2 else b""
    return head_bytes + block * repeats + tail + b"--" + boundary + b"--\r\n"
