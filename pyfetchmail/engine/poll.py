"""The fetch engine: poll one query (account), safely.

:func:`poll_query` connects, processes every folder and logs out, returning
the query's :class:`~pyfetchmail.exitcodes.ExitCode`;
:func:`process_session` does the work on an already-open session (the IMAP
IDLE loop calls it after each wake-up).  Decisions come from
:mod:`pyfetchmail.engine.policy`; state lives in :mod:`pyfetchmail.state.uidstore`; the
per-session executor is :mod:`pyfetchmail.engine.session`.

Mail-safety rules (each has a test in ``tests/unit/test_fetch_safety.py``):

Rule 1. No deletion mark before positive acknowledgement.  A message is
   deleted only when the sink returned ``Outcome.ACCEPTED`` (SMTP 250, LMTP
   250 for every recipient, MDA exit 0), or it was refused permanently with
   ``no softbounce``, or ``flush``/``limitflush`` say so (fetchmail(1), Disposal Options).
Rule 2. Record before acting.  After acknowledgement the UID is recorded as
   delivered (POP3: seen in ``.fetchids`` *and* pending deletion in the
   sidecar; IMAP: delivered + pending for the folder's UIDVALIDITY) and made
   durable (journal append + fdatasync, :meth:`UidStore.record`) *before*
   DELE / STORE ``\\Deleted`` / STORE ``\\Seen`` is sent: after every message,
   not once per poll.  Full atomic saves (tmp, fsync, rename, fsync dir)
   fold the journal in at the end of each folder and after QUIT.
Rule 3. A UID recorded as delivered is never delivered again.  If it is still
   on the server (a kill before QUIT/EXPUNGE, a lost connection), the next
   poll deletes it without fetching it (with ``keep``, IMAP: marks it ``\\Seen``
   if the kill came before the STORE; POP3 has nothing to mark).
   fetchmail's "deleted, but still present" limbo does not exist here.
Rule 4. Pending-deletion records are dropped only after the deletion is
   durable: POP3 after QUIT answered ``+OK`` (RFC 1939 §6: DELE is applied
   at QUIT), IMAP after EXPUNGE completed.
Rule 5. Hence a kill -9 at any instant loses nothing and duplicates at most
   the one message in flight (acknowledged by the sink, not yet recorded).
   A failing state write (:class:`~pyfetchmail.errors.LocalIOError`) stops
   the query before the deletion: a duplicate later, never a loss.
Rule 6. ``-c`` (check) never writes state and never fetches a body.

IMAP "new" rules: default mode (fetchmail compatible) — new iff not ``\\Seen``
and not recorded as delivered for the current UIDVALIDITY; UID mode (``uidl``
on an IMAP query) — new iff the UID is not recorded.  With no recorded
UIDVALIDITY, or a changed one (RFC 3501 §2.3.1.1: all UIDs are then
meaningless), the pass falls back to ``\\Seen`` instead of refetching the
whole folder, and the folder is re-recorded under the new UIDVALIDITY.

Bounces: a refused message is bounced at most once; bounced UIDs are kept in
the sidecar, so ``softbounce`` (which keeps the message) never re-bounces it.
Exit status: SUCCESS when at least one message was fetched (fetchmail counts
fetched, not acknowledged, messages), NOMAIL otherwise, MAXFETCH when
``fetchlimit`` stopped the poll, the error's code when the poll failed.
"""

from __future__ import annotations

import logging
import time

from pyfetchmail import __version__
from pyfetchmail.config.model import Query
from pyfetchmail.engine import report
from pyfetchmail.engine.context import DeliverySink, PollContext, close_quietly
from pyfetchmail.engine.session import SessionRun
from pyfetchmail.engine.stats import BounceRequest, OversizedMessage, PollStats
from pyfetchmail.errors import (
    ConnectTimeout,
    DeliveryError,
    FetchmailError,
    LocalIOError,
    ServerLockBusy,
    ServerTimeout,
)
from pyfetchmail.exitcodes import ExitCode
from pyfetchmail.protocols.base import MailSession, MailSource, SessionProtocol

__all__ = [
    "BounceRequest",
    "OversizedMessage",
    "PollContext",
    "PollStats",
    "commit_pop3",
    "poll_query",
    "process_session",
]

log = logging.getLogger(__name__)

#: fetchmail retries a LOCKBUSY between POP3 ``expunge`` sub-sessions 5 times, 3 s apart.
RELOCK_TRIES = 5
RELOCK_PAUSE = 3.0
#: ``Too many mails skipped`` threshold (fetchmail's report after 20 skipped messages).
TRANSIENT_REPORT = 20


