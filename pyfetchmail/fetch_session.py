"""The executor behind :func:`pyfetchmail.fetch.process_session`: one open session.

For every folder: select → decide (:mod:`pyfetchmail.policy`) → act on
messages that need no fetch (pending deletions, ``flush``, oversized) →
retrieve → prepare → deliver → decide → record → act.  The safety
invariants it keeps are stated in :mod:`pyfetchmail.fetch`; the places that
implement them are marked "Rule N".

Deletions may be confirmed late (POP3 pipelines DELE behind RETRs; see
:mod:`pyfetchmail.protocols.base`).  A deletion counts (``deleted``, POP3
``uncommitted``, IMAP expunge bookkeeping) and its message is logged
`` flushed`` only once the server's reply confirmed it; the per-message
lines wait in :class:`~pyfetchmail.fetch_report.PendingLines` so the log
keeps message order.  A refused deletion leaves the UID pending (recorded
before the DELE, Rule 2): the message is logged `` not flushed`` and
deleted on the next poll.  Every reply is collected before a folder ends,
hence before QUIT / EXPUNGE.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from pyfetchmail import fetch_report as report
from pyfetchmail import policy, progress
from pyfetchmail.delivery.base import DeliveryResult, Outcome
from pyfetchmail.errors import DeliveryError, FetchmailError, LocalIOError, ServerError
from pyfetchmail.fetch_types import (
    BounceRequest,
    Counters,
    DeliverySink,
    MessageOrigin,
    OversizedMessage,
    PollStats,
    PreparedLike,
)
from pyfetchmail.message import SpooledMessage
from pyfetchmail.policy import Action, Fate, Selection
from pyfetchmail.protocols.base import DeletionReply, FolderListing, MailSession, MessageRef

if TYPE_CHECKING:
    from pyfetchmail.config.model import Query
    from pyfetchmail.fetch import PollContext

__all__ = ["SessionRun"]

log = logging.getLogger(__name__)

#: IMAP re-poll passes per folder after a pass that delivered something (§5.3 step 13).
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
        self.imap = session.protocol_name.upper() == "IMAP"
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
        self.store = ctx.uidstore
        self._unexpunged: list[str] = []
        self._state_key: str | None = None
        self._uidvalidity: int | None = None  # of the folder being processed (IMAP)
        self._previous_digest: bytes | None = None  # multidrop duplicate check
        self._lines = report.PendingLines()
        # Sessions written before deferred deletion replies confirm in delete().
        self._deletion_replies: Callable[..., list[DeletionReply]] | None = getattr(
            session, "deletion_replies", None
        )
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
            self._give_up(exc)
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
        c = self.c
        return PollStats(
            messages=c.messages,
            new=c.new,
            fetched=c.fetched,
            delivered=c.delivered,
            refused=c.refused,
            transient=c.transient,
            deleted=c.deleted,
            oversized=tuple(c.oversized),
            fetchlimit_reached=c.fetchlimit_reached,
            fetchlimit_left=c.fetchlimit_left,
            split_pending=c.split_pending,
            uncommitted=frozenset(c.uncommitted),
            left=frozenset(c.left),
            present=frozenset(c.present) if c.present is not None else None,
        )

    def _stopped(self) -> bool:
        return self.c.fetchlimit_reached or self.c.split_pending

    # -- one folder -----------------------------------------------------------

    def _folder_pass(self, folder: str | None, *, repoll: bool = False) -> None:
        # fetchmail EXPUNGEs right after SELECT (§5.3 step 8); the IMAP source
        # instead lists only UNDELETED messages, so leftovers of a run killed
        # before its EXPUNGE are never fetched and their records are pruned.
        listing = self.session.select(folder)
        self._state_key = (folder or "INBOX") if self.imap else None
        self._uidvalidity = listing.uidvalidity if self.imap else None
        plan = self._decide(listing)
        self._count = listing.count
        self.c.messages += listing.count
        n_new = sum(1 for _, sel in plan if sel in (Selection.NEW, Selection.OVERSIZED))
        self.c.new += n_new
        label = report.account_label(
            self.remote, self.truename, folder if self.query.user.mailboxes else None
        )
        if repoll and n_new == 0:
            pass  # §5.3 step 13 re-check found nothing: stay quiet
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

    def _decide(self, listing: FolderListing) -> list[tuple[MessageRef, Selection]]:
        out: list[tuple[MessageRef, Selection]] = []
        if not self.imap:
            seen = self.store.seen(self.remote, self.host)
            pending = self.store.folder_state(self.remote, self.host).pending_delete
            uids = {r.uid for r in listing.messages}
            self.c.present = None if None in uids else {u for u in uids if u is not None}
            for ref in listing.messages:
                is_pending = ref.uid is not None and ref.uid in pending
                new = policy.is_new_pop3(
                    ref.uid, seen, fetchall=self.flags.fetchall, last_seen=ref.seen
                )
                out.append(
                    (
                        ref,
                        policy.classify(
                            new=new, pending=is_pending, size=ref.size, flags=self.flags
                        ),
                    )
                )
            return out
        known, pending, baseline = self._imap_baseline(listing)
        uid_mode = self.query.server.uidl
        for ref in listing.messages:
            is_pending = ref.uid is not None and ref.uid in pending
            new = policy.is_new_imap(
                ref.uid, ref.seen, known, fetchall=self.flags.fetchall,
                uid_mode=uid_mode, baseline=baseline,
            )  # fmt: skip
            out.append(
                (ref, policy.classify(new=new, pending=is_pending, size=ref.size, flags=self.flags))
            )
        if uid_mode and not baseline and not self.check and listing.uidvalidity is not None:
            # UID mode baseline: what \Seen called old now stays old by UID.
            old = {r.uid for r, s in out if s is Selection.OLD and r.uid is not None}
            self._update(add_delivered=old)
        return out

    def _imap_baseline(self, listing: FolderListing) -> tuple[set[str], set[str], bool]:
        """Known UIDs, pending deletions and whether a UID baseline exists.

        Rule (documented in :mod:`pyfetchmail.fetch`): no recorded UIDVALIDITY
        or a changed one means the recorded UIDs say nothing; that pass falls
        back to ``\\Seen`` and the folder is re-recorded under the new value.
        """
        state = self.store.folder_state(self.remote, self.host, self._state_key)
        uv = listing.uidvalidity
        if uv is None:
            return set(), set(), False
        if state.uidvalidity == uv:
            return state.delivered, state.pending_delete, True
        if state.uidvalidity is not None:
            log.warning(
                "UIDVALIDITY of folder %s for %s at %s changed (%s -> %s); "
                "using \\Seen flags for this pass",
                self._state_key, self.remote, self.truename, state.uidvalidity, uv,
            )  # fmt: skip
        if not self.check:
            self._update(uidvalidity=uv, reset=True)
        return set(), set(), False

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
            self._delete(ref, emit)
            return
        if action is Action.MARK_SEEN:
            self._mark_seen(ref, record=False)  # recorded when it was delivered
            self._update(drop_pending={ref.uid} if ref.uid else set())
            self._save()
        self._lines.add(emit)

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
        while todo:
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
        self._collect()  # DELE replies read while this message was retrieved
        self.c.fetched += 1
        result: DeliveryResult | None = None
        prepared = self.ctx.prepare(
            msg, self.query, self.ctx, self._origin(listing), self._previous_digest
        )
        self._previous_digest = getattr(prepared, "header_digest", None) or None
        retained = bool(getattr(prepared, "retained", False))
        if ref.number == 1 and (retained or b"X-IMAP:" in msg.header_bytes()):
            fate = Fate.RETAINED  # §5.2 step 12: UW-IMAP's internal pseudo message
            self.c.fetched -= 1
            if prepared.message is not msg:
                prepared.message.close()
        else:
            for warning in prepared.warnings:
                log.warning("%s", warning)
            try:
                if prepared.refused is not None:
                    log.warning(
                        "message %s@%s:%d refused: %s",
                        self.remote,
                        self.truename,
                        ref.number,
                        prepared.refused,
                    )
                    fate = Fate.REFUSED
                else:
                    result = self.sink.get().deliver(prepared.message, prepared.envelope)
                    fate = {
                        Outcome.ACCEPTED: Fate.DELIVERED,
                        Outcome.TEMPFAIL: Fate.TRANSIENT,
                        Outcome.PERMFAIL: Fate.REFUSED,
                    }[result.outcome]
                    self._maybe_bounce(ref, prepared, result)
            finally:
                if prepared.message is not msg:
                    prepared.message.close()
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
            self._record_processed(ref, pending=True)  # Rule 2, then Rule 3
            self._delete(ref, emit)
            return
        if action is Action.MARK_SEEN:
            self._mark_seen(ref, record=True)
        self._lines.add(emit)

    def _maybe_bounce(
        self, ref: MessageRef, prepared: PreparedLike, result: DeliveryResult
    ) -> None:
        if result.outcome is Outcome.PERMFAIL:
            code = result.code
        else:
            bad = [r for r in result.rejected_recipients if r.code >= 500]
            if result.outcome is not Outcome.ACCEPTED or not bad:
                return
            code = bad[0].code
        already = ref.uid is not None and self.store.was_bounced(
            self.remote, self.host, self._state_key, ref.uid
        )
        reason = policy.bounce_reason(
            code, spam=result.spam, spambounce=self.ctx.run.spambounce, already_bounced=already
        )
        if reason is None:
            return
        self.ctx.bounce(
            BounceRequest(
                self.query,
                prepared.message,
                prepared.envelope,
                result,
                reason,
                self.ctx.fetchmailhost,
            ),
            self.ctx,
        )
        if ref.uid is not None and not self.check:
            self.store.record(
                self.remote, self.host, self._state_key, ref.uid,
                bounced=True, uidvalidity=self._uidvalidity,
            )  # fmt: skip

    # -- recording and server actions ------------------------------------------

    def _record_processed(self, ref: MessageRef, *, pending: bool) -> None:
        """Rule 2: record the UID as delivered and make it durable before any server action."""
        if ref.uid is None or self.check:
            return  # nothing to record (no UIDL): a crash here may duplicate, as in fetchmail
        # One durable journal append (POP3: seen in .fetchids + pending in the
        # sidecar; IMAP: delivered + pending for the folder's UIDVALIDITY).
        self.store.record(
            self.remote, self.host, self._state_key, ref.uid,
            seen=not self.imap, delivered=self.imap, pending=pending,
            uidvalidity=self._uidvalidity,
        )  # fmt: skip

    def _mark_seen(self, ref: MessageRef, *, record: bool) -> None:
        """§6.8 step 5 (``keep``).  IMAP records the UID as pending until the
        server confirmed ``\\Seen``: a kill in between is repaired next poll
        (PENDING + keep = mark seen), while a message a user later marks unread
        in another client is left alone."""
        if record:
            self._record_processed(ref, pending=self.imap)
        self.session.mark_seen(ref)
        if self.imap and ref.uid is not None:
            self._update(drop_pending={ref.uid})  # saved at the end of the folder

    def _delete(self, ref: MessageRef, emit: Callable[[bool], None]) -> None:
        """Rule 3: the deletion mark, only after Rule 2.  *emit* logs the message
        once the server's reply is known (see the module docstring)."""
        self._lines.add(emit, key=ref)
        self.session.delete(ref)
        if self._deletion_replies is None:
            self._settled(DeletionReply(ref))  # delete() returned: confirmed
        else:
            self._collect()

    def _collect(self, *, wait: bool = False) -> None:
        """Settle the deletion replies read so far (all outstanding with *wait*)."""
        if self._deletion_replies is not None:
            for reply in self._deletion_replies(wait=wait):
                self._settled(reply)

    def _settled(self, reply: DeletionReply) -> None:
        """Rule 4 bookkeeping for a confirmed deletion; a refused one stays pending."""
        ref = reply.ref
        if reply.error is not None:
            log.warning(
                "message %s@%s:%d not deleted: %s; it stays pending for the next poll",
                self.remote, self.truename, ref.number, reply.error,
            )  # fmt: skip
        else:
            self.c.deleted += 1
            if ref.uid is not None and self.imap:
                self._unexpunged.append(ref.uid)
            elif ref.uid is not None:
                self.c.uncommitted.add(ref.uid)
        self._lines.resolve(ref, reply.error is None)
        if self.imap and self.expunge_every and len(self._unexpunged) >= self.expunge_every:
            self._expunge()

    def _give_up(self, exc: BaseException) -> None:
        """The session failed: log what is queued (unconfirmed = not flushed)."""
        if len(self._lines) and isinstance(exc, DeliveryError | LocalIOError):
            # The connection is fine and the caller commits: learn the outcomes.
            with contextlib.suppress(FetchmailError):
                self._collect(wait=True)
        self._lines.abandon()

    def _expunge(self) -> None:
        self.session.expunge()
        gone, self._unexpunged = set(self._unexpunged), []
        # Rule 4: expunged UIDs are never reused (RFC 3501 §2.3.1.1).  Saved at the
        # end of the folder: stale records of vanished UIDs are harmless and pruned.
        self._update(drop=gone)

    def _end_of_folder(self, listing: FolderListing) -> None:
        self._collect(wait=True)  # every DELE reply, before QUIT / EXPUNGE / next folder
        if not self.imap:
            return
        if self._unexpunged:
            self._expunge()
        present = {r.uid for r in listing.messages if r.uid is not None}
        if listing.uidvalidity is not None and present:  # never prune on an empty listing
            self._update(keep_only=present)
            self._save()

    def _update(
        self,
        *,
        uidvalidity: int | None = None,
        reset: bool = False,
        add_delivered: set[str] | frozenset[str] = frozenset(),
        add_pending: set[str] | frozenset[str] = frozenset(),
        add_bounced: set[str] | frozenset[str] = frozenset(),
        drop: set[str] | frozenset[str] = frozenset(),
        drop_pending: set[str] | frozenset[str] = frozenset(),
        keep_only: set[str] | None = None,
    ) -> None:
        self.store.update_folder(
            self.remote, self.host, self._state_key,
            uidvalidity=uidvalidity, reset=reset, add_delivered=add_delivered,
            add_pending=add_pending, add_bounced=add_bounced, drop=drop,
            drop_pending=drop_pending, keep_only=keep_only,
        )  # fmt: skip

    def _save(self) -> None:
        if not self.check:
            self.store.save()

    def _origin(self, listing: FolderListing) -> MessageOrigin:
        return MessageOrigin(
            server_truename=self.truename,
            # §5.1: with ``no dns`` fetchmail knows no server address (Received: omits it).
            server_address=self.session.peer_address if self.query.server.dns else None,
            protocol_name=self.session.protocol_name,
            fetchmailhost=self.ctx.fetchmailhost,
            pollname=self.query.server.pollname,
            remote=self.remote,
            folder=listing.folder if self.imap else None,
            folder_explicit=bool(self.query.user.mailboxes),
            invoking_user=getattr(self.ctx.identity, "user", None),
        )
