"""The POP3 mail source: connect, TLS, log in, list, retrieve, delete, quit.

:class:`Pop3Source` implements :class:`~pyfetchmail.protocols.base.MailSource`
and :class:`Pop3Session` the :class:`~pyfetchmail.protocols.base.MailSession`
seam for the fetch engine.  The wire protocol itself lives in the sans-I/O
:mod:`pyfetchmail.protocols.pop3`; this module decides what to send.

Invariants:

- TLS fails closed: when :func:`~pyfetchmail.net.tls.tls_policy` says
  ``MUST``, ``STLS`` is sent even if CAPA did not offer it, and a refusal
  aborts before any credential is sent (CVE-2006-5867).
- With PIPELINING, :meth:`Pop3Session.delete` queues ``DELE`` behind the
  RETRs in flight and returns at once; its ``+OK``/``-ERR`` is read in turn
  while later replies are awaited and handed out by
  :meth:`Pop3Session.deletion_replies`.  That costs no safety: POP3 applies
  deletions at ``QUIT`` only (RFC 1939 §6), QUIT is sent only after every
  DELE reply was read, and ``close(commit=False)`` drops the connection
  without QUIT so the server keeps every message.  Without PIPELINING the
  DELE reply is awaited at once, as RFC 1939 clients do.
- Replies are consumed strictly in order.  RETRs are pipelined in a bounded
  window (:data:`WINDOW_COMMANDS` commands, :data:`WINDOW_OCTETS` announced
  octets; DELEs do not count, their replies are one line); each body is
  streamed into a :class:`SpooledMessage` as it arrives, so a 100 MB
  message never sits in memory.
- We use ``RETR``, never fetchmail's ``TOP n 99999999`` peek: POP3 has no
  seen flag we rely on (new mail is decided by UIDL), ``TOP`` with a huge
  line count is an extension some servers truncate or refuse, and RETR is
  what RFC 1939 defines for retrieving a whole message.
- New mail is decided from UIDL.  Only when the server refuses UIDL (and
  ``fetchall`` is off) is RFC 1725's ``LAST`` asked, and messages numbered
  up to its answer are listed with ``seen=True`` (the others ``False``); an
  answer that is not a number in ``0..count`` is ignored.  fetchmail asks
  LAST *first*; we prefer UIDL because LAST is unreliable once other
  clients read the maildrop (RFC 1939 §10 lists LAST as removed).
- While a RETR body arrives, the optional :attr:`Pop3Session.progress` hook
  (see :mod:`pyfetchmail.protocols.base`) is told the bytes received so far.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pyfetchmail.auth.credentials import Credentials, as_credentials
from pyfetchmail.config.model import MailProtocol, Query
from pyfetchmail.errors import (
    ConfigError,
    FetchmailError,
    LocalProtocolError,
    RemoteProtocolError,
    ServerBusy,
    ServerError,
    ServerLockBusy,
    SocketError,
)
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.net import tls
from pyfetchmail.net.connect import connect, open_plugin
from pyfetchmail.protocols.base import (
    DeletionReply,
    FolderListing,
    MessageRef,
    ProgressHook,
    SessionProtocol,
)
from pyfetchmail.protocols.pop3 import (
    EndOfMessage,
    Err,
    Greeting,
    MessageChunk,
    Ok,
    parse_stat,
)
from pyfetchmail.protocols.pop3_auth import Capabilities, authenticate, classify_auth_err
from pyfetchmail.protocols.pop3_channel import Pop3Channel

__all__ = ["WINDOW_COMMANDS", "WINDOW_OCTETS", "Pop3Session", "Pop3Source"]

log = logging.getLogger(__name__)

#: At most this many RETR commands in flight ...
WINDOW_COMMANDS = 32
#: ... and at most this many announced octets (one message is always allowed).
WINDOW_OCTETS = 4 << 20


def _default_service(query: Query) -> str:
    if query.server.service:
        return query.server.service
    if query.server.protocol is MailProtocol.KPOP:
        return "kpop"
    return "pop3s" if query.user.ssl else "pop3"


class Pop3Source:
    """Opens authenticated POP3 sessions for one query.

    *timeout* overrides the server's ``timeout`` option (seconds).  With
    *check_only* (``-c``) the session refuses to delete.
    """

    def __init__(
        self,
        query: Query,
        credentials: Credentials | str | None,
        *,
        timeout: float | None = None,
        check_only: bool = False,
    ) -> None:
        self.query = query
        self.credentials = as_credentials(credentials)  # asked at each open()
        self.timeout = float(query.server.timeout) if timeout is None else timeout
        self.check_only = check_only

    def open(self) -> Pop3Session:
        """Connect, upgrade to TLS as required, authenticate; return the session."""
        server, user = self.query.server, self.query.user
        host = server.queryname
        service = _default_service(self.query)
        if server.plugin:
            sock = open_plugin(server.plugin, host, service, self.timeout)
        else:
            sock = connect(host, service, self.timeout)
        peer = _peer(sock) if not server.plugin else None
        try:
            if user.ssl:
                sock = tls.wrap(sock, user, self.query, self.timeout)
            session = Pop3Session(
                Pop3Channel(sock, server.pollname, self.timeout),
                self.query,
                peer,
                tls_active=user.ssl,
                check_only=self.check_only,
            )
        except BaseException:
            sock.close()
            raise
        try:
            session._start(self.credentials.secret())
        except BaseException:
            session.close(commit=False)
            raise
        return session


def _peer(sock: socket.socket) -> str | None:
    try:
        addr = sock.getpeername()
    except OSError:
        return None
    return str(addr[0]) if isinstance(addr, tuple) else None


@dataclass(slots=True)
class _Reply:
    """A reply the session is waiting for, filled in by :meth:`Pop3Session._pump`."""

    verb: str
    ref: MessageRef | None = None
    spool: SpooledMessage | None = None
    done: bool = False
    err: str | None = None
    text: str = ""


class Pop3Session:
    """An authenticated POP3 session (see the module docstring for invariants)."""

    def __init__(
        self,
        chan: Pop3Channel,
        query: Query,
        peer: str | None,
        *,
        tls_active: bool,
        check_only: bool = False,
    ) -> None:
        self._chan = chan
        self._query = query
        self._peer = peer
        self._tls_active = tls_active
        self._check_only = check_only
        self._caps = Capabilities()
        self._greeting = ""
        self._replies: deque[_Reply] = deque()
        self._deletions: list[DeletionReply] = []  # read, not yet handed out
        self._dele_outstanding = 0
        self._closed = False
        self.label = f"{query.user.remote}@{query.server.pollname}"
        #: Optional progress hook (:data:`~pyfetchmail.protocols.base.ProgressHook`).
        self.progress: ProgressHook | None = None

    # -- MailSession properties -----------------------------------------
    @property
    def protocol_name(self) -> SessionProtocol:
        return SessionProtocol.POP3

    @property
    def peer_address(self) -> str | None:
        return self._peer

    @property
    def capabilities(self) -> Capabilities:
        """The CAPA listing in effect (after STLS: the one sent over TLS)."""
        return self._caps

    @property
    def greeting(self) -> str:
        """Text of the server greeting (after ``+OK``)."""
        return self._greeting

    # -- opening -----------------------------------------------------------
    def _start(self, password: str | None) -> None:
        host = self._query.server.pollname
        event = self._chan.next_event()
        if isinstance(event, Err):
            refusal = classify_auth_err(event.text, self.label)
            if isinstance(refusal, ServerLockBusy | ServerBusy):
                raise refusal
            raise RemoteProtocolError(f"{host}: server refused the connection: {event.text}")
        if not isinstance(event, Greeting):
            raise ServerError(f"{host}: client and server out of step")
        self._greeting = event.text
        self._caps = self._capa()
        self._starttls()
        authenticate(
            self._chan,
            self._query,
            password,
            self._caps,
            self._greeting,
            tls_active=self._tls_active,
        )

    def _capa(self) -> Capabilities:
        self._chan.send([("CAPA", ())])
        err, lines = self._chan.listing()
        if err is not None:
            log.debug("%s: CAPA refused: %s", self._query.server.pollname, err.text)
            return Capabilities()
        return Capabilities.parse(line.text for line in lines)

    def _starttls(self) -> None:
        user, host = self._query.user, self._query.server.pollname
        policy = tls.tls_policy(user)
        offered = self._caps.has("STLS")
        if policy is tls.StartTls.NEVER:
            if offered and not user.ssl:
                log.debug("%s: WARNING: server offered STLS, but sslproto '' given.", host)
            return
        if policy is tls.StartTls.MAY and not offered:
            return
        self._chan.send([("STLS", ())])
        reply = self._chan.reply()
        if isinstance(reply, Err):
            if policy is tls.StartTls.MUST:
                raise SocketError(f"{host}: upgrade to TLS failed.")
            log.warning("%s: STLS refused (%s); continuing without TLS", host, reply.text)
            return
        try:
            sock = tls.wrap(self._chan.sock, user, self._query, self._chan.timeout)
        except SocketError as exc:
            log.error("%s: upgrade to TLS failed.", host)
            raise SocketError(f"{exc} ({host}: upgrade to TLS failed.)") from None
        self._chan.replace_socket(sock)
        self._tls_active = True
        # RFC 2595 §4: forget what was learned before TLS and ask again.
        self._caps = self._capa()

    # -- the reply pump ----------------------------------------------------
    def _send(self, replies: Sequence[_Reply], args: Sequence[Sequence[str]]) -> None:
        self._chan.send([(r.verb, a) for r, a in zip(replies, args, strict=True)])
        self._replies.extend(replies)

    def _pump(self, until: _Reply) -> None:
        """Route events to the waiting replies, in order, until *until* is done."""
        while not until.done:
            head = self._replies[0]
            event = self._chan.next_event()
            if isinstance(event, Ok):
                head.text = event.text
                if head.verb in ("RETR", "TOP"):
                    size = head.ref.size if head.ref else None
                    head.spool = SpooledMessage(announced_size=size)
                    continue
            elif isinstance(event, Err):
                head.err = event.text
            elif isinstance(event, MessageChunk) and head.spool is not None:
                head.spool.write(event.data)
                if self.progress is not None and head.ref is not None:
                    self.progress(head.ref, head.spool.size, head.ref.size)
                continue
            elif not isinstance(event, EndOfMessage):
                raise ServerError(f"{self.label}: client and server out of step")
            head.done = True
            self._replies.popleft()
            if head.verb == "DELE" and head.ref is not None:
                self._dele_done(head)

    def _drain(self) -> None:
        """Read every outstanding reply (spools of abandoned RETRs are discarded)."""
        while self._replies:
            last = self._replies[-1]
            self._pump(last)

    def _simple(self, verb: str, *args: str) -> _Reply:
        reply = _Reply(verb)
        self._send([reply], [args])
        self._pump(reply)
        return reply

    # -- MailSession -------------------------------------------------------
    def select(self, folder: str | None) -> FolderListing:
        """STAT, then UIDL and LIST (pipelined when the server allows it)."""
        if folder is not None:
            raise ConfigError("Option --folder is not supported with POP3")
        self._drain()
        stat = self._simple("STAT")
        if stat.err is not None:
            raise RemoteProtocolError(f"{self.label}: STAT failed: {stat.err}")
        count, octets = parse_stat(stat.text)
        if count == 0:
            return FolderListing(None, 0, octets, ())
        if self._caps.has("PIPELINING"):
            self._chan.send([("UIDL", ()), ("LIST", ())])
            uidl = self._chan.listing()
            sizes = self._chan.listing()
        else:
            self._chan.send([("UIDL", ())])
            uidl = self._chan.listing()
            self._chan.send([("LIST", ())])
            sizes = self._chan.listing()
        uids = {line.number: line.value for line in uidl[1] if line.number is not None}
        if uidl[0] is not None:
            log.debug("%s: UIDL refused: %s", self.label, uidl[0].text)
        size_of = {
            line.number: int(line.value or 0) for line in sizes[1] if line.number is not None
        }
        numbers = sorted(size_of) if sizes[0] is None else list(range(1, count + 1))
        last = self._last(count) if uidl[0] is not None else None
        refs = tuple(
            MessageRef(n, uids.get(n), size_of.get(n), seen=None if last is None else n <= last)
            for n in numbers
        )
        return FolderListing(None, count, octets, refs)

    def _last(self, count: int) -> int | None:
        """RFC 1725 ``LAST``: the highest message number accessed, or ``None``.

        Asked only when UIDL failed and ``fetchall`` is off (with
        ``fetchall`` every message is fetched anyway, as in fetchmail).
        """
        if self._query.user.fetchall:
            return None
        reply = self._simple("LAST")
        if reply.err is not None:
            log.debug("%s: LAST refused: %s", self.label, reply.err)
            return None
        word = reply.text.split(maxsplit=1)[0] if reply.text.split() else ""
        if not (word.isascii() and word.isdigit()) or int(word) > count:
            log.debug("%s: ignoring malformed LAST reply %r", self.label, reply.text[:40])
            return None
        return int(word)

    def retrieve(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, SpooledMessage]]:
        """RETR each of *refs* in order, keeping a bounded window in flight."""
        pending = list(refs)
        pipelining = self._caps.has("PIPELINING")
        window = WINDOW_COMMANDS if pipelining else 1
        mine: deque[_Reply] = deque()
        index = 0
        try:
            while index < len(pending) or mine:
                batch: list[_Reply] = []
                octets = sum(r.ref.size or 0 for r in mine if r.ref)
                while index < len(pending) and (
                    not (mine or batch)
                    or (len(mine) + len(batch) < window and octets < WINDOW_OCTETS)
                ):
                    ref = pending[index]
                    index += 1
                    batch.append(_Reply("RETR", ref))
                    octets += ref.size or 0
                if batch:
                    self._send(batch, [(str(r.ref.number),) for r in batch if r.ref])
                    mine.extend(batch)
                head = mine[0]
                self._pump(head)
                mine.popleft()
                assert head.ref is not None
                if head.err is not None:
                    raise ServerError(f"{self.label}: RETR {head.ref.number} failed: {head.err}")
                assert head.spool is not None
                spool, head.spool = head.spool, None
                yield head.ref, spool
        finally:
            self._abandon(mine)

    def _abandon(self, replies: deque[_Reply]) -> None:
        """Keep the session in step after an early exit: read and drop *replies*."""
        if not replies or self._chan.broken:
            return
        try:
            self._pump(replies[-1])
        except FetchmailError as exc:
            log.debug("%s: session lost while discarding prefetched messages: %s", self.label, exc)
        for reply in replies:
            if reply.spool is not None:
                reply.spool.close()

    def mark_seen(self, ref: MessageRef) -> None:
        """POP3 has no seen flag: nothing to do."""

    def delete(self, ref: MessageRef) -> None:
        """Send DELE *ref*; with PIPELINING return before its reply is read.

        The reply is reported by :meth:`deletion_replies`.  Without
        PIPELINING (RFC 2449 §6.6) the reply is read before returning.
        """
        if self._check_only:
            raise LocalProtocolError("refusing to delete in check-only mode")
        reply = _Reply("DELE", ref)
        self._send([reply], [(str(ref.number),)])
        self._dele_outstanding += 1
        if not self._caps.has("PIPELINING"):
            self._pump(reply)

    def _dele_done(self, reply: _Reply) -> None:
        assert reply.ref is not None
        self._dele_outstanding -= 1
        error = None
        if reply.err is not None:
            error = f"{self.label}: DELE {reply.ref.number} failed: {reply.err}"
            log.debug("%s", error)
        self._deletions.append(DeletionReply(reply.ref, error))

    def deletion_replies(self, *, wait: bool = False) -> list[DeletionReply]:
        """DELE replies read so far (all of them with *wait*), in command order."""
        if wait:
            self._settle()
        out, self._deletions = self._deletions, []
        return out

    def _settle(self) -> None:
        """Read up to the last DELE reply (spooling any RETR in flight before it)."""
        if self._dele_outstanding:
            self._pump(next(r for r in reversed(self._replies) if r.verb == "DELE"))

    def expunge(self) -> None:
        """Read outstanding DELE replies; deletions become durable at QUIT (RFC 1939 §6)."""
        self._settle()

    def close(self, commit: bool = True) -> None:
        """QUIT (deletions applied) or, with ``commit=False``, just drop the line."""
        if self._closed:
            return
        self._closed = True
        try:
            if commit and not self._chan.broken:
                self._drain()
                quit_reply = self._simple("QUIT")
                if quit_reply.err is not None:
                    raise ServerError(f"{self.label}: QUIT failed: {quit_reply.err}")
        finally:
            for reply in self._replies:
                if reply.spool is not None:
                    reply.spool.close()
            self._chan.close()
