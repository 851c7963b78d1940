"""What a poll needs besides the query: the run's settings, state, seams and a stop event.

:class:`PollContext` is the engine's only dependency on the world outside one
account.  Its factories are the production ones by default (the mail source
of :mod:`pyfetchmail.protocols.sources`, the sink of
:mod:`pyfetchmail.delivery.factory`, :func:`pyfetchmail.mail.prepare.prepare_message`,
:func:`pyfetchmail.delivery.bounce.send_bounce`); tests inject fakes, and
:mod:`pyfetchmail.service.wiring` builds the contexts of a real run.

Invariants:
- The secret a session logs in with is asked of :attr:`PollContext.credentials`
  at each connect (a refreshed token, not a string fixed at start-up).
- :attr:`PollContext.stop` may be set from any thread; the engine then
  finishes the message in flight, records it, and ends the poll normally
  (deletions already acknowledged are committed, nothing else is fetched).
- :class:`DeliverySink` opens the query's delivery on first use (fetchmail
  connects to the listener only when a message needs it) and closes it once.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyfetchmail.auth.credentials import Credentials, FixedSecret
from pyfetchmail.config.env import Identity
from pyfetchmail.config.model import Query, RunControl
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.delivery.base import Delivery
from pyfetchmail.delivery.bounce import send_bounce
from pyfetchmail.delivery.factory import make_delivery
from pyfetchmail.engine.stats import BounceRequest, PollStats
from pyfetchmail.errors import DNSError, FetchmailError
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.mail.prepare import PreparedMessage, prepare_message
from pyfetchmail.mail.trace import TraceInfo
from pyfetchmail.protocols.base import MailSession, MailSource
from pyfetchmail.protocols.sources import open_source
from pyfetchmail.state.uidstore import UidStore

__all__ = ["DeliverySink", "PollContext", "close_quietly"]

log = logging.getLogger(__name__)

SourceFactory = Callable[[Query, Credentials, "PollContext"], MailSource]
DeliveryFactory = Callable[[Query, "PollContext", str], Delivery]
PrepareFunc = Callable[
    [SpooledMessage, Query, "PollContext", TraceInfo, "bytes | None"], PreparedMessage
]
BounceFunc = Callable[[BounceRequest, "PollContext"], None]


def _default_source(query: Query, credentials: Credentials, ctx: PollContext) -> MailSource:
    return open_source(query, credentials, check_only=ctx.options.check)


def _default_delivery(query: Query, ctx: PollContext, truename: str) -> Delivery:
    return make_delivery(query, ctx.run, ctx.fetchmailhost, server_truename=truename)


def _default_prepare(
    msg: SpooledMessage,
    query: Query,
    ctx: PollContext,
    origin: TraceInfo,
    previous_digest: bytes | None,
) -> PreparedMessage:
    return prepare_message(msg, query, ctx.run, origin, previous_digest=previous_digest)


def _default_bounce(req: BounceRequest, ctx: PollContext) -> None:
    try:
        send_bounce(
            req.message,
            req.envelope,
            req.result,
            query=req.query,
            run=ctx.run,
            fetchmailhost=req.fetchmailhost,
            reason=req.reason,
        )
    except (FetchmailError, OSError) as exc:
        log.warning("bounce for %s could not be sent: %s", req.query.label, exc)


def _default_truename(query: Query) -> str:
    """Canonical DNS name of the server (fetchmail(1), "dns"); the queryname with ``no dns``."""
    name = query.server.queryname
    if not query.server.dns or query.server.plugin:
        return name
    try:
        infos = socket.getaddrinfo(name, None, flags=socket.AI_CANONNAME)
    except (OSError, UnicodeError) as exc:
        raise DNSError(
            f"couldn't find canonical DNS name of {query.server.pollname} ({name}): {exc}"
        ) from exc
    return next((info[3] for info in infos if info[3]), name)


@dataclass(frozen=True, slots=True)
class PollContext:
    """Everything a poll needs besides the query; tests inject fakes for the factories."""

    run: RunControl
    options: CommandLineOptions
    identity: Identity | None
    uidstore: UidStore
    credentials: Credentials = field(default_factory=lambda: FixedSecret(None))
    daemon: bool = False
    source_factory: SourceFactory = _default_source
    delivery_factory: DeliveryFactory = _default_delivery
    prepare: PrepareFunc = _default_prepare
    bounce: BounceFunc = _default_bounce
    resolve_truename: Callable[[Query], str] = _default_truename
    sleep: Callable[[float], None] = time.sleep
    #: Called once per poll with what it did (e.g. for oversized-message warnings).
    on_stats: Callable[[Query, PollStats], None] | None = None
    #: Set (from any thread) to end the poll after the message in flight.
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def fetchmailhost(self) -> str:
        """This host's name as used in Received headers and bounces."""
        name = self.identity.fetchmailhost if self.identity is not None else None
        return name or socket.gethostname()

    @property
    def invoking_user(self) -> str | None:
        """Who runs us (the To: of a synthesised header), when known."""
        return self.identity.user if self.identity is not None else None

    def open_source(self, query: Query) -> MailSource:
        """The mail source of *query*, logging in with this context's credentials."""
        return self.source_factory(query, self.credentials, self)


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


def close_quietly(session: MailSession, *, commit: bool) -> None:
    """Best-effort close after a failure; its own errors must not hide the first one."""
    try:
        session.close(commit=commit)
    except (FetchmailError, OSError) as exc:
        log.debug("closing the session failed: %s", exc)
