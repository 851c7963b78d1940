"""Deferred-deletion bookkeeping for one session of :mod:`pyfetchmail.engine.session`.

Deletions may be confirmed late (POP3 pipelines DELE behind RETRs; see
:mod:`pyfetchmail.protocols.base`).  :class:`DeletionQueue` sends the
deletion marks, learns the server's replies and keeps the log in message
order.  Invariants (the safety rules are those of :mod:`pyfetchmail.engine.poll`):

- A deletion counts (``deleted``, POP3 ``uncommitted``, IMAP expunge
  bookkeeping) and its message is logged `` flushed`` only once the
  server's reply confirmed it.
- A refused deletion leaves the UID pending (recorded before the DELE,
  Rule 2): the message is logged `` not flushed`` and deleted on the next
  poll.
- Per-message lines wait in :class:`~pyfetchmail.engine.report.PendingLines`
  and are emitted in message order, each exactly once, even when the
  session fails (unconfirmed = not flushed).
- Every reply is collected by :meth:`DeletionQueue.end_of_folder`, hence
  before QUIT / EXPUNGE / the next folder.
- A session without ``deletion_replies`` confirms each deletion when
  ``delete()`` returns.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from pyfetchmail.engine import report
from pyfetchmail.engine.stats import Counters
from pyfetchmail.errors import DeliveryError, FetchmailError, LocalIOError
from pyfetchmail.protocols.base import DeletionReply, MailSession, MessageRef

__all__ = ["DeletionQueue"]

log = logging.getLogger(__name__)


class DeletionQueue:
    """Deletion marks, their confirmations and the ordered log of one session.

    *expunged* is called with the UIDs of every completed EXPUNGE (IMAP),
    so the caller drops their records (Rule 4).
    """

    def __init__(
        self,
        session: MailSession,
        counters: Counters,
        *,
        imap: bool,
        expunge_every: int,
        remote: str,
        truename: str,
        expunged: Callable[[set[str]], None],
    ) -> None:
        self.session, self.c = session, counters
        self.imap, self.expunge_every = imap, expunge_every
        self.remote, self.truename = remote, truename
        self._expunged = expunged
        self._unexpunged: list[str] = []
        self._lines = report.PendingLines()
        # Sessions written before deferred deletion replies confirm in delete().
        self._replies: Callable[..., list[DeletionReply]] | None = getattr(
            session, "deletion_replies", None
        )

    def add(self, emit: Callable[[bool], None]) -> None:
        """Queue the lines of a message that is not deleted (ready at once)."""
        self._lines.add(emit)

    def delete(self, ref: MessageRef, emit: Callable[[bool], None]) -> None:
        """Rule 3: the deletion mark, only after Rule 2.  *emit* logs the message
        once the server's reply is known (see the module docstring)."""
        self._lines.add(emit, key=ref)
        self.session.delete(ref)
        if self._replies is None:
            self._settled(DeletionReply(ref))  # delete() returned: confirmed
        else:
            self.collect()

    def collect(self, *, wait: bool = False) -> None:
        """Settle the deletion replies read so far (all outstanding with *wait*)."""
        if self._replies is not None:
            for reply in self._replies(wait=wait):
                self._settled(reply)

    def end_of_folder(self) -> None:
        """Every DELE reply, before QUIT / EXPUNGE / next folder; then IMAP's EXPUNGE."""
        self.collect(wait=True)
        if self.imap and self._unexpunged:
            self._expunge()

    def give_up(self, exc: BaseException) -> None:
        """The session failed: log what is queued (unconfirmed = not flushed)."""
        if len(self._lines) and isinstance(exc, DeliveryError | LocalIOError):
            # The connection is fine and the caller commits: learn the outcomes.
            with contextlib.suppress(FetchmailError):
                self.collect(wait=True)
        self._lines.abandon()

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

    def _expunge(self) -> None:
        self.session.expunge()
        gone, self._unexpunged = set(self._unexpunged), []
        # Rule 4: expunged UIDs are never reused (RFC 3501 §2.3.1.1).  Saved at the
        # end of the folder: stale records of vanished UIDs are harmless and pruned.
        self._expunged(gone)
