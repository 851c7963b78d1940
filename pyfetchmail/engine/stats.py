"""Data passed between the fetch engine's parts: stats, requests, the sink holder.

Invariant: everything here is plain data (frozen dataclasses) except
:class:`DeliverySink`, which opens the query's Delivery lazily (fetchmail
connects to the listener only when a message needs it) and closes it once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pyfetchmail.delivery.base import Delivery, DeliveryResult, Envelope
from pyfetchmail.errors import FetchmailError
from pyfetchmail.mail.message import SpooledMessage

if TYPE_CHECKING:
    from pyfetchmail.config.model import Query
    from pyfetchmail.engine.poll import PollContext

__all__ = [
    "BounceRequest",
    "Counters",
    "DeliverySink",
    "MessageOrigin",
    "OversizedMessage",
    "PollStats",
    "PreparedLike",
]

log = logging.getLogger(__name__)


class PreparedLike(Protocol):
    """What :func:`pyfetchmail.mail.prepare.prepare_message` returns."""

    @property
    def message(self) -> SpooledMessage: ...
    @property
    def envelope(self) -> Envelope: ...
    @property
    def warnings(self) -> Sequence[str]: ...
    @property
    def refused(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class MessageOrigin:
    """Where a message came from; the fields of ``delivery.prepare.TraceInfo``."""

    server_truename: str
    server_address: str | None
    protocol_name: str
    fetchmailhost: str
    pollname: str
    remote: str
    folder: str | None
    folder_explicit: bool
    invoking_user: str | None = None


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


class DeliverySink:
    """Opens the query's Delivery on first use and closes it once."""

    def __init__(self, query: Query, ctx: PollContext, truename: str) -> None:
        self._query, self._ctx, self._truename = query, ctx, truename
        self._delivery: Delivery | None = None

    def get(self) -> Delivery:
        if self._delivery is None:
            self._delivery = self._ctx.delivery_factory(self._query, self._ctx, self._truename)
        return self._delivery

    def close(self) -> None:
        if self._delivery is not None:
            delivery, self._delivery = self._delivery, None
            try:
                delivery.close()
            except (FetchmailError, OSError) as exc:
                # Every message was acknowledged (or not) before this point.
                log.debug("closing the delivery failed: %s", exc)


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
