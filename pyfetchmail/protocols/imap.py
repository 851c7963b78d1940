"""IMAP mail source: an adapter from imapclient's public API to :class:`MailSource`.

Responsibility: list, fetch, flag and expunge messages of one account's
folders; connection set-up lives in :mod:`pyfetchmail.protocols.imap_auth`,
error translation and transcripts in :mod:`pyfetchmail.protocols.imap_wire`.
The fetch engine decides what to fetch and delete; this module executes.

Invariants (on top of those of :mod:`pyfetchmail.protocols.base`):
- After listing, every command addresses messages by UID (``UID FETCH``,
  ``UID STORE``, ``UID EXPUNGE``): sequence numbers shift after EXPUNGE.
- Fetching never sets ``\\Seen``: bodies are fetched with ``BODY.PEEK[]``.
- Memory stays bounded: messages are fetched in batches of at most
  :data:`BATCH_COUNT` messages and :data:`BATCH_OCTETS` announced octets;
  a message above :data:`CHUNK_THRESHOLD` (or of unknown size) is fetched
  alone in partial ``BODY.PEEK[]<offset.length>`` pieces and spooled.
- ``delete`` returns only after the server's OK to ``UID STORE +FLAGS
  (\\Seen \\Deleted)`` (a NO raises) and reports it at once via
  ``deletion_replies``; deletions become durable at
  :meth:`ImapSession.expunge` (``UID EXPUNGE`` with UIDPLUS, else
  ``EXPUNGE``), before another folder is selected, or at
  ``close(commit=True)``.  ``close(commit=False)`` drops the connection:
  flagged messages stay on the server (the engine's state knows they were
  delivered).
- With *check_only* folders are opened with EXAMINE and nothing is changed.
- Like fetchmail, SELECT of a non-empty folder without ``keep`` is followed
  by EXPUNGE: messages already flagged ``\\Deleted`` (by us in a session that
  died before its EXPUNGE, or by another client) are removed, never listed.
"""

from __future__ import annotations

import imaplib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pyfetchmail.auth.credentials import Credentials, as_credentials
from pyfetchmail.config.model import DEFAULT_TIMEOUT, Query
from pyfetchmail.errors import ServerError, ServerLockBusy, SocketError
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.protocols.base import (
    DeletionReply,
    FolderListing,
    MessageRef,
    ProgressHook,
    SessionProtocol,
)
from pyfetchmail.protocols.imap_auth import connect
from pyfetchmail.protocols.imap_client import ImapClientLike, capabilities, drop
from pyfetchmail.protocols.imap_wire import guard

__all__ = [
    "BATCH_COUNT",
    "BATCH_OCTETS",
    "CHUNK_SIZE",
    "CHUNK_THRESHOLD",
    "ImapSession",
    "ImapSource",
]

log = logging.getLogger(__name__)

#: At most this many messages per ``UID FETCH`` of bodies.
BATCH_COUNT = 100
#: At most this many announced octets per batch (imaplib holds a batch in memory).
BATCH_OCTETS = 8 << 20
#: Messages larger than this are fetched alone, in partial pieces.
CHUNK_THRESHOLD = 4 << 20
#: Size of one partial fetch (RFC 3501 §6.4.5 ``BODY[]<origin.octets>``).
CHUNK_SIZE = 1 << 20

_SEEN = b"\\Seen"
_DELETED = b"\\Deleted"


class ImapSource:
    """Factory for IMAP sessions of *query* (implements :class:`MailSource`).

    *timeout* overrides the server ``timeout`` (seconds; ``0`` = the default 300);
    *check_only* opens folders read-only (``-c``); *uid_mode* (``uidl``)
    is recorded for the engine, the listing always carries UIDs.
    """

    def __init__(
        self,
        query: Query,
        credentials: Credentials | str | None,
        *,
        timeout: float | None = None,
        check_only: bool = False,
        uid_mode: bool = False,
    ) -> None:
        self.query = query
        # The engine applies UID mode itself; listing is the same either way.
        self.uid_mode = uid_mode
        self._credentials = as_credentials(credentials)  # asked at each open()
        chosen = query.server.timeout if timeout is None else timeout
        # fetchmail: timeout 0 means the default; the timeout cannot be disabled.
        self.timeout: float = chosen if chosen and chosen > 0 else DEFAULT_TIMEOUT
        self.check_only = check_only

    def open(self) -> ImapSession:
        """Connect, upgrade to TLS, authenticate; raise our errors on failure."""
        client = connect(self.query, self._credentials.secret(), self.timeout)
        return ImapSession(client, self.query, self.timeout, check_only=self.check_only)


