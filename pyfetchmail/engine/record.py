"""The recorded state of the folder being processed, as the fetch engine sees it.

:class:`FolderRecord` reads :mod:`pyfetchmail.state.uidstore` to classify a
folder listing (through :mod:`pyfetchmail.engine.policy`) and writes the records
the executor in :mod:`pyfetchmail.engine.session` asks for.  Invariants (the
rules are those of :mod:`pyfetchmail.engine.poll`):

- Rule 2: :meth:`FolderRecord.record_processed` makes a UID durable before
  the caller sends any deletion or flag to the server.
- Rule 6: with ``-c`` (check) nothing is recorded, no baseline is written
  and nothing is saved.
- IMAP UIDs count only for the UIDVALIDITY they were recorded under: a
  missing or changed UIDVALIDITY means the recorded UIDs say nothing; that
  pass falls back to ``\\Seen`` and the folder is re-recorded under the new
  value (RFC 3501 §2.3.1.1).
"""

from __future__ import annotations

import functools
import logging

from pyfetchmail.engine import policy
from pyfetchmail.engine.policy import Selection
from pyfetchmail.engine.stats import Counters
from pyfetchmail.protocols.base import FolderListing, MessageRef
from pyfetchmail.state.uidstore import UidStore

__all__ = ["FolderRecord"]

log = logging.getLogger(__name__)


class FolderRecord:
    """The uidstore records of one account's folder being processed.

    :meth:`select` switches folders; :attr:`update` then changes the
    sidecar state of that folder (the keywords of
    :meth:`UidStore.update_folder`).
    """

    def __init__(
        self, store: UidStore, remote: str, host: str, *, imap: bool, check: bool, truename: str
    ) -> None:
        self.store, self.remote, self.host = store, remote, host
        self.imap, self.check, self.truename = imap, check, truename
        self.key: str | None = None  # the sidecar folder key (None: the POP3 account)
        self.uidvalidity: int | None = None  # of the folder being processed (IMAP)
        self.update = functools.partial(store.update_folder, remote, host, None)

    def select(self, folder: str | None, uidvalidity: int | None) -> None:
        """Make *folder* (``None``: the default one) the folder being processed."""
        self.key = (folder or "INBOX") if self.imap else None
        self.uidvalidity = uidvalidity if self.imap else None
        self.update = functools.partial(self.store.update_folder, self.remote, self.host, self.key)

    def decide(
        self, listing: FolderListing, flags: policy.Flags, *, uid_mode: bool, counters: Counters
    ) -> list[tuple[MessageRef, Selection]]:
        """Classify every message of *listing*; POP3 also sets ``counters.present``."""
        out: list[tuple[MessageRef, Selection]] = []
        if not self.imap:
            seen = self.store.seen(self.remote, self.host)
            pending = self.store.folder_state(self.remote, self.host).pending_delete
            uids = {r.uid for r in listing.messages}
            counters.present = None if None in uids else {u for u in uids if u is not None}
            for ref in listing.messages:
                is_pending = ref.uid is not None and ref.uid in pending
                new = policy.is_new_pop3(ref.uid, seen, fetchall=flags.fetchall, last_seen=ref.seen)
                out.append(
                    (ref, policy.classify(new=new, pending=is_pending, size=ref.size, flags=flags))
                )
            return out
        known, pending, baseline = self._imap_baseline(listing)
        for ref in listing.messages:
            is_pending = ref.uid is not None and ref.uid in pending
            new = policy.is_new_imap(
                ref.uid, ref.seen, known, fetchall=flags.fetchall,
                uid_mode=uid_mode, baseline=baseline,
            )  # fmt: skip
            out.append(
                (ref, policy.classify(new=new, pending=is_pending, size=ref.size, flags=flags))
            )
        if uid_mode and not baseline and not self.check and listing.uidvalidity is not None:
            # UID mode baseline: what \Seen called old now stays old by UID.
            old = {r.uid for r, s in out if s is Selection.OLD and r.uid is not None}
            self.update(add_delivered=old)
        return out

    def _imap_baseline(self, listing: FolderListing) -> tuple[set[str], set[str], bool]:
        """Known UIDs, pending deletions and whether a UID baseline exists.

        Rule (documented in :mod:`pyfetchmail.engine.poll`): no recorded UIDVALIDITY
        or a changed one means the recorded UIDs say nothing; that pass falls
        back to ``\\Seen`` and the folder is re-recorded under the new value.
        """
        state = self.store.folder_state(self.remote, self.host, self.key)
        uv = listing.uidvalidity
        if uv is None:
            return set(), set(), False
        if state.uidvalidity == uv:
            return state.delivered, state.pending_delete, True
        if state.uidvalidity is not None:
            log.warning(
                "UIDVALIDITY of folder %s for %s at %s changed (%s -> %s); "
                "using \\Seen flags for this pass",
                self.key, self.remote, self.truename, state.uidvalidity, uv,
            )  # fmt: skip
        if not self.check:
            self.update(uidvalidity=uv, reset=True)
        return set(), set(), False

    def record_processed(self, ref: MessageRef, *, pending: bool) -> None:
        """Rule 2: record the UID as delivered and make it durable before any server action."""
        if ref.uid is None or self.check:
            return  # nothing to record (no UIDL): a crash here may duplicate, as in fetchmail
        # One durable journal append (POP3: seen in .fetchids + pending in the
        # sidecar; IMAP: delivered + pending for the folder's UIDVALIDITY).
        self.store.record(
            self.remote, self.host, self.key, ref.uid,
            seen=not self.imap, delivered=self.imap, pending=pending,
            uidvalidity=self.uidvalidity,
        )  # fmt: skip

    def was_bounced(self, uid: str) -> bool:
        """True when a bounce was already sent for *uid* in this folder."""
        return self.store.was_bounced(self.remote, self.host, self.key, uid)

    def record_bounced(self, uid: str) -> None:
        """Remember (durably) that *uid* was bounced, so it is never bounced again."""
        if not self.check:
            self.store.record(
                self.remote, self.host, self.key, uid,
                bounced=True, uidvalidity=self.uidvalidity,
            )  # fmt: skip

    def save(self) -> None:
        """Fold the journal into the state files (never with ``-c``)."""
        if not self.check:
            self.store.save()
