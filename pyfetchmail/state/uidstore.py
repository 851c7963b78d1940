"""Persistent UID state: fetchmail's ``.fetchids`` plus a pyfetchmail sidecar.

Three files live side by side: the idfile and the sidecar, both written
atomically by :meth:`UidStore.save`, and a journal of per-message records.

1. The **idfile** (``~/.fetchids`` or ``--idfile``), byte-compatible with
   fetchmail 6.4 so users can switch between the two programs both ways.
   One record per line::

       <remote user>@<queryname> <UID>\\n

   Parsing follows fetchmail's ``uid.c`` rules exactly: leading blanks are
   skipped; the user@host token ends at the first space *after the first*
   ``@``; the host is the text after the *last* ``@`` of that token (the user
   part may itself contain ``@``); the UID is the next whitespace-delimited
   token.  Lines without ``@`` or without a UID are dropped, as fetchmail
   drops them.  Accounts are matched case-insensitively on user and host.
   Lines of accounts this run never touches are written back verbatim
   (fetchmail's "scratch list"), so polling a subset of servers loses no
   state.  The UIDs recorded are the POP3 messages that are *seen*
   (delivered and kept, or delivered and deleted but not yet expunged).

2. The **sidecar** ``<idfile>.pyfetchmail``: JSON holding what fetchmail's
   format cannot say::

       {"format": "pyfetchmail-state", "version": 1,
        "folders": {"joe@pop.example": {"uidvalidity": null,
                                        "delivered": [], "pending_delete": ["uid-7"],
                                        "bounced": []},
                    "joe@imap.example/INBOX": {"uidvalidity": 1700000000,
                                               "delivered": ["41", "42"],
                                               "pending_delete": ["42"],
                                               "bounced": []}}}

   Keys are ``user@queryname`` (POP3) or ``user@queryname/folder`` (IMAP),
   user and host lower-cased.  ``delivered`` are IMAP UIDs already handled
   for this ``uidvalidity`` (RFC 3501 §2.3.1.1: a UID is never reused while
   UIDVALIDITY is unchanged); ``pending_delete`` are UIDs delivered whose
   deletion the server has not yet made durable (POP3: before QUIT ``+OK``;
   IMAP: before EXPUNGE); ``bounced`` are UIDs a bounce was already sent for.

3. The **journal** ``<idfile>.pyfetchmail.journal``: one JSON object per
   line, appended and ``fdatasync``-ed by :meth:`UidStore.record` for every
   message (one disk flush instead of rewriting two files)::

       {"r": "joe", "h": "pop.example", "f": null, "u": "uid-7",
        "s": true, "d": false, "p": true, "b": false, "v": null}

   (remote, queryname, folder, UID; flags: seen in the idfile, delivered,
   pending deletion, bounced; UIDVALIDITY).  Loading replays it on top of
   the two files; a last line without its newline (torn by a crash) is
   ignored.  :meth:`UidStore.save` folds it into the files and removes it.
   fetchmail ignores this file: after a crash, run pyfetchmail once before
   switching back, or fetchmail may fetch the last messages again.

Invariants:
- :meth:`UidStore.save` never leaves a half-written file: it writes
  ``<file>_`` (mode 0600, created exclusively after unlinking any old temp
  file, so a planted symlink is not followed), flushes, fsyncs, renames over
  the target and fsyncs the directory.  On any failure the old file stays
  and :class:`~pyfetchmail.errors.LocalIOError` is raised.
- The sidecar is written before the idfile: a crash between the two leaves
  a UID recorded as pending deletion, which the engine treats as delivered.
- A file with nothing to hold is removed, as fetchmail removes an empty idfile.
- All methods are thread-safe (IDLE threads share one store).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field

from pyfetchmail.errors import LocalIOError
from pyfetchmail.state.statefile import FileSystem, read_text, write_atomic

__all__ = [
    "JOURNAL_SUFFIX",
    "SIDECAR_SUFFIX",
    "FileSystem",
    "FolderState",
    "UidStore",
    "sidecar_key",
]

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".pyfetchmail"
JOURNAL_SUFFIX = ".pyfetchmail.journal"
_FORMAT = "pyfetchmail-state"
_VERSION = 1


def sidecar_key(remote: str, host: str, folder: str | None = None) -> str:
    """Return the sidecar key ``user@host[/folder]`` (user and host lower-cased)."""
    key = f"{remote.lower()}@{host.lower()}"
    return f"{key}/{folder}" if folder is not None else key


@dataclass(slots=True)
class FolderState:
    """Sidecar state of one account (POP3) or one folder (IMAP).  Mutable, internal."""

    uidvalidity: int | None = None
    delivered: set[str] = field(default_factory=set)
    pending_delete: set[str] = field(default_factory=set)
    bounced: set[str] = field(default_factory=set)

    def is_empty(self) -> bool:
        return not (self.delivered or self.pending_delete or self.bounced) and (
            self.uidvalidity is None
        )

    def copy(self) -> FolderState:
        return FolderState(
            self.uidvalidity, set(self.delivered), set(self.pending_delete), set(self.bounced)
        )


@dataclass(slots=True)
class _Account:
    remote: str
    host: str
    uids: dict[str, None] = field(default_factory=dict)  # an ordered set
    raw: list[str] = field(default_factory=list)  # original lines, kept while untouched
    touched: bool = False


def _parse_line(line: str) -> tuple[str, str, str] | None:
    """Split one idfile line into (remote, host, uid) by fetchmail's rules."""
    text = line.lstrip(" \t")
    first_at = text.find("@")
    if first_at < 0:
        return None
    space = text.find(" ", first_at)
    if space < 0:
        return None
    userhost = text[:space]
    rest = text[space + 1 :].split()
    if not rest:
        return None
    last_at = userhost.rfind("@")
    return userhost[:last_at], userhost[last_at + 1 :], rest[0]


