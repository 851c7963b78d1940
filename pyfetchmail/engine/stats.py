"""Data passed between the fetch engine's parts: poll statistics and bounce requests.

Invariant: everything here is plain data.  :class:`PollStats` is the frozen
result of a session or poll; :class:`Counters` is its mutable twin inside a
session, turned into a :class:`PollStats` by :meth:`Counters.freeze`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from pyfetchmail.config.model import Query
from pyfetchmail.delivery.base import DeliveryResult
from pyfetchmail.mail.envelope import Envelope
from pyfetchmail.mail.message import SpooledMessage

__all__ = [
    "BounceRequest",
    "Counters",
    "OversizedMessage",
    "PollStats",
]


@dataclass(frozen=True, slots=True)
class BounceRequest:
    """A refused message to bounce (the engine decides, a bounce sender sends)."""

    query: Query
    message: SpooledMessage
    envelope: Envelope
    result: DeliveryResult
    reason: str
    fetchmailhost: str


@dataclass(frozen=True, slots=True)
class OversizedMessage:
    """An oversized message left on (or flushed from) the server, for warning mails."""

    folder: str | None
    number: int
    uid: str | None
    size: int
    flushed: bool


@dataclass(frozen=True, slots=True)
class PollStats:
    """What one session (or a whole poll) did."""

    messages: int = 0  # listed, all folders
    new: int = 0  # new by the rules (counted also in -c mode)
    fetched: int = 0  # retrieved from the server (fetchmail's "fetches")
    delivered: int = 0
    refused: int = 0
    transient: int = 0
    deleted: int = 0  # deletions confirmed by the server
    oversized: tuple[OversizedMessage, ...] = ()
    fetchlimit_reached: bool = False
    fetchlimit_left: int = 0
    split_pending: bool = False  # POP3 ``expunge N``: reconnect and go on
    uncommitted: frozenset[str] = frozenset()  # POP3 UIDs DELE'd, durable after QUIT
    present: frozenset[str] | None = None  # POP3 UIDs listed (None: some had none)
    left: frozenset[str] = frozenset()  # UIDs fetched but left on the server (transient ...)
    timed_out: bool = False  # the poll ended in a server/connect timeout (wedging rule)


@dataclass(slots=True)
class Counters:
    """Mutable per-session tallies behind :class:`PollStats`."""

    messages: int = 0
    new: int = 0
    fetched: int = 0
    delivered: int = 0
    refused: int = 0
    transient: int = 0
    deleted: int = 0
    oversized: list[OversizedMessage] = field(default_factory=list)
    fetchlimit_reached: bool = False
    fetchlimit_left: int = 0
    split_pending: bool = False
    uncommitted: set[str] = field(default_factory=set)
    present: set[str] | None = None
    left: set[str] = field(default_factory=set)

    def freeze(self) -> PollStats:
        """The tallies so far as a :class:`PollStats` (sets frozen, lists as tuples)."""
        values: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, set):
                value = frozenset(value)
            elif isinstance(value, list):
                value = tuple(value)
            values[f.name] = value
        return PollStats(**values)  # type: ignore[arg-type]
