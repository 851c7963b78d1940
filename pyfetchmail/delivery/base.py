"""The seam between the fetch engine and a delivery sink.

Invariants every sink keeps:
- :meth:`Delivery.deliver` returns ``Outcome.ACCEPTED`` only on positive
  acknowledgement: SMTP 250 after DATA; LMTP 250 for every accepted recipient;
  MDA exit status 0; BSMTP record written and flushed (fsync).  Anything else
  is TEMPFAIL or PERMFAIL, never ACCEPTED.
- A sink never raises for a per-message refusal; it returns a result.  It
  raises :class:`pyfetchmail.errors.SmtpConnectError` (or another
  DeliveryError) only when it cannot work at all (no listener reachable).
- The message bytes are passed as received (see :mod:`pyfetchmail.mail.message`);
  each sink applies its own framing (dot-stuffing, LF line ends).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from pyfetchmail.mail.envelope import Envelope
from pyfetchmail.mail.message import SpooledMessage

__all__ = ["Delivery", "DeliveryResult", "Envelope", "Outcome", "RecipientResult"]


class Outcome(enum.Enum):
    """How the local side answered for a whole message."""

    ACCEPTED = "accepted"  # positively acknowledged: may be deleted on the server
    TEMPFAIL = "tempfail"  # 4xx, MDA failure, connection trouble: keep, retry later
    PERMFAIL = "permfail"  # 5xx / antispam: bounce; delete only without softbounce


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """The listener's reply to one recipient (RCPT, or LMTP's per-recipient EOM reply)."""

    recipient: str
    code: int
    text: str

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """Result of :meth:`Delivery.deliver`.

    *code*/*text* are the deciding reply (0/"" for MDA/BSMTP, with *text*
    describing an MDA exit status); *spam* is True when *code* is in the
    user's ``antispam`` list.
    """

    outcome: Outcome
    code: int = 0
    text: str = ""
    recipients: tuple[RecipientResult, ...] = field(default=())
    spam: bool = False
    where: str = ""  # human-readable target, e.g. "localhost/25" or "MDA"

    @property
    def rejected_recipients(self) -> tuple[RecipientResult, ...]:
        return tuple(r for r in self.recipients if not r.accepted)


class Delivery(Protocol):
    """A delivery sink; one instance serves all messages of one query."""

    def deliver(self, message: SpooledMessage, envelope: Envelope) -> DeliveryResult:
        """Hand *message* to the local side and report its answer."""
        ...

    def close(self) -> None:
        """Finish (SMTP QUIT); safe to call more than once."""
        ...
