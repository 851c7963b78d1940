"""In-memory fakes of OUR seams for engine tests: MailSource/MailSession, Delivery.

- :class:`FakeServer` holds mailboxes (POP3 maildrop or IMAP folders) and
  behaves like the protocols do: POP3 DELE is applied only at a committing
  close (RFC 1939 §6); IMAP ``\\Deleted`` survives until EXPUNGE, and a
  committing close expunges (fetchmail expunges before LOGOUT).
- :class:`Chaos` simulates ``kill -9``: every fake (session, delivery, and
  :class:`ChaosFileSystem` for the UID store) calls :meth:`Chaos.tick`, which
  raises :class:`Killed` (a BaseException, so no ``except Exception`` in the
  engine can swallow it) at the chosen event.  A killed session is dead: its
  uncommitted POP3 deletions are lost, as on a real server.
- Deletion replies (:meth:`FakeSession.deletion_replies`) come at once by
  default; :attr:`FakeServer.confirm_delay` holds each one back for that many
  later session operations (a retrieved message or another delete), as a
  pipelining POP3 server's DELE replies arrive behind in-flight RETRs; a UID
  in :attr:`FakeServer.dele_errors` is refused (``-ERR``) and stays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyfetchmail.config.model import MailProtocol, Query, RunControl, Server, User
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.delivery.base import DeliveryResult, Envelope, Outcome, RecipientResult
from pyfetchmail.engine.poll import BounceRequest, PollContext, poll_query
from pyfetchmail.errors import ServerError, SocketError
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.protocols.base import DeletionReply, FolderListing, MessageRef
from pyfetchmail.state.uidstore import FileSystem, UidStore

__all__ = [
    "Chaos",
    "ChaosFileSystem",
    "FakeDelivery",
    "FakeMessage",
    "FakePrepared",
    "FakeServer",
    "FakeSession",
    "FakeSource",
    "Killed",
    "Rig",
    "fake_prepare",
    "make_message",
    "make_query",
]


class Killed(BaseException):
    """The process died here (kill -9)."""


class Chaos:
    """Counts events; raises :class:`Killed` at event number *kill_at* (1-based)."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.kill_at = kill_at
        self.count = 0
        self.events: list[str] = []
        self.fired = False

    def tick(self, event: str) -> None:
        self.count += 1
        self.events.append(event)
        if self.kill_at is not None and self.count == self.kill_at:
            self.fired = True
            raise Killed(event)


class ChaosFileSystem(FileSystem):
    """The real file operations, with kill points before and after the rename."""

    def __init__(self, chaos: Chaos) -> None:
        self.chaos = chaos

    def write_new(self, path: str, data: bytes) -> None:
        self.chaos.tick("state-write")
        super().write_new(path, data)

    def replace(self, src: str, dst: str) -> None:
        super().replace(src, dst)
        self.chaos.tick("state-renamed")

    def append(self, path: str, data: bytes) -> bool:
        self.chaos.tick("journal-append")
        created = super().append(path, data)
        self.chaos.tick("journal-synced")
        return created


def make_message(n: int, extra: bytes = b"") -> bytes:
    return (
        f"From: sender{n}@remote.example\r\nTo: joe@remote.example\r\n"
        f"Message-ID: <m{n}@remote.example>\r\nSubject: message {n}\r\n\r\n".encode()
        + extra
        + f"body {n}\r\n".encode()
    )


@dataclass
class FakeMessage:
    uid: str
    data: bytes
    seen: bool = False
    deleted: bool = False  # IMAP \Deleted


@dataclass
class FakeServer:
    """Mail on the server.  *folders* maps a folder name ("INBOX" for POP3) to messages."""

    protocol: str = "POP3"
    folders: dict[str, list[FakeMessage]] = field(default_factory=dict)
    uidvalidity: dict[str, int] = field(default_factory=dict)
    with_uids: bool = True
    retr_errors: set[str] = field(default_factory=set)  # per-message -ERR / NO on fetch
    drop_connection_at_uid: str | None = None  # SocketError when fetching this UID
    dele_errors: set[str] = field(default_factory=set)  # deletion refused for these UIDs
    confirm_delay: int = 0  # deletion replies arrive this many operations later
    log: list[str] = field(default_factory=list)
    sessions: int = 0
    chaos: Chaos = field(default_factory=Chaos)

    @classmethod
    def with_messages(cls, n: int, protocol: str = "POP3", **kw: Any) -> FakeServer:
        server = cls(protocol=protocol, **kw)
        server.folders["INBOX"] = [
            FakeMessage(f"uid-{i}", make_message(i)) for i in range(1, n + 1)
        ]
        server.uidvalidity.setdefault("INBOX", 1000)
        return server

    def add(self, folder: str, data: bytes, *, uid: str | None = None, seen: bool = False) -> str:
        box = self.folders.setdefault(folder, [])
        uid = uid or f"uid-{len(box) + 1000 + sum(len(b) for b in self.folders.values())}"
        box.append(FakeMessage(uid, data, seen=seen))
        self.uidvalidity.setdefault(folder, 1000)
        return uid

    def remaining(self, folder: str = "INBOX") -> list[str]:
        return [m.uid for m in self.folders.get(folder, [])]


