"""BSMTP sink: append each message as a batch-SMTP transaction (fetchmail(1), ``--bsmtp``).

Responsibility: write ``MAIL FROM``/``RCPT TO``/``DATA``/message/``.`` with
CRLF line ends to the ``bsmtp`` file (or stdout for ``-``).

Invariants:
- ACCEPTED only after the whole record is written, flushed and fsync'ed.
- A record is all or nothing: if writing fails half-way, the file is
  truncated back to its previous length (fetchmail could leave a partial
  transaction behind), and the result is TEMPFAIL.
- The body is dot-stuffed (RFC 5321 §4.5.2), which reproduces the bytes
  fetchmail wrote: it passed the POP3 server's stuffing through.
- No HELO/QUIT and no SIZE, as in fetchmail.  Failure to open the file is
  :class:`BsmtpError` (exit 12).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Iterator

from pyfetchmail.config.model import Query
from pyfetchmail.delivery.base import DeliveryResult, Envelope, Outcome
from pyfetchmail.errors import BsmtpError
from pyfetchmail.mail.headers import BodyType, body_type, rcpt_address, split_fields
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.state.statefile import write_all

__all__ = ["BsmtpDelivery", "bsmtp_record"]

log = logging.getLogger(__name__)


def bsmtp_record(message: SpooledMessage, envelope: Envelope, query: Query) -> Iterator[bytes]:
    """The BSMTP transaction for *message* as a stream of byte chunks."""
    user = query.user
    head = f"MAIL FROM:<{envelope.sender}>"
    kind = body_type(split_fields(message.header_bytes()))
    if user.pass8bits or kind is BodyType.EIGHT_BIT:
        head += " BODY=8BITMIME"
    elif kind is BodyType.SEVEN_BIT:
        head += " BODY=7BIT"
    lines = [head]
    domain = user.smtpaddress or "localhost"
    for address in dict.fromkeys(
        rcpt_address(r, user.smtpname, domain) for r in envelope.recipients
    ):
        lines.append(f"RCPT TO:<{address}>")
    lines.append("DATA")
    yield ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")
    at_line_start = True
    last = b"\n"
    for chunk in message.iter_chunks():
        if at_line_start and chunk.startswith(b"."):
            chunk = b"." + chunk
        chunk = chunk.replace(b"\n.", b"\n..")
        last = chunk[-1:]
        at_line_start = last == b"\n"
        yield chunk
    yield b".\r\n" if last == b"\n" else b"\r\n.\r\n"


class BsmtpDelivery:
    """Append messages to the query's ``bsmtp`` file (``-`` = standard output)."""

    def __init__(self, query: Query) -> None:
        if query.user.bsmtp is None:
            raise ValueError("BsmtpDelivery needs a bsmtp file")
        self.path = query.user.bsmtp
        self.query = query

    def close(self) -> None:
        """Nothing to close: the file is opened per message."""

    def deliver(self, message: SpooledMessage, envelope: Envelope) -> DeliveryResult:
        """Append one record; ACCEPTED once it is on disk."""
        record = bsmtp_record(message, envelope, self.query)
        if self.path == "-":
            try:
                for chunk in record:
                    sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
            except OSError as exc:
                return self._failed(exc)
            return DeliveryResult(Outcome.ACCEPTED, 0, "", where="stdout")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise BsmtpError(f"BSMTP file open failed: {self.path}: {exc.strerror}") from exc
        try:
            try:
                start: int | None = os.lseek(fd, 0, os.SEEK_END)
            except OSError:
                start = None  # a FIFO or terminal: nothing to cut back
            try:
                for chunk in record:
                    write_all(fd, chunk)
                _fsync(fd)
            except OSError as exc:
                # All or nothing: cut the partial record off again.
                if start is not None:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, start)
                return self._failed(exc)
        finally:
            os.close(fd)
        return DeliveryResult(Outcome.ACCEPTED, 0, "", where=self.path)

    def _failed(self, exc: OSError) -> DeliveryResult:
        log.warning("BSMTP write to %s failed: %s", self.path, exc)
        return DeliveryResult(Outcome.TEMPFAIL, 0, f"BSMTP write failed: {exc}", where=self.path)


def _fsync(fd: int) -> None:
    """fsync, tolerating files that cannot be synced (a FIFO, a terminal)."""
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EROFS, errno.ENOTSUP):
            raise
