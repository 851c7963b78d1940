"""The executor behind :func:`pyfetchmail.engine.poll.process_session`: one open session.

For every folder: select → decide (:mod:`pyfetchmail.engine.policy`) → act on
messages that need no fetch (pending deletions, ``flush``, oversized) →
retrieve → prepare → deliver → decide → record → act.  The safety
invariants it keeps are stated in :mod:`pyfetchmail.engine.poll`; the places that
implement them are marked "Rule N".

Its parts: what the recorded state says about a listing and every state
write is :mod:`pyfetchmail.engine.record`; prepare → deliver → bounce of one
message is :mod:`pyfetchmail.engine.deliver`; deletion marks, their
(possibly late) confirmations and the message-ordered log are
:mod:`pyfetchmail.engine.deletions`.  Invariants kept here: a message's
server action follows :func:`pyfetchmail.engine.policy.disposition` of its fate;
every message's log lines go through the deletion queue, which is settled
at the end of each folder (before QUIT / EXPUNGE) or given up when the
session fails.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pyfetchmail.config.model import Query
from pyfetchmail.engine import policy, progress, report
from pyfetchmail.engine.context import DeliverySink, PollContext
from pyfetchmail.engine.deletions import DeletionQueue
from pyfetchmail.engine.deliver import MessageDelivery
from pyfetchmail.engine.policy import Action, Fate, Selection
from pyfetchmail.engine.record import FolderRecord
from pyfetchmail.engine.stats import Counters, OversizedMessage, PollStats
from pyfetchmail.errors import ServerError
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.mail.trace import TraceInfo
from pyfetchmail.protocols.base import FolderListing, MailSession, MessageRef, SessionProtocol

__all__ = ["SessionRun"]

log = logging.getLogger(__name__)

#: IMAP re-poll passes per folder after a pass that delivered something (fetchmail
#: re-checks a folder after a pass that fetched mail).
MAX_IMAP_PASSES = 5
#: Consecutive per-message fetch errors tolerated before the session counts as broken.
MAX_FAILURES_IN_A_ROW = 3


class SessionRun:
    """Process every folder of *query* on an open *session*."""

    def __init__(
        self,
        session: MailSession,
        query: Query,
        ctx: PollContext,
        *,
        truename: str,
        sink: DeliverySink,
        fetch_budget: int | None,
        split_after: int,
        skip_uids: frozenset[str] = frozenset(),
    ) -> None:
        self.session, self.query, self.ctx = session, query, ctx
        self.truename, self.sink = truename, sink
        self.fetch_limit = fetch_budget  # None = no fetchlimit; spans folders
        self.split_after = split_after  # 0 = no POP3 session splitting
        self.skip_uids = skip_uids  # tried earlier in this poll (POP3 sub-sessions)
        self.c = Counters()
        user = query.user
        self.remote, self.host = user.remote, query.server.queryname
        self.imap = session.protocol_name == SessionProtocol.IMAP
        self.check = ctx.options.check
        self.flags = policy.Flags(
            keep=user.keep,
            flush=user.flush,
            limitflush=user.limitflush,
            softbounce=ctx.run.softbounce,
            fetchall=user.fetchall,
            limit=user.limit,
        )
        default_expunge = 1 if self.imap else 0
        self.expunge_every = user.expunge if user.expunge is not None else default_expunge
        self.record = FolderRecord(
            ctx.uidstore, self.remote, self.host,
            imap=self.imap, check=self.check, truename=truename,
        )  # fmt: skip
        self.deletions = DeletionQueue(
            session, self.c, imap=self.imap, expunge_every=self.expunge_every,
            remote=self.remote, truename=truename,
            expunged=lambda gone: self.record.update(drop=gone),
        )  # fmt: skip
        self.delivery = MessageDelivery(query, ctx, sink, self.record)
        self._count = 0  # messages in the folder being processed (for the meter)
        self._progress = progress.attach(
            session, verbose=ctx.options.verbose >= 1, silent=ctx.options.silent,
            showdots=ctx.run.showdots, describe=lambda ref, size: report.reading_line(
                self.remote, self.truename, ref.number, self._count, size, ""),
        )  # fmt: skip

    # -- driver ---------------------------------------------------------------

    def run(self) -> PollStats:
        try:
            self._folders()
        except BaseException as exc:
            self.deletions.give_up(exc)
            raise
        finally:
            progress.detach(self.session, self._progress)
        return self._stats()

    def _folders(self) -> None:
        folders: tuple[str | None, ...] = (None,)
        if self.imap and self.query.user.mailboxes:
            folders = self.query.user.mailboxes
        for folder in folders:
            passes = 0
            while True:
                passes += 1
                delivered_before = self.c.delivered
                self._folder_pass(folder, repoll=passes > 1)
                again = (
                    self.imap
                    and not self.check
                    and not self.flags.fetchall
                    and self.c.delivered > delivered_before
                    and passes < MAX_IMAP_PASSES
                )
                if self._stopped() or not again:
                    break
            if self._stopped():
                break

    def _stats(self) -> PollStats:
        return self.c.freeze()

    def _stopped(self) -> bool:
        return self.c.fetchlimit_reached or self.c.split_pending or self.ctx.stop.is_set()

    # -- one folder -----------------------------------------------------------

    def _folder_pass(self, folder: str | None, *, repoll: bool = False) -> None:
        # The IMAP source EXPUNGEs right after SELECT unless ``keep``, as fetchmail
        # does, and lists only UNDELETED messages either way, so
        # leftovers of a run killed before its EXPUNGE are never fetched and
        # their records are pruned.
        listing = self.session.select(folder)
        self.record.select(folder, listing.uidvalidity)
        plan = self.record.decide(
            listing, self.flags, uid_mode=self.query.server.uidl, counters=self.c
        )
        self._count = listing.count
        self.c.messages += listing.count
        n_new = sum(1 for _, sel in plan if sel in (Selection.NEW, Selection.OVERSIZED))
        self.c.new += n_new
        label = report.account_label(
            self.remote, self.truename, folder if self.query.user.mailboxes else None
        )
        if repoll and n_new == 0:
            pass  # the re-check pass found nothing: stay quiet
        elif listing.count == 0:
            if not self.ctx.daemon or log.isEnabledFor(logging.DEBUG):
                log.info("%s", report.no_mail_line(label))
        else:
            log.info(
                "%s",
                report.count_line(
                    listing.count, listing.count - n_new, label, listing.total_octets
                ),
            )
        if self.check:
            return
        for ref, sel in plan:
            if sel is not Selection.NEW:
                self._act_without_fetch(ref, sel, listing)
        new_refs = [r for r, sel in plan if sel is Selection.NEW and r.uid not in self.skip_uids]
        self._fetch_new(new_refs, listing)
        self._end_of_folder(listing)

    # -- messages that need no fetch ------------------------------------------

    def _act_without_fetch(self, ref: MessageRef, sel: Selection, listing: FolderListing) -> None:
        fate = {Selection.OLD: Fate.OLD, Selection.OVERSIZED: Fate.OVERSIZED}.get(sel, Fate.PENDING)
        action = policy.disposition(fate, self.flags)
        if sel is Selection.PENDING:
            log.info(
                "id=%s (num=%d) was delivered earlier but is still on the server; %s",
                ref.uid, ref.number, "deleting it" if action is Action.DELETE else "keeping it",
            )  # fmt: skip

        def emit(flushed: bool) -> None:
            suffix = " flushed" if flushed else " not flushed"
            if sel is Selection.OVERSIZED:
                size = ref.size or 0
                self.c.oversized.append(
                    OversizedMessage(listing.folder, ref.number, ref.uid, size, flushed)
                )
            if sel is Selection.OVERSIZED or (sel is Selection.OLD and self.flags.flush):
                log.info(
                    "%s",
                    report.skipping_line(
                        self.remote, self.truename, ref.number, ref.size,
                        oversized=sel is Selection.OVERSIZED, suffix=suffix,
                    ),
                )  # fmt: skip

        if action is Action.DELETE:
            self.deletions.delete(ref, emit)
            return
        if action is Action.MARK_SEEN:
            self._mark_seen(ref, record=False)  # recorded when it was delivered
            self.record.update(drop_pending={ref.uid} if ref.uid else set())
            self.record.save()
        self.deletions.add(emit)

    # -- fetching -------------------------------------------------------------

    def _fetch_new(self, refs: list[MessageRef], listing: FolderListing) -> None:
        todo = refs
        if self.fetch_limit is not None:
            budget = max(0, self.fetch_limit - self.c.fetched)
            if len(todo) > budget:
                self.c.fetchlimit_reached = True
                self.c.fetchlimit_left = len(todo) - budget
                todo = todo[:budget]
        if self.split_after and len(todo) > self.split_after:
            self.c.split_pending = True
            self.c.fetchlimit_reached = False
            todo = todo[: self.split_after]
        failures_in_a_row = 0
        while todo and not self.ctx.stop.is_set():
            done = 0
            it: Iterator[tuple[MessageRef, SpooledMessage]] = iter(self.session.retrieve(todo))
            try:
                while done < len(todo):
                    try:
                        ref, msg = next(it)
                    except StopIteration:
                        break
                    except ServerError as exc:
                        # Contract: a per-message -ERR / NO arrives after the messages
                        # before it; that message is transient, the rest is retried.
                        failures_in_a_row += 1
                        if failures_in_a_row > MAX_FAILURES_IN_A_ROW:
                            raise  # not a message problem: the session is broken
                        self.c.transient += 1
                        log.warning(
                            "message %s@%s:%d: %s; skipped",
                            self.remote, self.truename, todo[done].number, exc,
                        )  # fmt: skip
                        failed_uid = todo[done].uid
                        if failed_uid is not None:
                            self.c.left.add(failed_uid)
                        done += 1
                        break
                    failures_in_a_row = 0
                    done += 1
                    if self._progress is not None:
                        self._progress.complete(ref)
                    with msg:
                        self._handle(ref, msg, listing)
                    if self.ctx.stop.is_set():
                        break  # asked to stop: the message in flight is done and recorded
                else:
                    done = len(todo)
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
            if done == 0:
                break
            todo = todo[done:]

    def _handle(self, ref: MessageRef, msg: SpooledMessage, listing: FolderListing) -> None:
        self.deletions.collect()  # DELE replies read while this message was retrieved
        self.c.fetched += 1
        fate, result = self.delivery.deliver(ref, msg, self._origin(listing))
        if fate is Fate.RETAINED:
            self.c.fetched -= 1  # not a message (UW-IMAP's folder-internal pseudo message)
        if fate is Fate.DELIVERED:
            self.c.delivered += 1
        elif fate is Fate.REFUSED:
            self.c.refused += 1
        elif fate is Fate.TRANSIENT:
            self.c.transient += 1
        action = policy.disposition(fate, self.flags)
        size, count = msg.size, listing.count
        where = result.where if result and fate is Fate.DELIVERED else ""

        def emit(flushed: bool) -> None:
            suffix = " flushed" if flushed else " not flushed"
            if fate is Fate.RETAINED:
                suffix = " retained"
            log.info(
                "%s",
                report.reading_line(
                    self.remote, self.truename, ref.number, count, ref.size or size, suffix
                ),
            )
            log.debug(
                "%s",
                report.outcome_line(
                    remote=self.remote, host=self.host, folder=listing.folder, uid=ref.uid,
                    size=size, action=f"{fate.value}, {action.value}", where=where,
                ),
            )  # fmt: skip

        if action is not Action.DELETE and ref.uid is not None:
            self.c.left.add(ref.uid)
        if action is Action.DELETE:
            self.record.record_processed(ref, pending=True)  # Rule 2, then Rule 3
            self.deletions.delete(ref, emit)
            return
        if action is Action.MARK_SEEN:
            self._mark_seen(ref, record=True)
        self.deletions.add(emit)

    # -- recording and server actions ------------------------------------------

    def _mark_seen(self, ref: MessageRef, *, record: bool) -> None:
        """``keep`` (fetchmail(1), Disposal Options).  IMAP records the UID as pending until the
        server confirmed ``\\Seen``: a kill in between is repaired next poll
        (PENDING + keep = mark seen), while a message a user later marks unread
        in another client is left alone."""
        if record:
            self.record.record_processed(ref, pending=self.imap)
        self.session.mark_seen(ref)
        if self.imap and ref.uid is not None:
            self.record.update(drop_pending={ref.uid})  # saved at the end of the folder

    def _end_of_folder(self, listing: FolderListing) -> None:
        self.deletions.end_of_folder()  # every DELE reply, then IMAP's EXPUNGE
        if not self.imap:
            return
        present = {r.uid for r in listing.messages if r.uid is not None}
        if listing.uidvalidity is not None and present:  # never prune on an empty listing
            self.record.update(keep_only=present)
            self.record.save()

    def _origin(self, listing: FolderListing) -> TraceInfo:
        return TraceInfo(
            server_truename=self.truename,
            # fetchmail(1) ``--nodns``: fetchmail knows no server address, and
            # Received: omits it.
            server_address=self.session.peer_address if self.query.server.dns else None,
            protocol_name=self.session.protocol_name,
            fetchmailhost=self.ctx.fetchmailhost,
            pollname=self.query.server.pollname,
            remote=self.remote,
            folder=listing.folder if self.imap else None,
            folder_explicit=bool(self.query.user.mailboxes),
            invoking_user=self.ctx.invoking_user,
        )
