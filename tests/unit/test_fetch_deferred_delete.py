"""The engine with deletion replies that arrive late or refuse (in-memory fakes).

A pipelining POP3 session answers DELE several messages later; the engine
must count and log `` flushed`` only once a reply confirmed the deletion,
keep the log in message order, and leave a refused deletion pending for
the next poll.  A kill matrix repeats Rule 5 under delayed replies.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pyfetchmail.config.model import MailProtocol
from pyfetchmail.engine.poll import process_session
from pyfetchmail.engine.stats import PollStats
from pyfetchmail.exitcodes import ExitCode
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.protocols.base import FolderListing, MessageRef
from pyfetchmail.state.uidstore import FileSystem, UidStore
from tests.fakes.memory import (
    Chaos,
    ChaosFileSystem,
    FakeDelivery,
    FakeServer,
    FakeSession,
    Killed,
    Rig,
    make_message,
    make_query,
)

N = 6


class _Recorder(logging.Handler):
    """Keeps each engine INFO/WARNING line with how many replies were reported by then."""

    def __init__(self, session: FakeSession | None = None) -> None:
        super().__init__(logging.INFO)
        self.session = session
        self.lines: list[tuple[str, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        known = len(self.session.replies_reported) if self.session else -1
        self.lines.append((record.getMessage(), known))


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    handler = _Recorder()
    logger = logging.getLogger("pyfetchmail")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _session_run(
    tmp_path: Path, server: FakeServer, recorder: _Recorder, **options: object
) -> tuple[PollStats, FakeSession, Rig]:
    rig = Rig(server, FakeDelivery(), str(tmp_path / "fetchids"))
    ctx = rig.context()
    session = FakeSession(server)
    recorder.session = session
    query = make_query(MailProtocol[server.protocol], **options)  # type: ignore[arg-type]
    stats = process_session(session, query, ctx)
    return stats, session, rig


def _reading(recorder: _Recorder) -> list[tuple[str, int]]:
    return [(text, known) for text, known in recorder.lines if text.startswith("reading")]


def _size(n: int) -> int:
    return len(make_message(n))


@pytest.mark.parametrize("protocol", ["POP3", "IMAP"])
@pytest.mark.parametrize("delay", [0, 1, 3, 10])
def test_delayed_confirmations_log_in_order_after_the_reply(
    protocol: str, delay: int, tmp_path: Path, recorder: _Recorder
) -> None:
    server = FakeServer.with_messages(N, protocol=protocol, confirm_delay=delay)
    stats, _session, _ = _session_run(tmp_path, server, recorder)
    reading = _reading(recorder)
    assert [text for text, _ in reading] == [
        f"reading message joe@mail.example:{n} of {N} ({_size(n)} octets) flushed"
        for n in range(1, N + 1)
    ]
    # "flushed" only after the reply for that message (and all before it) was reported.
    for n, (_, known) in enumerate(reading, start=1):
        assert known >= n
    assert stats.deleted == N
    assert stats.delivered == N
    if protocol == "POP3":
        assert stats.uncommitted == {f"uid-{n}" for n in range(1, N + 1)}


def test_counters_count_only_confirmed_deletions(tmp_path: Path, recorder: _Recorder) -> None:
    server = FakeServer.with_messages(N, confirm_delay=2, dele_errors={"uid-2", "uid-5"})
    stats, _, _ = _session_run(tmp_path, server, recorder)
    assert stats.deleted == N - 2
    assert stats.uncommitted == {"uid-1", "uid-3", "uid-4", "uid-6"}
    suffixes = [text.rsplit(")", 1)[1] for text, _ in _reading(recorder)]
    assert suffixes == [
        " flushed",
        " not flushed",
        " flushed",
        " flushed",
        " not flushed",
        " flushed",
    ]


def test_kept_messages_wait_behind_unconfirmed_deletions(
    tmp_path: Path, recorder: _Recorder
) -> None:
    # Message 3 is refused temporarily by the sink (kept, " not flushed"): its
    # line must still come after the lines of messages 1 and 2.
    server = FakeServer.with_messages(5, confirm_delay=4)
    rig = Rig(
        server,
        FakeDelivery(lambda data: (451, "later") if b"message 3" in data else (250, "ok")),
        str(tmp_path / "fetchids"),
    )
    session = FakeSession(server)
    recorder.session = session
    stats = process_session(session, make_query(), rig.context())
    texts = [text for text, _ in _reading(recorder)]
    assert [t.split(":")[1].split(" ")[0] for t in texts] == ["1", "2", "3", "4", "5"]
    assert texts[2].endswith(" not flushed")
    assert texts[1].endswith(" flushed")
    assert stats.deleted == 4
    assert stats.transient == 1


def test_refused_dele_stays_pending_and_is_deleted_next_poll(
    tmp_path: Path, recorder: _Recorder
) -> None:
    server = FakeServer.with_messages(N, confirm_delay=3, dele_errors={"uid-4"})
    rig = Rig(server, FakeDelivery(), str(tmp_path / "fetchids"))
    assert rig.poll(make_query()) == ExitCode.SUCCESS
    assert len(rig.delivery.accepted) == N
    assert server.remaining() == ["uid-4"]  # the others were deleted at QUIT
    warnings = [text for text, _ in recorder.lines if "not deleted" in text]
    assert len(warnings) == 1
    assert "mail.example:4" in warnings[0]
    line4 = [t for t, _ in _reading(recorder) if ":4 of" in t]
    assert line4 == [f"reading message joe@mail.example:4 of {N} ({_size(4)} octets) not flushed"]
    store = UidStore.load(rig.idfile)
    assert store.folder_state("joe", "mail.example").pending_delete == {"uid-4"}
    assert store.seen("joe", "mail.example") >= {"uid-4"}
    # Next poll: the server accepts the DELE; nothing is fetched again.
    server.dele_errors.clear()
    assert rig.poll(make_query()) == ExitCode.NOMAIL
    assert len(rig.delivery.accepted) == N
    assert server.remaining() == []
    assert UidStore.load(rig.idfile).folder_state("joe", "mail.example").pending_delete == set()


def test_refused_deletion_of_a_pending_message_is_retried(tmp_path: Path) -> None:
    server = FakeServer.with_messages(2, confirm_delay=1, dele_errors={"uid-1"})
    rig = Rig(server, FakeDelivery(), str(tmp_path / "fetchids"))
    rig.poll(make_query())
    assert server.remaining() == ["uid-1"]
    rig.poll(make_query())  # still refused: kept pending, not refetched
    assert server.remaining() == ["uid-1"]
    server.dele_errors.clear()
    rig.poll(make_query())
    assert server.remaining() == []
    assert len(rig.delivery.accepted) == 2


def test_oversized_flush_logged_after_confirmation(tmp_path: Path, recorder: _Recorder) -> None:
    server = FakeServer.with_messages(3, confirm_delay=5)
    server.add("INBOX", make_message(9, b"x" * 5000), uid="big")
    stats, _, _ = _session_run(tmp_path, server, recorder, limit=1000, limitflush=True)
    skipping = [t for t, _ in recorder.lines if t.startswith("skipping")]
    assert skipping == [
        f"skipping message joe@mail.example:4 ({len(make_message(9, b'x' * 5000))} octets)"
        " (oversized) flushed"
    ]
    assert [o.flushed for o in stats.oversized] == [True]
    assert stats.deleted == 4


class _SynchronousSession:
    """A session written before deletion replies existed: delete() confirms."""

    def __init__(self, inner: FakeSession) -> None:
        self.inner = inner
        self.protocol_name = inner.protocol_name
        self.peer_address = inner.peer_address

    def select(self, folder: str | None) -> FolderListing:
        return self.inner.select(folder)

    def retrieve(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, SpooledMessage]]:
        return self.inner.retrieve(refs)

    def mark_seen(self, ref: MessageRef) -> None:
        self.inner.mark_seen(ref)

    def delete(self, ref: MessageRef) -> None:
        self.inner.delete(ref)

    def expunge(self) -> None:
        self.inner.expunge()

    def close(self, commit: bool = True) -> None:
        self.inner.close(commit)


def test_session_without_deletion_replies_is_treated_as_synchronous(
    tmp_path: Path, recorder: _Recorder
) -> None:
    server = FakeServer.with_messages(3)
    rig = Rig(server, FakeDelivery(), str(tmp_path / "fetchids"))
    session = _SynchronousSession(FakeSession(server))
    stats = process_session(session, make_query(), rig.context())  # type: ignore[arg-type]
    assert stats.deleted == 3
    assert all(t.endswith(" flushed") for t, _ in _reading(recorder))


def test_failure_mid_folder_logs_unconfirmed_as_not_flushed(
    tmp_path: Path, recorder: _Recorder
) -> None:
    server = FakeServer.with_messages(4, confirm_delay=10, drop_connection_at_uid="uid-3")
    rig = Rig(server, FakeDelivery(), str(tmp_path / "fetchids"))
    assert rig.poll(make_query()) != ExitCode.SUCCESS
    texts = [t for t, _ in _reading(recorder)]
    assert texts == [
        f"reading message joe@mail.example:{n} of 4 ({_size(n)} octets) not flushed" for n in (1, 2)
    ]
    # Both stay recorded as pending and on the server; the next poll deletes them.
    server.drop_connection_at_uid = None
    rig.poll(make_query())
    assert server.remaining() == []
    assert Counter(rig.delivery.accepted) == Counter(make_message(n) for n in range(1, 5))


@pytest.mark.parametrize("options", [{}, {"expunge": 2}])
def test_kill_matrix_with_delayed_replies(options: dict[str, object], tmp_path: Path) -> None:
    """Rule 5 under late DELE replies: kill at every event, rerun, zero loss."""
    query = make_query(**options)  # type: ignore[arg-type]

    def rig(workdir: Path, chaos: Chaos) -> Rig:
        server = FakeServer.with_messages(4, chaos=chaos, confirm_delay=2)
        return Rig(server, FakeDelivery(chaos=chaos), str(workdir / "fetchids"),
                   fs=ChaosFileSystem(chaos))  # fmt: skip

    dry = tmp_path / "dry"
    dry.mkdir()
    chaos = Chaos()
    rig(dry, chaos).poll(query)
    for kill_at in range(1, chaos.count + 1):
        workdir = tmp_path / f"kill{kill_at}"
        workdir.mkdir()
        killer = Chaos(kill_at)
        r = rig(workdir, killer)
        with pytest.raises(Killed):
            r.poll(query)
        r.server.chaos, r.delivery.chaos, r.fs = Chaos(), None, FileSystem()
        for _ in range(4):
            if r.poll(query) == ExitCode.NOMAIL:
                break
        got = Counter(r.delivery.accepted)
        where = f"killed at event {kill_at} ({killer.events[-1]})"
        assert all(got[make_message(n)] >= 1 for n in range(1, 5)), where
        assert sum(c - 1 for c in got.values()) <= 1, where
        assert r.server.remaining() == [], where
