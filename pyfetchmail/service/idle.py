"""The IMAP IDLE loop of one query (``idle`` option; RFC 2177; fetchmail(1), ``--idle``).

Responsibility: keep one IMAP session open, process the folder, and wait for
new mail with IDLE (RFC 2177) instead of polling; reconnect with bounded
exponential backoff when the connection drops.

Contract with :mod:`pyfetchmail.service.daemon` (one thread per IDLE query)::

    run_idle(query, ctx, *, stop, wake=None, settings=IdleSettings(), process=None)

- *ctx* is the query's :class:`pyfetchmail.engine.poll.PollContext`; the session
  comes from ``ctx.open_source(query).open()`` (credentials asked at each connect).
- *stop* (:class:`threading.Event`, by default ``ctx.stop``) ends the loop: an ongoing IDLE is ended
  with DONE, pending deletions are expunged, and the session logs out.
- *wake* (optional event, set on SIGUSR1) makes the loop re-process at once;
  the loop clears it.
- *process* defaults to :func:`pyfetchmail.engine.poll.process_session`, which
  opens the delivery (SMTP/LMTP/MDA) on first use and closes it before
  returning, so no delivery connection is held while idling.

Behaviour:
- After each pass the loop IDLEs until the server announces ``EXISTS`` or
  ``RECENT``, *wake* or *stop* is set, or :attr:`IdleSettings.refresh` passes
  (RFC 2177 §3: a client should re-issue IDLE at least every 29 minutes; we
  use fetchmail's 28).  Each of these ends the IDLE with DONE and, unless
  stopping, runs another pass (a pass finds nothing new cheaply).
- A server that does not advertise IDLE gets polled every
  ``ctx.run.poll_interval`` seconds on a fresh connection; with no interval
  (not a daemon) the loop returns after the first pass, as fetchmail 6.4.
- Any :class:`~pyfetchmail.errors.FetchmailError` (connect, auth, protocol,
  delivery) is logged; the loop reconnects after ``backoff`` seconds,
  doubling from :attr:`IdleSettings.backoff_initial` up to
  :attr:`IdleSettings.backoff_max`; a successful pass resets it.

Invariant: nothing is expunged on a failed session (``close(commit=False)``),
except after a delivery-side failure, where the connection is sound and the
engine's confirmed deletions may be committed (as :func:`fetch.poll_query`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pyfetchmail.auth.credentials import Credentials
from pyfetchmail.config.model import MailProtocol, Query
from pyfetchmail.engine.context import PollContext, close_quietly
from pyfetchmail.engine.poll import process_session
from pyfetchmail.errors import DeliveryError, FetchmailError, LocalIOError
from pyfetchmail.protocols.base import MailSession
from pyfetchmail.service.signals import SignalState
from pyfetchmail.service.wiring import ContextFactory

__all__ = ["IdleCapable", "IdleGroup", "IdleSettings", "is_idle", "run_idle"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IdleSettings:
    """Timers of the IDLE loop (seconds); tests shorten them."""

    refresh: float = 28 * 60
    backoff_initial: float = 5.0
    backoff_max: float = 300.0


@runtime_checkable
class IdleCapable(Protocol):
    """What the loop needs from a session beyond :class:`MailSession`."""

    @property
    def supports_idle(self) -> bool:
        """True when the server advertises IDLE."""
        ...

    def wait_for_mail(self, max_wait: float, interrupted: Callable[[], bool]) -> bool:
        """IDLE up to *max_wait* s; True when new mail was announced."""
        ...


ProcessFunc = Callable[[MailSession, Query, PollContext], object]


def _wait(seconds: float, stop: threading.Event, wake: threading.Event | None) -> None:
    """Sleep up to *seconds*, returning early when *stop* or *wake* is set."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and not (wake is not None and wake.is_set()):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        stop.wait(min(left, 0.25))


def _default_process(session: MailSession, query: Query, ctx: PollContext) -> object:
    return process_session(session, query, ctx, truename=ctx.resolve_truename(query))


@dataclass(slots=True)
class _Backoff:
    """Reconnect delay: doubles on failure up to a bound, resets after a good pass."""

    settings: IdleSettings
    delay: float = 0.0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.delay = self.settings.backoff_initial

    def pause(self, label: str, stop: threading.Event) -> None:
        log.info("%s: reconnecting in %g seconds", label, self.delay)
        _wait(self.delay, stop, None)
        self.delay = min(self.delay * 2, self.settings.backoff_max)


