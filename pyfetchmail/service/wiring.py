"""The one place that picks the concrete classes of a real run.

The engine takes its seams from a :class:`~pyfetchmail.engine.context.PollContext`;
the service modules (:mod:`.daemon`, :mod:`.cycle`, :mod:`.idle`) take
functions.  This module builds both from the loaded configuration: the UID
store, the credentials of each query, the poll contexts and the function
that sends warning mails.  Tests replace what it builds, never patch it.

Invariant: every context of one run shares the run's UID store (one
process-wide lock inside it) and the run's stop event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pyfetchmail.auth.credentials import Credentials, resolve_credentials
from pyfetchmail.config.model import Query
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.config.rcfile import LoadResult
from pyfetchmail.delivery.warnings import WarningMail, send_warning_mail
from pyfetchmail.engine.context import PollContext
from pyfetchmail.engine.poll import poll_query
from pyfetchmail.engine.stats import PollStats
from pyfetchmail.state.uidstore import UidStore

__all__ = [
    "ContextFactory",
    "PollFunc",
    "StatsHook",
    "engine_poll",
    "fetchmailhost",
    "load_store",
    "notifier",
    "poll_context_factory",
    "resolve_all_credentials",
]

#: Polls one query with its credentials; returns an ExitCode value.
PollFunc = Callable[[Query, Credentials], int]
#: Builds the poll context of one query (IDLE threads get one each).
ContextFactory = Callable[[Query, Credentials], PollContext]
#: Receives what each poll did (``PollContext.on_stats``).
StatsHook = Callable[[Query, PollStats], None]


def fetchmailhost(result: LoadResult) -> str:
    """Our host name for warning mails (``localhost`` when unknown)."""
    return str(getattr(result.identity, "fetchmailhost", "") or "localhost")


def load_store(result: LoadResult) -> UidStore:
    """The run's UID store: ``set idfile``/``-i``, else the identity's default."""
    path = result.config.run.idfile or getattr(result.identity, "idfile", None)
    return UidStore.load(path or None)


def resolve_all_credentials(
    queries: tuple[Query, ...], result: LoadResult, *, interactive: bool | None
) -> tuple[Credentials, ...]:
    """The credentials of every query, in order (may prompt on the terminal)."""
    return tuple(resolve_credentials(q, result.identity, interactive=interactive) for q in queries)


def poll_context_factory(
    result: LoadResult,
    options: CommandLineOptions,
    store: UidStore,
    *,
    daemon: bool,
    on_stats: StatsHook | None = None,
    stop: threading.Event | None = None,
) -> ContextFactory:
    """A function that builds the production :class:`PollContext` of one query."""
    shared_stop = stop if stop is not None else threading.Event()

    def make(query: Query, credentials: Credentials) -> PollContext:
        return PollContext(
            run=result.config.run,
            options=options,
            identity=result.identity,
            uidstore=store,
            credentials=credentials,
            daemon=daemon,
            on_stats=on_stats,
            stop=shared_stop,
        )

    return make


def engine_poll(make_context: ContextFactory) -> PollFunc:
    """The production poll function: :func:`pyfetchmail.engine.poll.poll_query`."""

    def poll(query: Query, credentials: Credentials) -> int:
        return int(poll_query(query, make_context(query, credentials)))

    return poll


def notifier(result: LoadResult) -> Callable[[Query, WarningMail], object]:
    """Sends a warning mail about *query* through its sink (fetchmail(1), "warnings")."""
    host = fetchmailhost(result)

    def notify(query: Query, mail: WarningMail) -> object:
        return send_warning_mail(query, result.config.run, host, mail)

    return notify
