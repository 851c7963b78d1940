"""One poll cycle over the active queries, and the IDLE threads beside it.

(Spec sections 3, 6.9, 7.2, 7.6.)  :class:`IdleGroup` runs the IMAP IDLE
queries, one thread each (:func:`pyfetchmail.service.idle.run_idle`); the rest are
polled by :class:`CycleRunner`.

For each query in file order a cycle:

1. skips it when it is *wedged* (too many consecutive timeouts; cleared by a
   wake-up signal) with ``poll of P skipped (failed authentication or too
   many timeouts)``;
2. in daemon mode, honours the entry's ``interval N``: polled on the first
   cycle and then on every N-th (``interval not reached, not querying P`` at
   ``-v``);
3. applies the ``interface``/``monitor`` gate (:class:`pyfetchmail.net.iface.PollGate`):
   a skipped query logs ``skipping poll of P, ...`` and gets no status (a
   single run whose every query was skipped this way exits 0, as
   fetchmail); the monitor counter is ignored in the cycle after a wake-up
   signal, and noted after each poll of a monitored query in daemon mode;
4. runs ``preconnect`` with ``/bin/sh -c``; a non-zero exit gives
   ``pre-connection command failed with status N`` (or ``terminated with
   signal N``), query status 5 and no connection;
5. polls (``PollFunc``), turning any exception that escapes the engine into
   a status instead of ending the run, so one broken account never stops
   the others (getmail6 #277);
6. runs ``postconnect``; a non-zero exit is logged and makes an otherwise
   successful query status 5;
7. logs ``Query status=N (NAME)`` for every non-success status (NOMAIL only
   at ``-vv``) and tracks consecutive authentication failures: in daemon
   mode the third (or, after an earlier success, the tenth) in a row logs a
   one-time warning, and the next success logs that authentication is OK
   again; both are also mailed to the user through *notify*
   (:mod:`pyfetchmail.delivery.warnings`, spec section 6.9), as is the wedging.

The cycle's status is :func:`pyfetchmail.exitcodes.aggregate` of the polled
statuses.  Invariant: :class:`~pyfetchmail.service.signals.Terminated` is never
caught here; it must reach the daemon loop.
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyfetchmail.config.model import Query
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.delivery import warnings as warning_mails
from pyfetchmail.delivery.warnings import WarningMail
from pyfetchmail.errors import FetchmailError
from pyfetchmail.exitcodes import ExitCode, aggregate, query_status_name
from pyfetchmail.net.iface import PollGate
from pyfetchmail.service.signals import SignalState

__all__ = [
    "MAX_TIMEOUTS",
    "CycleRunner",
    "IdleGroup",
    "PollFunc",
    "QueryState",
    "idle_module",
    "is_idle",
    "run_hook",
]

log = logging.getLogger(__name__)

#: fetchmail's MAX_TIMEOUTS: consecutive timeouts before a query is wedged.
MAX_TIMEOUTS = 20

#: Polls one query with its resolved password; returns an ExitCode value.
PollFunc = Callable[[Query, "str | None"], int]

#: Statuses a timed-out poll ends with (connect timeout, server silence).
_TIMEOUT_STATUSES = frozenset({ExitCode.SOCKET, ExitCode.ERROR})


@dataclass(slots=True)
class QueryState:
    """Mutable per-query bookkeeping across cycles (fetchmail keeps it in ``ctl``)."""

    poll_count: int = 0
    wedged: bool = False
    timeouts: int = 0
    auth_failures: int = 0
    authenticated: bool = False
    auth_warned: bool = False


def run_hook(command: str, what: str) -> int | None:
    """Run a pre/postconnect *command* via ``/bin/sh -c``; ``None`` on success.

    On failure logs ``<what> command failed with status N`` (or
    ``terminated with signal N``) and returns the raw return code.
    """
    log.debug("running %s command: %s", what, command)
    try:
        proc = subprocess.run(["/bin/sh", "-c", command], check=False)
    except OSError as exc:
        log.error("%s command could not be run: %s", what, exc.strerror or exc)
        return 127
    if proc.returncode == 0:
        return None
    if proc.returncode < 0:
        log.error("%s command terminated with signal %d", what, -proc.returncode)
    else:
        log.error("%s command failed with status %d", what, proc.returncode)
    return proc.returncode


@dataclass(slots=True)
class CycleRunner:
    """Polls the (non-IDLE) queries once per :meth:`cycle`.

    :param queries: active queries in file order.
    :param passwords: resolved password per query index.
    :param poll: the per-query poll function.
    :param daemon: daemon mode (``interval``, authentication warning mails).
    :param verbose: ``-v`` count (``Query status=1`` and interval notes).
    :param timed_out: tells whether the last poll of a query ended in a
        timeout (the engine knows; by default no poll counts as one).
    :param notify: sends a warning mail (:mod:`pyfetchmail.delivery.warnings`).
    :param gate: the ``interface``/``monitor`` checks (tests inject counters
        and a zero settle delay).
    """

    queries: tuple[Query, ...]
    passwords: tuple[str | None, ...]
    poll: PollFunc
    daemon: bool = False
    verbose: int = 0
    timed_out: Callable[[Query, int], bool] = lambda _q, _s: False
    notify: Callable[[Query, WarningMail], object] | None = None
    states: list[QueryState] = field(default_factory=list)
    gate: PollGate = field(default_factory=PollGate)
    _woken: bool = False

    def __post_init__(self) -> None:
        if not self.states:
            self.states = [QueryState() for _ in self.queries]

    def unwedge(self) -> None:
        """Clear every wedged mark (on SIGUSR1, as fetchmail does).

        Being woken by a signal also lifts the ``monitor`` check for the next
        cycle (fetchmail polls a monitored server after a wake-up).
        """
        self._woken = True
        for state in self.states:
            state.wedged = False
            state.timeouts = 0

    @property
    def all_wedged(self) -> bool:
        """True when there are queries and every one of them is wedged."""
        return bool(self.states) and all(s.wedged for s in self.states)

    def cycle(self, statuses: list[int] | None = None) -> int:
        """Poll every due query once; return the aggregated status.

        *statuses*, when given, receives each status as soon as it is known,
        so a caller interrupted mid-cycle still knows what was polled.
        """
        statuses = [] if statuses is None else statuses
        gated = False
        try:
            for query, password, state in zip(
                self.queries, self.passwords, self.states, strict=True
            ):
                if not self._due(query, state):
                    continue
                if not self.gate.approve(query, woken=self._woken):
                    gated = True
                    continue
                statuses.append(self._one(query, password, state))
        finally:
            self._woken = False
        if gated and not statuses:
            return int(ExitCode.SUCCESS)  # fetchmail: nothing polled, nothing failed
        return aggregate(statuses)

    def _due(self, query: Query, state: QueryState) -> bool:
        server = query.server
        if state.wedged:
            log.info(
                "poll of %s skipped (failed authentication or too many timeouts)", server.pollname
            )
            return False
        if self.daemon and server.interval > 1:
            count, state.poll_count = state.poll_count, state.poll_count + 1
            if count % server.interval:
                log.debug("interval not reached, not querying %s", server.pollname)
                return False
        return True

    def _one(self, query: Query, password: str | None, state: QueryState) -> int:
        user = query.user
        if user.preconnect and run_hook(user.preconnect, "pre-connection") is not None:
            status = int(ExitCode.SYNTAX)
        else:
            status = self._poll(query, password)
            post_failed = bool(user.postconnect) and (
                run_hook(user.postconnect or "", "post-connection") is not None
            )
            if post_failed and status in (ExitCode.SUCCESS, ExitCode.NOMAIL):
                status = int(ExitCode.SYNTAX)
            self.gate.polled(query, daemon=self.daemon)
        self._account(query, state, status)
        if status == ExitCode.NOMAIL:
            if self.verbose >= 2:
                log.debug("Query status=%s", query_status_name(status))
        elif status != ExitCode.SUCCESS:
            log.warning("Query status=%s", query_status_name(status))
        return status

    def _poll(self, query: Query, password: str | None) -> int:
        try:
            return int(self.poll(query, password))
        except FetchmailError as exc:
            log.error("%s", exc)
            return int(exc.exit_code)
        except Exception as exc:
            # Isolate the failure to this account; the traceback is at debug level.
            log.error("internal error while polling %s: %s", query.label, exc)
            log.debug("traceback of the internal error", exc_info=True)
            return int(ExitCode.UNDEFINED)

    def _account(self, query: Query, state: QueryState, status: int) -> None:
        if status in _TIMEOUT_STATUSES and self.timed_out(query, status):
            state.timeouts += 1
            if state.timeouts >= MAX_TIMEOUTS:
                state.wedged = True
                log.error(
                    "%d consecutive timeouts on %s; not polling it until woken",
                    state.timeouts,
                    query.label,
                )
                self._notify(
                    query,
                    warning_mails.timeout_warning(
                        query.server.pollname, query.user.remote, state.timeouts
                    ),
                )
        else:
            state.timeouts = 0
        if status == ExitCode.AUTHFAIL:
            state.auth_failures += 1
            limit = 10 if state.authenticated else 3
            if self.daemon and not state.auth_warned and state.auth_failures >= limit:
                state.auth_warned = True
                log.error(
                    "authentication failed on %s %d times in a row; check the password",
                    query.label,
                    state.auth_failures,
                )
                self._notify(
                    query,
                    warning_mails.auth_failure_warning(
                        query.server.pollname,
                        query.user.remote,
                        query.server.protocol.value.upper(),
                    ),
                )
        elif status in (ExitCode.SUCCESS, ExitCode.NOMAIL, ExitCode.MAXFETCH):
            if state.auth_warned:
                log.info("authentication OK on %s again", query.label)
                self._notify(
                    query, warning_mails.auth_ok_warning(query.server.pollname, query.user.remote)
                )
            state.auth_failures = 0
            state.auth_warned = False
            state.authenticated = True

    def _notify(self, query: Query, mail: WarningMail) -> None:
        if self.notify is None:
            return
        try:
            self.notify(query, mail)
        except Exception as exc:  # a warning mail must never break the polling loop
            log.warning('could not send the warning mail "%s": %s', mail.subject, exc)


def is_idle(query: Query) -> bool:
    """True for a query served by IMAP IDLE instead of polling."""
    return query.user.idle and query.server.protocol.value == "imap"


def idle_module(queries: tuple[Query, ...]) -> Any:
    """``pyfetchmail.service.idle`` if some query wants IMAP IDLE and it is available."""
    if not any(is_idle(q) for q in queries):
        return None
    try:
        return importlib.import_module("pyfetchmail.service.idle")
    except ImportError:
        log.warning("IMAP IDLE is not available in this build; polling instead")
        return None


class IdleGroup:
    """The IDLE threads of a run, the event that stops them, their wake events.

    fetchmail 6.4 allows one IDLE query and serves it inside its poll; we run
    each IDLE query in its own thread next to the polling loop.  A thread
    that ends (e.g. the server cannot IDLE) pokes *sig* so that a single run
    waiting for its IDLE loops notices.
    """

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.wakes: list[threading.Event] = []

    def start(
        self,
        idle_mod: Any,
        result: Any,
        options: CommandLineOptions,
        queries: tuple[Query, ...],
        passwords: tuple[str | None, ...],
        store: Any,
        daemon: bool,
        sig: SignalState,
    ) -> None:
        """Start one thread per IDLE query running ``idle.run_idle``."""
        fetch: Any = importlib.import_module("pyfetchmail.engine.poll")
        for query, password in zip(queries, passwords, strict=True):
            if not is_idle(query):
                continue
            ctx = fetch.PollContext(
                run=result.config.run,
                options=options,
                identity=result.identity,
                uidstore=store,
                password=password,
                daemon=daemon,
            )
            wake = threading.Event()
            thread = threading.Thread(
                target=self._guard,
                args=(idle_mod.run_idle, query, ctx, wake, sig),
                name=f"idle {query.label}",
                daemon=True,
            )
            self.wakes.append(wake)
            self.threads.append(thread)
            thread.start()

    def _guard(
        self,
        run_idle: Callable[..., Any],
        query: Query,
        ctx: Any,
        wake: threading.Event,
        sig: SignalState,
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
