"""One poll cycle over the active (non-IDLE) queries.

fetchmail(1), "DAEMON MODE" and "interval"; the IMAP IDLE queries run beside
it in threads (:class:`pyfetchmail.service.idle.IdleGroup`).

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
   (:mod:`pyfetchmail.delivery.warnings`, fetchmail(1), "warnings"), as is the wedging.

The cycle's status is :func:`pyfetchmail.exitcodes.aggregate` of the polled
statuses.  Invariant: :class:`~pyfetchmail.service.signals.Terminated` is never
caught here; it must reach the daemon loop.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from pyfetchmail.auth.credentials import Credentials
from pyfetchmail.config.model import Query
from pyfetchmail.delivery import warnings as warning_mails
from pyfetchmail.delivery.warnings import WarningMail
from pyfetchmail.errors import FetchmailError
from pyfetchmail.exitcodes import ExitCode, aggregate, query_status_name
from pyfetchmail.net.iface import PollGate
from pyfetchmail.service.wiring import PollFunc

__all__ = [
    "MAX_TIMEOUTS",
    "CycleRunner",
    "PollFunc",
    "QueryState",
    "run_hook",
]

log = logging.getLogger(__name__)

#: fetchmail's MAX_TIMEOUTS: consecutive timeouts before a query is wedged.
MAX_TIMEOUTS = 20

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
    :param credentials: the credentials of each query, by index.
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
    credentials: tuple[Credentials, ...]
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
            for query, credentials, state in zip(
                self.queries, self.credentials, self.states, strict=True
            ):
                if not self._due(query, state):
                    continue
                if not self.gate.approve(query, woken=self._woken):
                    gated = True
                    continue
                statuses.append(self._one(query, credentials, state))
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

    def _one(self, query: Query, credentials: Credentials, state: QueryState) -> int:
        user = query.user
        if user.preconnect and run_hook(user.preconnect, "pre-connection") is not None:
            status = int(ExitCode.SYNTAX)
        else:
            status = self._poll(query, credentials)
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

    def _poll(self, query: Query, credentials: Credentials) -> int:
        try:
            return int(self.poll(query, credentials))
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
