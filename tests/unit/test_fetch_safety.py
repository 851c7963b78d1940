"""The mail-safety rules of pyfetchmail.engine.poll, one test each, plus a kill matrix.

The kill matrix runs a poll, "kills -9" it at every event in turn (sink
acknowledgement, state write, state rename, DELE/STORE, EXPUNGE, QUIT),
reruns it from the state on disk, and checks: every message delivered at
least once, at most one duplicate per kill, the idfile always readable by
fetchmail's rules, and the server finally in the expected state.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pyfetchmail.config.model import MailProtocol
from pyfetchmail.exitcodes import ExitCode
from pyfetchmail.state.uidstore import JOURNAL_SUFFIX, FileSystem, UidStore
from tests.fakes.memory import (
    Chaos,
    ChaosFileSystem,
    FakeDelivery,
    FakeServer,
    Killed,
    Rig,
    make_message,
    make_query,
)

N_MESSAGES = 4


def _rig(tmp_path: Path, protocol: str, chaos: Chaos) -> Rig:
    server = FakeServer.with_messages(N_MESSAGES, protocol=protocol, chaos=chaos)
    return Rig(
        server, FakeDelivery(chaos=chaos), str(tmp_path / "fetchids"), fs=ChaosFileSystem(chaos)
    )


def _subdir(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir()
    return path


def _events(protocol: str, options: dict[str, Any], tmp_path: Path) -> list[str]:
    chaos = Chaos()
    r = _rig(tmp_path, protocol, chaos)
    query = make_query(MailProtocol[protocol], **options)
    assert r.poll(query) == ExitCode.SUCCESS
    return chaos.events


@pytest.mark.parametrize(
    ("protocol", "options"),
    [("POP3", {}), ("POP3", {"keep": True}), ("POP3", {"expunge": 2}), ("IMAP", {}),
     ("IMAP", {"keep": True}), ("IMAP", {"expunge": 0}), ("IMAP", {"uidl": True, "expunge": 3})],
)  # fmt: skip
def test_rule1_ack_then_record_then_act(
    protocol: str, options: dict[str, Any], tmp_path: Path
) -> None:
    """Rules 1 and 2: for each message, sink ack < state durable < DELE/STORE."""
    events = _events(protocol, {k: v for k, v in options.items() if k != "uidl"}, tmp_path)
    for n in range(1, N_MESSAGES + 1):
        act = next(
            i for i, e in enumerate(events) if e in (f"delete uid-{n}", f"mark_seen uid-{n}")
        )
        ack = [i for i, e in enumerate(events) if e == "deliver-acked"][n - 1]
        renamed = [
            i
            for i, e in enumerate(events)
            if e in ("state-renamed", "journal-synced") and ack < i < act
        ]
        assert ack < act
        assert renamed, f"no durable state write between ack and action for uid-{n}: {events}"


@pytest.mark.parametrize(
    ("protocol", "options"),
    [("POP3", {}), ("POP3", {"keep": True}), ("POP3", {"expunge": 2}), ("POP3", {"fetchlimit": 3}),
     ("IMAP", {}), ("IMAP", {"keep": True}), ("IMAP", {"expunge": 0}), ("IMAP", {"expunge": 2}),
     ("IMAP", {"keep": True, "uidl": True})],
)  # fmt: skip
def test_kill_matrix(protocol: str, options: dict[str, Any], tmp_path: Path) -> None:
    """Rule 5: kill -9 at every event; rerun; zero loss, at most one duplicate."""
    uidl = options.pop("uidl", False)
    query = make_query(MailProtocol[protocol], uidl=uidl, **options)
    dry = tmp_path / "dry"
    dry.mkdir()
    chaos = Chaos()
    _rig(dry, protocol, chaos).poll(query)
    total_events = chaos.count
    assert total_events >= 3 * N_MESSAGES
    for kill_at in range(1, total_events + 1):
        workdir = tmp_path / f"kill{kill_at}"
        workdir.mkdir()
        chaos = Chaos(kill_at)
        r = _rig(workdir, protocol, chaos)
        with pytest.raises(Killed):
            r.poll(query)
        assert chaos.fired
        # Restart: no more kills, state from disk only.
        r.server.chaos = Chaos()
        r.delivery.chaos = None
        r.fs = FileSystem()
        for _ in range(4):
            _assert_state_readable(r.idfile)
            if r.poll(query) == ExitCode.NOMAIL:
                break
        got = Counter(r.delivery.accepted)
        where = f"killed at event {kill_at} ({chaos.events[-1]})"
        for n in range(1, N_MESSAGES + 1):
            assert got[make_message(n)] >= 1, f"message {n} lost, {where}"
        duplicates = sum(c - 1 for c in got.values())
        assert duplicates <= 1, f"{duplicates} duplicates, {where}"
        if not _in_flight(chaos.events):
            assert duplicates == 0, f"duplicate outside the in-flight window, {where}"
        if options.get("keep"):
            assert len(r.server.remaining()) == N_MESSAGES
        else:
            assert r.server.remaining() == [], where
            # Nothing left to remember once everything is expunged.
            assert not Path(r.idfile).exists(), where


def _in_flight(events: list[str]) -> bool:
    """Killed after a sink acknowledgement and before its record became durable?"""
    acks = [i for i, e in enumerate(events) if e == "deliver-acked"]
    renames = [i for i, e in enumerate(events) if e in ("state-renamed", "journal-synced")]
    # A kill at "state-renamed" comes after the rename: that record is durable.
    return bool(acks) and (not renames or renames[-1] < acks[-1])


def _assert_state_readable(idfile: str | None) -> None:
    assert idfile is not None
    UidStore.load(idfile)  # raises on an unreadable file
    path = Path(idfile)
    if path.exists():
        for line in path.read_text().splitlines():
            user, _, uid = line.partition(" ")
            assert "@" in user, line
            assert uid, line


def test_rule3_recorded_message_still_on_server_is_deleted_not_redelivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    chaos = Chaos()
    r = _rig(tmp_path, "POP3", chaos)
    chaos.kill_at = len(_events("POP3", {}, _subdir(tmp_path, "dry")))
    # Killed at the very last event (QUIT): all DELEs are rolled back by the server.
    with pytest.raises(Killed):
        r.poll(make_query())
    assert chaos.events[-1] == "quit"
    assert r.server.remaining() == [f"uid-{n}" for n in range(1, N_MESSAGES + 1)]
    sidecar = UidStore.load(r.idfile).folder_state("joe", "mail.example")
    assert sidecar.pending_delete == {f"uid-{n}" for n in range(1, N_MESSAGES + 1)}  # Rule 4
    r.server.chaos = Chaos()
    r.fs = FileSystem()
    r.server.log.clear()
    assert r.poll(make_query()) == ExitCode.NOMAIL
    assert not any(e.startswith("retr") for e in r.server.log)
    assert r.server.remaining() == []
    assert len(r.delivery.accepted) == N_MESSAGES
    assert "id=uid-1 (num=1) was delivered earlier but is still on the server; deleting it" in (
        caplog.messages
    )


def test_rule3_imap_lost_seen_flag_does_not_redeliver(tmp_path: Path) -> None:
    """keep: killed after recording, before STORE \\Seen: not fetched again, marked seen."""
    r = Rig(FakeServer.with_messages(1, protocol="IMAP"), FakeDelivery(), str(tmp_path / "ids"))
    chaos = r.server.chaos = Chaos()
    query = make_query(MailProtocol.IMAP, keep=True)
    chaos.kill_at = 2  # retrieve, mark_seen
    with pytest.raises(Killed):
        r.poll(query)
    assert chaos.events == ["retrieve uid-1", "mark_seen uid-1"]
    assert r.server.folders["INBOX"][0].seen is False
    r.server.chaos = Chaos()
    assert r.poll(query) == ExitCode.NOMAIL
    assert len(r.delivery.accepted) == 1
    assert r.server.folders["INBOX"][0].seen is True  # repaired, not re-delivered


class _BrokenDisk(FileSystem):
    def write_new(self, path: str, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    def append(self, path: str, data: bytes) -> bool:
        raise OSError(28, "No space left on device")


def test_failed_state_write_stops_before_the_delete(tmp_path: Path) -> None:
    """Rule 5, second half: no durable record, no DELE (a later duplicate, never a loss)."""
    r = Rig(FakeServer.with_messages(2), FakeDelivery(), str(tmp_path / "ids"), fs=_BrokenDisk())
    assert r.poll(make_query()) == ExitCode.IOERR
    assert r.server.remaining() == ["uid-1", "uid-2"]
    assert not any(e.startswith("delete") for e in r.server.log)
    assert len(r.delivery.accepted) == 1


def test_state_is_saved_after_every_message(tmp_path: Path) -> None:
    chaos = Chaos()
    r = _rig(tmp_path, "POP3", chaos)
    # Kill at the second DELE: the first two messages must already be on disk.
    events = _events("POP3", {}, _subdir(tmp_path, "dry"))
    chaos.kill_at = events.index("delete uid-2") + 1
    with pytest.raises(Killed):
        r.poll(make_query())
    store = UidStore.load(r.idfile)
    assert store.seen("joe", "mail.example") == {"uid-1", "uid-2"}
    assert store.folder_state("joe", "mail.example").pending_delete == {"uid-1", "uid-2"}
    assert Path(r.idfile + JOURNAL_SUFFIX).exists()  # one append per message, not rewrites


def test_keep_leaves_a_message_marked_unread_later_alone(tmp_path: Path) -> None:
    r = Rig(FakeServer.with_messages(1, protocol="IMAP"), FakeDelivery(), str(tmp_path / "ids"))
    query = make_query(MailProtocol.IMAP, keep=True)
    assert r.poll(query) == ExitCode.SUCCESS
    r.server.folders["INBOX"][0].seen = False  # "mark as unread" in a webmail
    assert r.poll(query) == ExitCode.NOMAIL  # not delivered again ...
    assert r.server.folders["INBOX"][0].seen is False  # ... and the user's choice stays
    assert len(r.delivery.accepted) == 1
