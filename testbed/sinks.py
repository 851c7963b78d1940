"""SMTP and LMTP sinks on loopback with scripted replies (aiosmtpd based).

Responsibility: accept mail from the program under test on 127.0.0.1, record
exactly what arrived (envelope and bytes), and answer what the test scripted.

Invariants:

- ``received`` holds only messages that were accepted (a 2xx end-of-data
  reply; for LMTP the ``rcpt_tos`` are the recipients that got 2xx). Every
  end-of-data, accepted or not, is in ``transactions`` with its reply lines.
- ``Received.data`` is the message as received after dot-unstuffing, CRLF
  line ends kept, terminator removed (aiosmtpd's ``original_content``).
- Recording is guarded by a lock; the properties return snapshots.
- Scripted replies are deterministic: ``reject_mail``/``reject_rcpt`` by
  address, ``reply_to_data(n, reply)`` for the n-th end-of-data (1-based,
  counted over the sink's life), ``lmtp_replies`` per recipient, or a general
  ``policy(stage, arg)`` callable that is asked first.

``FastSmtpSink`` (in :mod:`testbed.fastsink`) is the benchmark sink: stock
aiosmtpd reads DATA a line at a time and tops out near 500 messages/s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from testbed.dovecot import free_ports
from testbed.fastsink import FastSmtpSink
from testbed.serving import Lifecycle

__all__ = ["FastSmtpSink", "Policy", "Received", "SmtpSink", "Transaction"]


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the sink got it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str]


@dataclass(frozen=True, slots=True)
class Transaction:
    """One end-of-data: the full envelope and the reply line(s) the sink sent."""

    message: Received
    replies: list[str]


Policy = Callable[[str, "str | Received"], "str | None"]
"""``policy(stage, arg) -> reply or None``.

*stage* is ``"MAIL"`` (arg: sender), ``"RCPT"`` (arg: recipient) or
``"DATA"`` (arg: the :class:`Received`, asked once per recipient for LMTP with
``rcpt_tos`` holding just that recipient). ``None`` means "use the default".
"""


class _Handler:
    """aiosmtpd hooks that delegate to the owning sink."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        reply = self._sink._decide("MAIL", address)
        if reply is not None and not reply.startswith("2"):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return reply or "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self._sink._decide("RCPT", address)
        if reply is not None and not reply.startswith("2"):
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return reply or "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return self._sink._end_of_data(envelope)


class _LmtpController(Controller):
    def factory(self) -> SMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)


class SmtpSink(Lifecycle):
    """An SMTP (or, with *lmtp*, LMTP) server on 127.0.0.1 that records mail.

    Use ``start()``/``stop()`` or ``with SmtpSink() as sink:``; then send to
    ``sink.host``/``sink.port``. *lmtp_replies* maps a recipient to the reply
    its end-of-data gets (LMTP, RFC 2033 §4.2: one reply per recipient).
    *data_size_limit* (bytes) makes the server advertise and enforce SIZE.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        lmtp: bool = False,
        lmtp_replies: dict[str, str] | None = None,
        policy: Policy | None = None,
        data_size_limit: int | None = None,
    ) -> None:
        self.lmtp = lmtp
        self.lmtp_replies: dict[str, str] = dict(lmtp_replies or {})
        self.policy: Policy | None = policy
        self.port = 0
        self._data_size_limit = data_size_limit
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._transactions: list[Transaction] = []
        self._rcpt_rejects: dict[str, str] = {}
        self._mail_rejects: dict[str, str] = {}
        self._data_replies: dict[int, str | None] = {}
        self._controller: Controller | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the server thread on a free port (retrying if the port is taken)."""
        controller_class = _LmtpController if self.lmtp else Controller
        last: Exception | None = None
        for _attempt in range(5):
            (port,) = free_ports(1)
            controller = controller_class(
                _Handler(self),
                hostname=self.host,
                port=port,
                ready_timeout=10.0,
                server_hostname="sink.localhost",
                ident="pfm-testbed sink",
                data_size_limit=self._data_size_limit,
                enable_SMTPUTF8=True,
            )
            try:
                controller.start()
            except (OSError, RuntimeError, TimeoutError) as exc:
                last = exc
                continue
            self._controller = controller
            self.port = port
            return
        raise RuntimeError(f"cannot start the {'LMTP' if self.lmtp else 'SMTP'} sink: {last}")

    def stop(self) -> None:
        """Stop the server thread (idempotent)."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    # -- scripting -------------------------------------------------------------------

    def reject_mail(self, address: str, reply: str = "550 5.7.1 sender rejected") -> None:
        """Answer ``MAIL FROM:<address>`` with *reply*."""
        with self._lock:
            self._mail_rejects[address.lower()] = reply

    def reject_rcpt(self, address: str, reply: str = "550 5.1.1 no such user") -> None:
        """Answer ``RCPT TO:<address>`` with *reply*."""
        with self._lock:
            self._rcpt_rejects[address.lower()] = reply

    def reply_to_data(self, n: int, reply: str | None) -> None:
        """Answer the *n*-th end-of-data (1-based) with *reply*; ``None`` = normal 250."""
        with self._lock:
            self._data_replies[n] = reply

    # -- results ---------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        """Snapshot of the accepted messages, in arrival order."""
        with self._lock:
            return list(self._received)

    @property
    def transactions(self) -> list[Transaction]:
        """Snapshot of every end-of-data with the replies sent."""
        with self._lock:
            return list(self._transactions)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until *count* messages were accepted; return them (raises on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.received
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"sink got {len(got)} of {count} messages in {timeout} s")
            time.sleep(0.01)

    # -- called from the server thread -----------------------------------------------

    def _decide(self, stage: str, arg: str | Received) -> str | None:
        policy = self.policy
        if policy is not None:
            reply = policy(stage, arg)
            if reply is not None:
                return reply
        with self._lock:
            if stage == "MAIL" and isinstance(arg, str):
                return self._mail_rejects.get(arg.lower())
            if stage == "RCPT" and isinstance(arg, str):
                return self._rcpt_rejects.get(arg.lower())
        return None

    def _end_of_data(self, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        message = Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(data),
            mail_options=list(envelope.mail_options),
        )
        with self._lock:
            number = len(self._transactions) + 1
            scripted = self._data_replies.get(number)
        replies: list[str] = []
        accepted: list[str] = []
        targets: list[Any] = list(message.rcpt_tos) if self.lmtp else [None]
        for rcpt in targets:
            one = message if rcpt is None else _with_rcpts(message, [rcpt])
            reply = self._decide("DATA", one) or scripted
            if reply is None and rcpt is not None:
                reply = self.lmtp_replies.get(rcpt) or self.lmtp_replies.get(rcpt.lower())
            reply = reply or "250 2.0.0 OK queued"
            replies.append(reply)
            if reply.startswith("2"):
                accepted.extend(message.rcpt_tos if rcpt is None else [rcpt])
        with self._lock:
            self._transactions.append(Transaction(message, replies))
            if accepted:
                self._received.append(_with_rcpts(message, accepted))
        return "\r\n".join(replies)


def _with_rcpts(message: Received, rcpts: list[str]) -> Received:
    return Received(message.mail_from, rcpts, message.data, message.mail_options)