def process_session(
    session: MailSession,
    query: Query,
    ctx: PollContext,
    *,
    truename: str | None = None,
    fetch_budget: int | None = None,
    split_after: int = 0,
    sink: DeliverySink | None = None,
    skip_uids: frozenset[str] = frozenset(),
) -> PollStats:
    """Process every folder of *query* on the open *session*; the caller closes it.

    *fetch_budget* is what remains of ``fetchlimit`` (``None``: no limit);
    *split_after* stops after that many fetched messages with
    ``split_pending`` set (POP3 ``expunge N``); *skip_uids* were already
    tried in an earlier sub-session of the same poll and are not fetched again.
    Without *sink* a delivery is opened on first use and closed before
    returning (IMAP closes the SMTP connection before it IDLEs, as fetchmail does).  POP3 UIDs in
    :attr:`PollStats.uncommitted` become durable only at QUIT: pass the
    result to :func:`commit_pop3` after ``session.close(commit=True)``.
    """
    if fetch_budget is None and query.user.fetchlimit > 0:
        fetch_budget = query.user.fetchlimit
    own_sink = sink is None
    active = sink or DeliverySink(query, ctx, truename or query.server.queryname)
    try:
        return SessionRun(
            session,
            query,
            ctx,
            truename=truename or query.server.queryname,
            sink=active,
            fetch_budget=fetch_budget,
            split_after=split_after,
            skip_uids=skip_uids,
        ).run()
    finally:
        if own_sink:
            active.close()


def commit_pop3(stats: PollStats, query: Query, ctx: PollContext) -> None:
    """Rule 4 for POP3: after QUIT ``+OK``, drop records of messages now gone."""
    if ctx.options.check:
        return
    store, remote, host = ctx.uidstore, query.user.remote, query.server.queryname
    gone = set(stats.uncommitted)
    store.forget(remote, host, gone)
    if stats.present:
        # fetchmail replaces the old list only when the server listed any UIDs:
        # an empty listing (a glitch, a locked maildrop) must not make every
        # kept message look new next time.
        still = set(stats.present) - gone
        store.retain_only(remote, host, still)  # fetchmail's new list replaces the old
        store.update_folder(remote, host, None, keep_only=still)
    else:
        store.update_folder(remote, host, None, drop=gone)
    store.save()


def _open(source: MailSource, ctx: PollContext, *, retry_lock: bool) -> MailSession:
    tries = RELOCK_TRIES if retry_lock else 1
    for attempt in range(1, tries + 1):
        try:
            return source.open()
        except ServerLockBusy:
            if attempt == tries:
                raise
            ctx.sleep(RELOCK_PAUSE)
    raise AssertionError("unreachable")  # pragma: no cover


def poll_query(query: Query, ctx: PollContext) -> int:
    """Poll *query* once: connect, fetch, deliver, delete, log out.  Returns an ExitCode."""
    user = query.user
    fetched = new = transient = 0
    limit_hit = timed_out = False
    split = 0
    oversized: list[OversizedMessage] = []
    tried: set[str] = set()  # fetched but left on the server, for the next sub-session
    proto = query.server.protocol.value.upper()
    log.debug("%s querying %s (protocol %s) at %s: poll started",
              __version__, query.server.pollname, proto, time.ctime())  # fmt: skip
    try:
        truename = ctx.resolve_truename(query)
        source = ctx.open_source(query)
        sink = DeliverySink(query, ctx, truename)
        try:
            first = True
            while True:
                session = _open(source, ctx, retry_lock=not first)
                first = False
                if session.protocol_name != SessionProtocol.IMAP and (not user.keep or user.flush):
                    split = user.expunge or 0
                budget = user.fetchlimit - fetched if user.fetchlimit > 0 else None
                try:
                    stats = process_session(
                        session, query, ctx, truename=truename,
                        fetch_budget=budget, split_after=split, sink=sink,
                        skip_uids=frozenset(tried),
                    )  # fmt: skip
                except (DeliveryError, LocalIOError):
                    # Our side failed, the connection is fine: QUIT commits only
                    # deletions already recorded (Rule 2), so commit them.
                    close_quietly(session, commit=True)
                    raise
                except BaseException:
                    close_quietly(session, commit=False)
                    raise
                session.close(commit=True)
                if session.protocol_name != SessionProtocol.IMAP:
                    commit_pop3(stats, query, ctx)
                fetched += stats.fetched
                new += stats.new
                transient += stats.transient
                oversized.extend(stats.oversized)
                if stats.fetchlimit_reached:
                    limit_hit = True
                    log.info(
                        "%s",
                        report.fetchlimit_line(
                            user.fetchlimit, stats.fetchlimit_left, truename, user.remote
                        ),
                    )
                tried |= stats.left
                if not stats.split_pending or stats.fetched == 0:
                    break
        finally:
            sink.close()
    except FetchmailError as exc:
        log.error("%s", exc)
        timed_out = isinstance(exc, (ServerTimeout, ConnectTimeout))
        return int(exc.exit_code)
    finally:
        log.debug("%s querying %s (protocol %s) at %s: poll completed",
                  __version__, query.server.pollname, proto, time.ctime())  # fmt: skip
        if ctx.on_stats is not None:
            ctx.on_stats(query, PollStats(fetched=fetched, new=new, transient=transient,
                                          oversized=tuple(oversized),
                                          fetchlimit_reached=limit_hit,
                                          timed_out=timed_out))  # fmt: skip
        if transient > TRANSIENT_REPORT:
            log.warning(
                "%s",
                report.too_many_transient_line(
                    transient, f"{user.remote} at {query.server.pollname}"
                ),
            )
    if ctx.options.check:
        return int(ExitCode.SUCCESS if new > 0 else ExitCode.NOMAIL)
    if limit_hit:
        return int(ExitCode.MAXFETCH)
    return int(ExitCode.SUCCESS if fetched > 0 else ExitCode.NOMAIL)