def fetch_batches(refs: Sequence[MessageRef]) -> Iterator[list[MessageRef]]:
    """Group *refs* in order; a big or unsized message forms a batch of its own."""
    batch: list[MessageRef] = []
    octets = 0
    for ref in refs:
        size = ref.size
        if size is None or size > CHUNK_THRESHOLD:
            if batch:
                yield batch
            yield [ref]
            batch, octets = [], 0
            continue
        if batch and (len(batch) >= BATCH_COUNT or octets + size > BATCH_OCTETS):
            yield batch
            batch, octets = [], 0
        batch.append(ref)
        octets += size
    if batch:
        yield batch


def _body_of(item: Mapping[bytes, Any]) -> bytes | None:
    """The ``BODY[...]`` value of one parsed FETCH item (key spelling varies)."""
    for key, value in item.items():
        if isinstance(key, bytes) and key.upper().startswith(b"BODY["):
            if isinstance(value, bytes):
                return value
            return None
    return None


def _uid_int(ref: MessageRef) -> int:
    if ref.uid is None or not ref.uid.isdigit():
        raise ServerError(f"message {ref.number} has no usable IMAP UID.")
    return int(ref.uid)


class ImapSession:
    """An authenticated IMAP connection (implements :class:`MailSession`).

    Also offers :meth:`wait_for_mail` for :mod:`pyfetchmail.service.idle`.
    """

    def __init__(
        self,
        client: ImapClientLike,
        query: Query,
        timeout: float | None,
        *,
        check_only: bool = False,
    ) -> None:
        self._client = client
        self.query = query
        self.host = query.server.pollname
        self.timeout = timeout
        self.check_only = check_only
        self._folder: str | None = None
        self._pending: list[int] = []  # UIDs flagged \Deleted, not yet expunged
        self._replies: list[DeletionReply] = []  # for deletion_replies()
        self._closed = False
        with guard(self.host, timeout):
            self._caps = capabilities(client)
            peer = client.socket().getpeername()
        # Through a plugin the socket's peer is our loopback relay, not the server.
        plugin = bool(query.server.plugin)
        self._peer = str(peer[0]) if isinstance(peer, tuple) and peer and not plugin else None

    # -- MailSession ---------------------------------------------------------------

    @property
    def protocol_name(self) -> SessionProtocol:
        """``IMAP`` (as written in the Received header)."""
        return SessionProtocol.IMAP

    @property
    def peer_address(self) -> str | None:
        """Numeric address of the server."""
        return self._peer

    @property
    def capabilities(self) -> frozenset[str]:
        """Capabilities after login, upper-case."""
        return self._caps

    @property
    def supports_idle(self) -> bool:
        """True when the server advertises IDLE (RFC 2177)."""
        return "IDLE" in self._caps

    def select(self, folder: str | None) -> FolderListing:
        """SELECT (EXAMINE with check_only) *folder* and list its undeleted messages."""
        name = folder or "INBOX"
        if self._pending:
            self.expunge()
        user = self.query.user
        tolerate_readonly = user.fetchall and user.keep
        # fetchmail sends rc folder names as written (unencoded), so an
        # ASCII name is already the wire form (e.g. modified UTF-7 "Entw&APw-rfe");
        # only a non-ASCII name needs RFC 3501 §5.1.3 encoding by imapclient.
        self._client.folder_encode = not name.isascii()
        with guard(self.host, self.timeout):
            try:
                info = self._client.select_folder(name, readonly=self.check_only)
            except imaplib.IMAP4.readonly:
                # [READ-ONLY] on SELECT: someone else holds the mailbox (RFC 3501 §7.1).
                if not tolerate_readonly:
                    raise ServerLockBusy(f"{self.host}: mailbox {name} is read-only.") from None
                log.debug("%s: %s is read-only, tolerated with fetchall+keep", self.host, name)
                info = self._client.select_folder(name, readonly=True)
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                raise ServerError(f"{self.host}: cannot select folder {name}: {exc}") from None
            self._folder = name
            exists = int(info.get(b"EXISTS", 0))
            if exists and not self.check_only and not user.keep and not tolerate_readonly:
                # As fetchmail does, EXPUNGE right after SELECT removes
                # messages left flagged \Deleted, e.g. by a session killed before
                # its EXPUNGE; the engine's records of them are pruned after listing.
                self._client.expunge()
            uidvalidity_raw = info.get(b"UIDVALIDITY")
            uidvalidity = int(uidvalidity_raw) if uidvalidity_raw is not None else None
            refs = self._list(name, uidvalidity) if exists else []
        total = sum(r.size or 0 for r in refs)
        log.debug("%s: %s has %d messages, %d undeleted", self.host, name, exists, len(refs))
        return FolderListing(name, len(refs), total, tuple(refs), uidvalidity)

    def _list(self, folder: str, uidvalidity: int | None) -> list[MessageRef]:
        uids = sorted(int(u) for u in self._client.search(["UNDELETED"]))
        step = self.query.user.fetchsizelimit or len(uids) or 1
        refs: list[MessageRef] = []
        for start in range(0, len(uids), step):
            chunk = uids[start : start + step]
            data = self._client.fetch(chunk, [b"FLAGS", b"RFC822.SIZE"])
            for uid in chunk:
                item = data.get(uid)
                if item is None:
                    continue  # expunged meanwhile by another client
                # RFC 3501 §2.3.2: flag names are case-insensitive.
                flags = {f.upper() for f in item.get(b"FLAGS", ()) if isinstance(f, bytes)}
                if _DELETED.upper() in flags:
                    continue
                size = item.get(b"RFC822.SIZE")
                if size is not None and not isinstance(size, int):
                    raise ValueError(f"RFC822.SIZE of UID {uid} is not a number")
                seq = item.get(b"SEQ")
                refs.append(
                    MessageRef(
                        number=int(seq) if isinstance(seq, int) else len(refs) + 1,
                        uid=str(uid),
                        size=size,
                        seen=_SEEN.upper() in flags,
                        folder=folder,
                        uidvalidity=uidvalidity,
                    )
                )
        refs.sort(key=lambda r: r.number)
        return refs

    #: Optional progress hook (:data:`~pyfetchmail.protocols.base.ProgressHook`),
    #: told once per message of a batch and once per partial fetch of a big one.
    progress: ProgressHook | None = None

    def retrieve(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, SpooledMessage]]:
        """Fetch *refs* in order with ``BODY.PEEK[]``, batched; see the module docstring."""
        for batch in fetch_batches(refs):
            if len(batch) == 1 and (batch[0].size is None or batch[0].size > CHUNK_THRESHOLD):
                yield batch[0], self._fetch_chunked(batch[0])
                continue
            yield from self._fetch_batch(batch)

    def _fetch_batch(self, batch: list[MessageRef]) -> Iterator[tuple[MessageRef, SpooledMessage]]:
        uids = [_uid_int(r) for r in batch]
        with guard(self.host, self.timeout):
            try:
                data = self._client.fetch(uids, [b"BODY.PEEK[]"])
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error:
                if len(batch) == 1:
                    raise ServerError(
                        f"{self.host}: server refused to fetch UID {uids[0]}."
                    ) from None
                data = None
        if data is None:
            # A NO for the batch: find the culprit message by message.
            for ref in batch:
                yield from self._fetch_batch([ref])
            return
        for ref, uid in zip(batch, uids, strict=True):
            item = data.get(uid)
            body = _body_of(item) if item is not None else None
            if body is None:
                raise ServerError(f"{self.host}: server sent no body for UID {uid}.")
            msg = SpooledMessage(announced_size=ref.size)
            msg.write(body)
            if self.progress is not None:
                self.progress(ref, msg.size, ref.size)
            yield ref, msg

    def _fetch_chunked(self, ref: MessageRef) -> SpooledMessage:
        uid = _uid_int(ref)
        msg = SpooledMessage(announced_size=ref.size)
        try:
            offset = 0
            while True:
                item_name = f"BODY.PEEK[]<{offset}.{CHUNK_SIZE}>".encode("ascii")
                with guard(self.host, self.timeout):
                    try:
                        data = self._client.fetch([uid], [item_name])
                    except imaplib.IMAP4.abort:
                        raise
                    except imaplib.IMAP4.error:
                        raise ServerError(
                            f"{self.host}: server refused to fetch UID {uid}."
                        ) from None
                item = data.get(uid)
                chunk = _body_of(item) if item is not None else None
                if chunk is None:
                    if offset:
                        break  # NIL past the end of the message
                    raise ServerError(f"{self.host}: server sent no body for UID {uid}.")
                msg.write(chunk)
                offset += len(chunk)
                if self.progress is not None:
                    self.progress(ref, msg.size, ref.size)
                if len(chunk) < CHUNK_SIZE:
                    break
        except BaseException:
            msg.close()
            raise
        return msg

    def mark_seen(self, ref: MessageRef) -> None:
        """``UID STORE +FLAGS.SILENT (\\Seen)``."""
        self._store(ref, [_SEEN])

    def delete(self, ref: MessageRef) -> None:
        """``UID STORE +FLAGS.SILENT (\\Seen \\Deleted)``; returns after the server's OK.

        The OK is reported at once by :meth:`deletion_replies`; a NO raises
        :class:`ServerError` here, as the contract allows a synchronous source.
        """
        self._store(ref, [_SEEN, _DELETED])
        self._pending.append(_uid_int(ref))
        self._replies.append(DeletionReply(ref))

    def deletion_replies(self, *, wait: bool = False) -> list[DeletionReply]:
        """Replies to :meth:`delete` since the last call (IMAP reads them at once)."""
        out, self._replies = self._replies, []
        return out

    def _store(self, ref: MessageRef, flags: list[bytes]) -> None:
        uid = _uid_int(ref)
        with guard(self.host, self.timeout):
            try:
                self._client.add_flags([uid], flags, silent=True)
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                raise ServerError(f"{self.host}: cannot set flags on UID {uid}: {exc}") from None

    def expunge(self) -> None:
        """Expunge the messages this session flagged (``UID EXPUNGE`` with UIDPLUS)."""
        if not self._pending or self.check_only:
            return
        with guard(self.host, self.timeout):
            if "UIDPLUS" in self._caps:
                self._client.uid_expunge(self._pending)
            else:
                self._client.expunge()
        log.debug("%s: expunged %d message(s)", self.host, len(self._pending))
        self._pending.clear()

    def close(self, commit: bool = True) -> None:
        """With *commit*: expunge pending deletions, then LOGOUT.  Else drop the link."""
        if self._closed:
            return
        logged_out = False
        try:
            if commit:
                self.expunge()
                with guard(self.host, self.timeout):
                    self._client.logout()  # imaplib closes the socket itself
                logged_out = True
        finally:
            self._closed = True
            if not logged_out:
                drop(self._client)

    # -- IDLE (RFC 2177) -----------------------------------------------------------

    def wait_for_mail(
        self,
        max_wait: float,
        interrupted: Callable[[], bool] | threading.Event,
        *,
        slice_seconds: float = 0.25,
    ) -> bool:
        """IDLE for up to *max_wait* seconds; return True when new mail was announced.

        Returns early (False) when *interrupted* says so; it is polled every
        *slice_seconds*.  ``EXISTS`` or a non-zero ``RECENT`` counts as new
        mail; ``BYE`` or a closed connection raises SocketError.  The IDLE is
        always ended with DONE before returning (RFC 2177 §3).
        """
        check = interrupted.is_set if isinstance(interrupted, threading.Event) else interrupted
        deadline = time.monotonic() + max_wait
        with guard(self.host, self.timeout):
            self._client.idle()
            new_mail = False
            dead_reads = 0
            while not new_mail and not check():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                started = time.monotonic()
                responses = self._client.idle_check(timeout=min(left, slice_seconds))
                new_mail = self._announces_mail(responses)
                # idle_check swallows EOF: an immediate empty answer, twice, is a dead link.
                quick_empty = not responses and time.monotonic() - started < slice_seconds / 2
                dead_reads = dead_reads + 1 if quick_empty and left > slice_seconds else 0
                if dead_reads >= 2:
                    raise SocketError(f"{self.host}: connection closed by the server.")
            # RFC 2177: end the IDLE with DONE and wait for its tagged OK.
            _text, extra = self._client.idle_done()
            new_mail = new_mail or self._announces_mail(extra)
        return new_mail

    def _announces_mail(self, responses: Sequence[Any]) -> bool:
        found = False
        for response in responses:
            if not isinstance(response, tuple) or len(response) < 2:
                continue
            first, second = response[0], response[1]
            if first == b"BYE":
                raise SocketError(f"Received BYE response from IMAP server {self.host}.")
            if second == b"EXISTS" or (second == b"RECENT" and first != 0):
                found = True
        return found