class FakeSession:
    """A :class:`~pyfetchmail.protocols.base.MailSession` on a :class:`FakeServer`."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.dead = False
        self.closed = False
        self._folder = "INBOX"
        self._listing: list[FakeMessage] = []
        self._pop_deleted: set[str] = set()
        self._ops = 0  # retrieved messages + deletes, the clock of confirm_delay
        self._unanswered: list[tuple[int, DeletionReply]] = []  # (due, reply)
        self._answered: list[DeletionReply] = []
        self.replies_reported: list[DeletionReply] = []

    def _step(self) -> None:
        self._ops += 1
        self._settle(everything=False)

    def _settle(self, *, everything: bool) -> None:
        while self._unanswered and (everything or self._unanswered[0][0] <= self._ops):
            self._answered.append(self._unanswered.pop(0)[1])

    def deletion_replies(self, *, wait: bool = False) -> list[DeletionReply]:
        self._alive()
        self._settle(everything=wait)
        out, self._answered = self._answered, []
        self.replies_reported.extend(out)
        return out

    @property
    def protocol_name(self) -> str:
        return self.server.protocol

    @property
    def peer_address(self) -> str | None:
        return "127.0.0.1"

    def _tick(self, event: str) -> None:
        try:
            self.server.chaos.tick(event)
        except Killed:
            self.dead = True
            raise

    def _alive(self) -> None:
        if self.dead or self.closed:
            raise SocketError("fake: session is gone")

    def select(self, folder: str | None) -> FolderListing:
        self._alive()
        self._folder = folder or "INBOX"
        box = self.server.folders.get(self._folder, [])
        # Like ImapSource, list only UNDELETED messages.
        self._listing = [m for m in box if m.uid not in self._pop_deleted and not m.deleted]
        imap = self.server.protocol == "IMAP"
        refs = tuple(
            MessageRef(
                number=i,
                uid=m.uid if self.server.with_uids else None,
                size=len(m.data),
                seen=(m.seen or m.deleted) if imap else None,
                folder=self._folder if imap else None,
                uidvalidity=self.server.uidvalidity.get(self._folder) if imap else None,
            )
            for i, m in enumerate(self._listing, start=1)
        )
        self.server.log.append(f"select {self._folder}")
        return FolderListing(
            folder=self._folder if imap else None,
            count=len(refs),
            total_octets=sum(len(m.data) for m in self._listing),
            messages=refs,
            uidvalidity=self.server.uidvalidity.get(self._folder) if imap else None,
        )

    def _find(self, ref: MessageRef) -> FakeMessage:
        if self.server.protocol == "IMAP" and ref.uid is not None:
            # Like ImapSource (UID commands): refs stay valid after an EXPUNGE.
            return next(m for m in self.server.folders[self._folder] if m.uid == ref.uid)
        return self._listing[ref.number - 1]

    def retrieve(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, SpooledMessage]]:
        for ref in refs:
            self._alive()
            m = self._find(ref)
            if m.uid == self.server.drop_connection_at_uid:
                self.dead = True
                raise SocketError("fake: connection lost")
            if m.uid in self.server.retr_errors:
                self.server.log.append(f"retr-error {m.uid}")
                raise ServerError(f"fake: cannot fetch {m.uid}")
            self.server.log.append(f"retr {m.uid}")
            self._tick(f"retrieve {m.uid}")
            self._step()
            yield ref, SpooledMessage.from_bytes(m.data, announced_size=ref.size)

    def mark_seen(self, ref: MessageRef) -> None:
        self._alive()
        self._tick(f"mark_seen {self._find(ref).uid}")
        if self.server.protocol == "IMAP":
            self._find(ref).seen = True
        self.server.log.append(f"seen {self._find(ref).uid}")

    def delete(self, ref: MessageRef) -> None:
        self._alive()
        m = self._find(ref)
        self._tick(f"delete {m.uid}")
        error = None
        if m.uid in self.server.dele_errors:
            error = f"fake: cannot delete {m.uid}"
            self.server.log.append(f"delete-refused {m.uid}")
        else:
            if self.server.protocol == "IMAP":
                m.deleted = m.seen = True
            else:
                self._pop_deleted.add(m.uid)
            self.server.log.append(f"delete {m.uid}")
        due = self._ops + 1 + self.server.confirm_delay  # counted after this delete
        self._unanswered.append((due, DeletionReply(ref, error)))
        self._step()

    def expunge(self) -> None:
        self._alive()
        self._settle(everything=True)
        if self.server.protocol != "IMAP":
            return
        self._tick("expunge")
        box = self.server.folders.get(self._folder, [])
        self.server.folders[self._folder] = [m for m in box if not m.deleted]
        self._listing = [m for m in self._listing if not m.deleted]  # renumbers, like IMAP
        self.server.log.append("expunge")

    def close(self, commit: bool = True) -> None:
        if self.dead or self.closed:
            return
        if commit:
            self._settle(everything=True)
            self._tick("quit")
            if self.server.protocol == "IMAP":
                for name, box in self.server.folders.items():
                    self.server.folders[name] = [m for m in box if not m.deleted]
            else:
                box = self.server.folders.get("INBOX", [])
                self.server.folders["INBOX"] = [m for m in box if m.uid not in self._pop_deleted]
        self.server.log.append("quit" if commit else "drop")
        self.closed = True


class FakeSource:
    """A :class:`~pyfetchmail.protocols.base.MailSource` opening :class:`FakeSession` s."""

    def __init__(self, server: FakeServer, open_error: Exception | None = None) -> None:
        self.server = server
        self.open_errors: list[Exception] = [open_error] if open_error else []
        self.sessions: list[FakeSession] = []

    def open(self) -> FakeSession:
        if self.open_errors:
            raise self.open_errors.pop(0)
        self.server.sessions += 1
        session = FakeSession(self.server)
        self.sessions.append(session)
        return session


@dataclass(frozen=True)
class FakePrepared:
    message: SpooledMessage
    envelope: Envelope
    warnings: tuple[str, ...] = ()
    refused: str | None = None


def fake_prepare(
    refuse: Callable[[bytes], str | None] | None = None,
) -> Callable[..., FakePrepared]:
    """A ``PollContext.prepare`` stand-in: no header changes, fixed envelope."""

    def prepare(
        msg: SpooledMessage, query: Any, ctx: Any, origin: Any, previous: bytes | None
    ) -> FakePrepared:
        reason = refuse(msg.read_all()) if refuse else None
        return FakePrepared(msg, Envelope("sender@remote.example", ("joe@localhost",)), (), reason)

    return prepare


class FakeDelivery:
    """A :class:`~pyfetchmail.delivery.base.Delivery` recording what it accepted.

    *reply* maps message bytes to ``(code, text)``; default 250.  2xx is
    ACCEPTED, 4xx TEMPFAIL, 5xx PERMFAIL; codes in *antispam* set ``spam``.
    *chaos* ticks ``deliver-acked`` after the message counts as delivered:
    a kill there is the in-flight duplicate window.
    """

    def __init__(
        self,
        reply: Callable[[bytes], tuple[int, str]] | None = None,
        *,
        antispam: tuple[int, ...] = (),
        chaos: Chaos | None = None,
        broken: Exception | None = None,
    ) -> None:
        self.reply = reply or (lambda data: (250, "ok"))
        self.antispam = antispam
        self.chaos = chaos
        self.broken = broken
        self.accepted: list[bytes] = []
        self.attempts: list[bytes] = []
        self.closed = 0

    def deliver(self, message: SpooledMessage, envelope: Envelope) -> DeliveryResult:
        if self.broken is not None:
            raise self.broken
        data = message.read_all()
        self.attempts.append(data)
        code, text = self.reply(data)
        rcpt = tuple(RecipientResult(r, 250, "ok") for r in envelope.recipients)
        if 200 <= code < 300:
            self.accepted.append(data)
            if self.chaos is not None:
                self.chaos.tick("deliver-acked")
            return DeliveryResult(Outcome.ACCEPTED, code, text, rcpt, where="fake/25")
        outcome = Outcome.TEMPFAIL if code < 500 else Outcome.PERMFAIL
        return DeliveryResult(
            outcome, code, text, rcpt, spam=code in self.antispam, where="fake/25"
        )

    def close(self) -> None:
        self.closed += 1


def make_query(
    protocol: MailProtocol = MailProtocol.POP3, *, uidl: bool = False, **user_options: Any
) -> Query:
    """A query for user ``joe`` at ``mail.example`` with the given user options."""
    server = Server(pollname="mail.example", protocol=protocol, dns=False, uidl=uidl)
    return Query(server=server, user=User(remote="joe", **user_options))


@dataclass
class Rig:
    """A server, a delivery and a UID store wired into a PollContext."""

    server: FakeServer
    delivery: FakeDelivery
    idfile: str | None
    bounces: list[BounceRequest] = field(default_factory=list)
    refuse: Callable[[bytes], str | None] | None = None
    check: bool = False
    softbounce: bool = True
    spambounce: bool = False
    fs: FileSystem | None = None
    store: UidStore | None = None
    source: FakeSource | None = None

    def context(self, *, reload: bool = True) -> PollContext:
        if reload or self.store is None:
            self.store = UidStore.load(self.idfile, self.fs)
        self.source = FakeSource(self.server)
        source = self.source

        def bounce(req: BounceRequest, ctx: PollContext) -> None:
            self.bounces.append(req)

        return PollContext(
            run=RunControl(softbounce=self.softbounce, spambounce=self.spambounce),
            options=CommandLineOptions(check=self.check),
            identity=None,
            uidstore=self.store,
            source_factory=lambda q, p, c: source,
            delivery_factory=lambda q, c, t: self.delivery,
            prepare=fake_prepare(self.refuse),
            bounce=bounce,
            resolve_truename=lambda q: q.server.queryname,
            sleep=lambda s: None,
        )

    def poll(self, query: Query, *, reload: bool = True) -> int:
        return poll_query(query, self.context(reload=reload))