class UidStore:
    """UID state of every account, loaded from and saved to the idfile + sidecar.

    *path* ``None`` gives an in-memory store whose :meth:`save` does nothing.
    """

    def __init__(self, path: str | None = None, fs: FileSystem | None = None) -> None:
        self.path = path
        self._fs = fs or FileSystem()
        self._lock = threading.RLock()
        self._accounts: dict[tuple[str, str], _Account] = {}
        self._folders: dict[str, FolderState] = {}
        self._ids_dirty = False
        self._side_dirty = False
        self._journal_exists = False
        # The journal ends in a line torn by a crash: the next append starts a
        # new line first, or its record would be glued to the fragment and lost.
        self._journal_torn = False

    @property
    def sidecar_path(self) -> str | None:
        return self.path + SIDECAR_SUFFIX if self.path else None

    # -- loading -------------------------------------------------------------

    @classmethod
    def load(cls, path: str | None, fs: FileSystem | None = None) -> UidStore:
        """Read the idfile *path* and its sidecar; missing files mean empty state.

        Raises :class:`LocalIOError` when a file exists but cannot be read.
        """
        store = cls(path, fs)
        if path is None:
            return store
        text = read_text(path)
        if text is not None:
            for line in text.splitlines(keepends=True):
                store._load_line(line)
        side = read_text(path + SIDECAR_SUFFIX)
        if side is not None:
            store._load_sidecar(side, path + SIDECAR_SUFFIX)
        journal = read_text(path + JOURNAL_SUFFIX)
        if journal is not None:
            store._journal_exists = True
            store._replay(journal)
        return store

    def _replay(self, text: str) -> None:
        """Apply journal records written after the last full save (see :meth:`record`)."""
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n"):
                self._journal_torn = True
                break  # torn by a crash mid-append: that record was never durable
            try:
                rec = json.loads(line)
                self._apply(
                    str(rec["r"]), str(rec["h"]), rec["f"], str(rec["u"]),
                    seen=bool(rec["s"]), delivered=bool(rec["d"]),
                    pending=bool(rec["p"]), bounced=bool(rec["b"]),
                    uidvalidity=int(rec["v"]) if rec.get("v") is not None else None,
                )  # fmt: skip
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring a bad pyfetchmail journal record (%s)", exc)
        # Compact at the next save() even if nothing else changes.
        self._ids_dirty = self._side_dirty = True

    def _load_line(self, line: str) -> None:
        parsed = _parse_line(line)
        if parsed is None:
            return
        remote, host, uid = parsed
        acct = self._account(remote, host)
        if uid not in acct.uids:
            acct.uids[uid] = None
        acct.raw.append(line if line.endswith("\n") else line + "\n")

    def _load_sidecar(self, text: str, where: str) -> None:
        try:
            data = json.loads(text)
            if data.get("format") != _FORMAT:
                raise ValueError("not a pyfetchmail state file")
            for key, entry in data["folders"].items():
                uv = entry.get("uidvalidity")
                self._folders[str(key)] = FolderState(
                    uidvalidity=int(uv) if uv is not None else None,
                    delivered={str(u) for u in entry.get("delivered", ())},
                    pending_delete={str(u) for u in entry.get("pending_delete", ())},
                    bounced={str(u) for u in entry.get("bounced", ())},
                )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # Only an outside edit can produce this (we write atomically).  Losing
            # the sidecar can cause duplicates, never loss, so go on without it.
            log.warning("%s: ignoring unreadable pyfetchmail state (%s)", where, exc)
            self._folders.clear()

    def _account(self, remote: str, host: str) -> _Account:
        key = (remote.lower(), host.lower())
        acct = self._accounts.get(key)
        if acct is None:
            acct = self._accounts[key] = _Account(remote, host)
        return acct

    # -- the fetchmail-compatible seen list -----------------------------------

    def seen(self, remote: str, host: str) -> set[str]:
        """UIDs recorded in the idfile for *remote* at *host* (queryname)."""
        with self._lock:
            acct = self._accounts.get((remote.lower(), host.lower()))
            return set(acct.uids) if acct else set()

    def uids_for_display(self, remote: str, host: str) -> list[str]:
        """The same UIDs in file order, for ``-V``."""
        with self._lock:
            acct = self._accounts.get((remote.lower(), host.lower()))
            return list(acct.uids) if acct else []

    def mark_seen(self, remote: str, host: str, uid: str) -> None:
        """Record *uid* as seen (fetchmail's UID_SEEN / UID_DELETED)."""
        with self._lock:
            acct = self._touch(remote, host)
            if uid not in acct.uids:
                acct.uids[uid] = None
                self._ids_dirty = True

    def forget(self, remote: str, host: str, uids: set[str]) -> None:
        """Drop *uids* from the seen list (expunged on the server)."""
        with self._lock:
            acct = self._accounts.get((remote.lower(), host.lower()))
            if acct is None or not uids.intersection(acct.uids):
                return
            acct = self._touch(remote, host)
            acct.uids = {u: None for u in acct.uids if u not in uids}
            self._ids_dirty = True

    def retain_only(self, remote: str, host: str, present: set[str]) -> None:
        """Keep only UIDs still *present* on the server (fetchmail's new list replacing the old)."""
        with self._lock:
            acct = self._accounts.get((remote.lower(), host.lower()))
            if acct is None:
                return
            gone = set(acct.uids) - present
            if gone:
                self.forget(remote, host, gone)

    def _touch(self, remote: str, host: str) -> _Account:
        acct = self._account(remote, host)
        if not acct.touched:
            acct.touched = True
            acct.raw = []
            self._ids_dirty = True
        acct.remote, acct.host = remote, host
        return acct

    # -- sidecar state --------------------------------------------------------

    def folder_state(self, remote: str, host: str, folder: str | None = None) -> FolderState:
        """A copy of the sidecar state of an account or folder (empty if unknown)."""
        with self._lock:
            state = self._folders.get(sidecar_key(remote, host, folder))
            return state.copy() if state else FolderState()

    def was_bounced(self, remote: str, host: str, folder: str | None, uid: str) -> bool:
        """True when a bounce was already sent for *uid* (no copy of the state)."""
        with self._lock:
            state = self._folders.get(sidecar_key(remote, host, folder))
            return state is not None and uid in state.bounced

    def update_folder(
        self,
        remote: str,
        host: str,
        folder: str | None,
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
        """Change the sidecar state of one account/folder.

        *reset* clears everything first (UIDVALIDITY changed); *drop* removes
        UIDs from every set; *drop_pending* only from ``pending_delete``;
        *keep_only* removes every UID not in it (messages gone from the server).
        """
        with self._lock:
            key = sidecar_key(remote, host, folder)
            state = self._folders.setdefault(key, FolderState())
            sets = (state.delivered, state.pending_delete, state.bounced)
            # Track changes by sizes, step by step (no O(n) copies per message).
            changed = False
            if reset and any(sets):
                for uids in sets:
                    uids.clear()
                changed = True
            if uidvalidity is not None and state.uidvalidity != uidvalidity:
                state.uidvalidity = uidvalidity
                changed = True
            for uids, add in zip(sets, (add_delivered, add_pending, add_bounced), strict=True):
                if add:
                    size = len(uids)
                    uids |= add
                    changed = changed or len(uids) != size
            for uids in sets:
                size = len(uids)
                if drop:
                    uids -= drop
                if keep_only is not None:
                    uids &= keep_only
                changed = changed or len(uids) != size
            if drop_pending:
                size = len(state.pending_delete)
                state.pending_delete -= drop_pending
                changed = changed or len(state.pending_delete) != size
            if state.is_empty():
                del self._folders[key]
            if changed:
                self._side_dirty = True

    # -- per-message records ---------------------------------------------------

    def record(
        self,
        remote: str,
        host: str,
        folder: str | None,
        uid: str,
        *,
        seen: bool = False,
        delivered: bool = False,
        pending: bool = False,
        bounced: bool = False,
        uidvalidity: int | None = None,
    ) -> None:
        """Record one message's state durably before returning (one journal append).

        *seen* adds it to the idfile seen list; the others to the sidecar
        sets of *folder*, whose UIDVALIDITY is *uidvalidity* (IMAP).  The
        next :meth:`save` folds the journal into the two files and removes it.
        Raises :class:`LocalIOError` when the record could not be made durable.
        """
        with self._lock:
            self._apply(
                remote, host, folder, uid,
                seen=seen, delivered=delivered, pending=pending, bounced=bounced,
                uidvalidity=uidvalidity,
            )  # fmt: skip
            if self.path is None:
                return
            rec: dict[str, object] = {"r": remote, "h": host, "f": folder, "u": uid}
            rec.update({"s": seen, "d": delivered, "p": pending, "b": bounced, "v": uidvalidity})
            data = (json.dumps(rec) + "\n").encode("utf-8", "surrogateescape")
            if self._journal_torn:
                data = b"\n" + data  # close the torn fragment; replay skips it
            journal = self.path + JOURNAL_SUFFIX
            try:
                if self._fs.append(journal, data):
                    self._fs.fsync_dir(os.path.dirname(os.path.abspath(journal)))
            except OSError as exc:
                raise LocalIOError(
                    f"cannot write UID state file {journal}: {exc.strerror or exc}"
                ) from exc
            self._journal_exists = True
            self._journal_torn = False

    def _apply(
        self,
        remote: str,
        host: str,
        folder: str | None,
        uid: str,
        *,
        seen: bool,
        delivered: bool,
        pending: bool,
        bounced: bool,
        uidvalidity: int | None = None,
    ) -> None:
        if seen:
            self.mark_seen(remote, host, uid)
        if delivered or pending or bounced:
            self.update_folder(
                remote, host, folder, uidvalidity=uidvalidity,
                add_delivered={uid} if delivered else set(),
                add_pending={uid} if pending else set(),
                add_bounced={uid} if bounced else set(),
            )  # fmt: skip

    # -- saving ---------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        return self._ids_dirty or self._side_dirty

    def save(self) -> None:
        """Write changed files atomically (sidecar first); no-op for in-memory stores."""
        with self._lock:
            if self.path is None:
                self._ids_dirty = self._side_dirty = False
                return
            if self._side_dirty:
                self._write(self.path + SIDECAR_SUFFIX, self._sidecar_bytes())
                self._side_dirty = False
            if self._ids_dirty:
                self._write(self.path, self._idfile_bytes())
                self._ids_dirty = False
            if self._journal_exists:
                # Both files now hold everything the journal said.
                self._write(self.path + JOURNAL_SUFFIX, None)
                self._journal_exists = self._journal_torn = False

    def _write(self, path: str, data: bytes | None) -> None:
        write_atomic(self._fs, path, data)

    def _idfile_bytes(self) -> bytes | None:
        lines: list[str] = []
        for acct in self._accounts.values():
            if acct.touched:
                lines.extend(f"{acct.remote}@{acct.host} {uid}\n" for uid in acct.uids)
            else:
                lines.extend(acct.raw)
        if not lines:
            return None
        return "".join(lines).encode("utf-8", "surrogateescape")

    def _sidecar_bytes(self) -> bytes | None:
        if not self._folders:
            return None
        folders: dict[str, dict[str, object]] = {}
        for key in sorted(self._folders):
            st = self._folders[key]
            folders[key] = {
                "uidvalidity": st.uidvalidity,
                "delivered": sorted(st.delivered),
                "pending_delete": sorted(st.pending_delete),
                "bounced": sorted(st.bounced),
            }
        doc = {"format": _FORMAT, "version": _VERSION, "folders": folders}
        return (json.dumps(doc, indent=1) + "\n").encode("utf-8", "surrogateescape")
