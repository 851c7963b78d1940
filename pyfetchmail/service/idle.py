"""The IMAP IDLE loop of one query (``idle`` option; spec §5.3 "IDLE", §7.5).

Responsibility: keep one IMAP session open, process the folder, and wait for
new mail with IDLE (RFC 2177) instead of polling; reconnect with bounded
exponential backoff when the connection drops.

Contract with :mod:`pyfetchmail.service.daemon` (one thread per IDLE query)::

    run_idle(query, ctx, *, stop, wake=None, settings=IdleSettings(), process=None)

- *ctx* is the query's :class:`pyfetchmail.engine.poll.PollContext`; the session
  comes from ``ctx.source_factory(query, ctx.password, ctx).open()``.
- *stop* (:class:`threading.Event`) ends the loop: an ongoing IDLE is ended
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

from pyfetchmail.config.model import Query
from pyfetchmail.engine.poll import PollContext, process_session
from pyfetchmail.errors import DeliveryError, FetchmailError, LocalIOError
from pyfetchmail.protocols.base import MailSession

__all__ = ["IdleCapable", "IdleSettings", "run_idle"]

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


def _close(session: MailSession, *, commit: bool) -> None:
    try:
        session.close(commit=commit)
    except (FetchmailError, OSError) as exc:
        log.debug("closing the IDLE session failed: %s", exc)


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
    stop: threading.Event,
    wake: threading.Event | None = None,
    settings: IdleSettings | None = None,
    process: ProcessFunc | None = None,
) -> None:
    """Serve *query* with IMAP IDLE until *stop* is set; see the module docstring."""
    run_pass = process or _default_process
    backoff = _Backoff(settings or IdleSettings())
    while not stop.is_set():
        try:
            session = ctx.source_factory(query, ctx.password, ctx).open()
        except FetchmailError as exc:
            log.error("%s", exc)
            backoff.pause(query.label, stop)
            continue
        try:
            idled = _session_loop(session, query, ctx, run_pass, stop, wake, backoff)
        except (DeliveryError, LocalIOError) as exc:
            log.error("%s", exc)
            _close(session, commit=True)
        except FetchmailError as exc:
            log.error("%s", exc)
            _close(session, commit=False)
        except BaseException:
            _close(session, commit=False)
            raise
        else:
            _close(session, commit=True)
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