def _session_loop(
    session: MailSession,
    query: Query,
    ctx: PollContext,
    process: ProcessFunc,
    stop: threading.Event,
    wake: threading.Event | None,
    backoff: _Backoff,
) -> bool:
    """Process and IDLE on one open *session*; return False when IDLE is unavailable."""

    def interrupted() -> bool:
        return stop.is_set() or (wake is not None and wake.is_set())

    while not stop.is_set():
        if wake is not None:
            wake.clear()
        process(session, query, ctx)
        backoff.reset()
        if not (isinstance(session, IdleCapable) and session.supports_idle):
            return False
        if stop.is_set():
            break
        refresh = backoff.settings.refresh
        log.debug("%s: idling for up to %g seconds", query.label, refresh)
        if session.wait_for_mail(refresh, interrupted):
            log.debug("%s: IDLE announced new mail", query.label)
    return True


def run_idle(
    query: Query,
    ctx: PollContext,
    *,
    stop: threading.Event | None = None,
    wake: threading.Event | None = None,
    settings: IdleSettings | None = None,
    process: ProcessFunc | None = None,
) -> None:
    """Serve *query* with IMAP IDLE until *stop* (default ``ctx.stop``) is set.

    See the module docstring.
    """
    stop = ctx.stop if stop is None else stop
    run_pass = process or _default_process
    backoff = _Backoff(settings or IdleSettings())
    while not stop.is_set():
        try:
            session = ctx.open_source(query).open()
        except FetchmailError as exc:
            log.error("%s", exc)
            backoff.pause(query.label, stop)
            continue
        try:
            idled = _session_loop(session, query, ctx, run_pass, stop, wake, backoff)
        except (DeliveryError, LocalIOError) as exc:
            log.error("%s", exc)
            close_quietly(session, commit=True)
        except FetchmailError as exc:
            log.error("%s", exc)
            close_quietly(session, commit=False)
        except BaseException:
            close_quietly(session, commit=False)
            raise
        else:
            close_quietly(session, commit=True)
            if idled:
                continue  # stopped
            interval = ctx.run.poll_interval
            if interval <= 0:
                log.debug("%s: server has no IDLE and no poll interval: done", query.label)
                return
            log.debug("%s: server has no IDLE, polling every %d seconds", query.label, interval)
            _wait(interval, stop, wake)
            continue
        backoff.pause(query.label, stop)


def is_idle(query: Query) -> bool:
    """True for a query served by IMAP IDLE instead of polling."""
    return query.user.idle and query.server.protocol is MailProtocol.IMAP


class IdleGroup:
    """The IDLE threads of a run, the event that stops them, their wake events.

    fetchmail 6.4 allows one IDLE query and serves it inside its poll; we run
    each IDLE query in its own thread next to the polling loop.  A thread
    that ends (e.g. the server cannot IDLE) pokes *sig* so that a single run
    waiting for its IDLE loops notices.
    """

    def __init__(self, stop_event: threading.Event | None = None) -> None:
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self.threads: list[threading.Thread] = []
        self.wakes: list[threading.Event] = []

    def start(
        self,
        queries: tuple[Query, ...],
        credentials: tuple[Credentials, ...],
        make_context: ContextFactory,
        sig: SignalState,
    ) -> None:
        """Start one thread running :func:`run_idle` per IDLE query of *queries*.

        *make_context* builds each query's poll context; the loops end when
        :attr:`stop_event` is set (it should be the contexts' stop event).
        """
        for query, creds in zip(queries, credentials, strict=True):
            if not is_idle(query):
                continue
            ctx = make_context(query, creds)
            wake = threading.Event()
            thread = threading.Thread(
                target=self._guard,
                args=(query, ctx, wake, sig),
                name=f"idle {query.label}",
                daemon=True,
            )
            self.wakes.append(wake)
            self.threads.append(thread)
            thread.start()

    def _guard(
        self, query: Query, ctx: PollContext, wake: threading.Event, sig: SignalState
    ) -> None:
        try:
            run_idle(query, ctx, stop=self.stop_event, wake=wake)
        except Exception:
            log.exception("IDLE loop for %s ended with an internal error", query.label)
        finally:
            sig.poke()  # a single run waits for the IDLE loops to end

    def finished(self) -> bool:
        """True when every IDLE loop has returned."""
        return not any(t.is_alive() for t in self.threads)

    def wake(self) -> None:
        """Pass a SIGUSR1 wake-up on to every IDLE loop."""
        for event in self.wakes:
            event.set()

    def stop(self) -> None:
        """Ask every IDLE loop to end and wait (bounded) for it."""
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=10.0)
