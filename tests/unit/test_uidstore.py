"""UID state files: fetchmail's .fetchids format, the sidecar, atomic saving."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pyfetchmail.errors import LocalIOError
from pyfetchmail.state.uidstore import JOURNAL_SUFFIX, SIDECAR_SUFFIX, FileSystem, UidStore

# Written the way fetchmail 6.4 writes it, plus the oddities its reader accepts.
FETCHMAIL_IDS = (
    "joe@127.0.0.1 uid-aaa\n"
    "joe@127.0.0.1 uid-bbb\n"
    "  Joe@MAIL.Example.ORG <x@y.z>\n"  # leading blanks; UID with '@' (InterMail)
    "user@isp.example@pop.isp.example 17@uid\n"  # user part with '@': host after last '@'
    "garbage line without at sign\n"
    "nouid@host.example\n"
    "other@elsewhere.example  spaced-uid  trailing\n"
)


def test_parses_fetchmail_rules(tmp_path: Path) -> None:
    path = tmp_path / "ids"
    path.write_text(FETCHMAIL_IDS)
    store = UidStore.load(str(path))
    assert store.seen("joe", "127.0.0.1") == {"uid-aaa", "uid-bbb"}
    assert store.uids_for_display("joe", "127.0.0.1") == ["uid-aaa", "uid-bbb"]
    assert store.seen("JOE", "mail.example.org") == {"<x@y.z>"}  # case-insensitive
    assert store.seen("user@isp.example", "pop.isp.example") == {"17@uid"}
    assert store.seen("other", "elsewhere.example") == {"spaced-uid"}
    assert store.seen("nouid", "host.example") == set()


def test_untouched_accounts_are_written_back_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "ids"
    path.write_text(FETCHMAIL_IDS)
    store = UidStore.load(str(path))
    store.mark_seen("joe", "127.0.0.1", "uid-ccc")
    store.save()
    text = path.read_text()
    assert text.splitlines() == [
        "joe@127.0.0.1 uid-aaa",
        "joe@127.0.0.1 uid-bbb",
        "joe@127.0.0.1 uid-ccc",
        "  Joe@MAIL.Example.ORG <x@y.z>",
        "user@isp.example@pop.isp.example 17@uid",
        "other@elsewhere.example  spaced-uid  trailing",
    ]


def _fetchmail_read(text: str) -> list[tuple[str, str, str]]:
    """An independent transcription of fetchmail's uid.c reader, for round trips."""
    out = []
    for line in text.splitlines():
        user = line.lstrip(" \t")
        at = user.find("@")
        sp = user.find(" ", at) if at >= 0 else -1
        if sp < 0:
            continue
        userhost, uid = user[:sp], user[sp + 1 :].split()[0]
        last = userhost.rfind("@")
        out.append((userhost[:last], userhost[last + 1 :], uid))
    return out


def test_our_file_reads_back_with_fetchmails_rules(tmp_path: Path) -> None:
    path = tmp_path / "ids"
    store = UidStore.load(str(path))
    for uid in ("1", "<msg@id>", "x" * 70):
        store.mark_seen("me@isp", "pop.example", uid)
    store.save()
    assert _fetchmail_read(path.read_text()) == [
        ("me@isp", "pop.example", "1"),
        ("me@isp", "pop.example", "<msg@id>"),
        ("me@isp", "pop.example", "x" * 70),
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert UidStore.load(str(path)).seen("me@isp", "pop.example") == {"1", "<msg@id>", "x" * 70}


def test_forget_and_retain_only(tmp_path: Path) -> None:
    path = tmp_path / "ids"
    store = UidStore.load(str(path))
    for uid in "abcd":
        store.mark_seen("joe", "h", uid)
    store.forget("joe", "h", {"a"})
    store.retain_only("joe", "h", {"b", "c", "zz"})
    store.save()
    assert UidStore.load(str(path)).uids_for_display("joe", "h") == ["b", "c"]


def test_empty_state_removes_the_files(tmp_path: Path) -> None:
    path = tmp_path / "ids"
    store = UidStore.load(str(path))
    store.mark_seen("joe", "h", "a")
    store.update_folder("joe", "h", None, add_pending={"a"})
    store.save()
    assert path.exists()
    assert Path(str(path) + SIDECAR_SUFFIX).exists()
    store.forget("joe", "h", {"a"})
    store.update_folder("joe", "h", None, drop={"a"})
    store.save()
    assert not path.exists()
    assert not Path(str(path) + SIDECAR_SUFFIX).exists()
    assert sorted(os.listdir(tmp_path)) == []


def test_sidecar_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "ids")
    store = UidStore.load(path)
    store.update_folder("Joe", "IMAP.example", "INBOX", uidvalidity=7, add_delivered={"1", "2"})
    store.update_folder("joe", "imap.example", "INBOX", add_pending={"2"}, add_bounced={"1"})
    store.update_folder("joe", "pop.example", None, add_pending={"u1"})
    store.save()
    doc = json.loads(Path(path + SIDECAR_SUFFIX).read_text())
    assert doc["format"] == "pyfetchmail-state"
    assert doc["folders"]["joe@imap.example/INBOX"] == {
        "uidvalidity": 7,
        "delivered": ["1", "2"],
        "pending_delete": ["2"],
        "bounced": ["1"],
    }
    again = UidStore.load(path)
    st = again.folder_state("JOE", "imap.EXAMPLE", "INBOX")
    assert (st.uidvalidity, st.delivered, st.pending_delete, st.bounced) == (
        7,
        {"1", "2"},
        {"2"},
        {"1"},
    )
    assert again.folder_state("joe", "pop.example").pending_delete == {"u1"}
    # The idfile itself was never needed: nothing is seen.
    assert not Path(path).exists()


def test_reset_and_keep_only() -> None:
    store = UidStore(None)
    store.update_folder(
        "j", "h", "F", uidvalidity=1, add_delivered={"1", "2", "3"}, add_pending={"3"}
    )
    store.update_folder("j", "h", "F", keep_only={"2", "3"})
    assert store.folder_state("j", "h", "F").delivered == {"2", "3"}
    store.update_folder("j", "h", "F", uidvalidity=2, reset=True)
    st = store.folder_state("j", "h", "F")
    assert (st.uidvalidity, st.delivered, st.pending_delete) == (2, set(), set())


def test_corrupt_sidecar_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ids"
    Path(str(path) + SIDECAR_SUFFIX).write_text("{not json")
    store = UidStore.load(str(path))
    assert store.folder_state("j", "h").pending_delete == set()
    assert "ignoring unreadable pyfetchmail state" in caplog.text


def test_unreadable_idfile_is_an_io_error(tmp_path: Path) -> None:
    (tmp_path / "ids").mkdir()  # a directory cannot be read as a file, even by root
    with pytest.raises(LocalIOError, match="cannot read UID state file"):
        UidStore.load(str(tmp_path / "ids"))


class _FailingFS(FileSystem):
    def __init__(self, fail_in: str) -> None:
        self.fail_in = fail_in

    def write_new(self, path: str, data: bytes) -> None:
        if self.fail_in == "write":
            # Half the data reaches the disk, then the disk is full.
            with open(path, "wb") as fh:
                fh.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        super().write_new(path, data)

    def replace(self, src: str, dst: str) -> None:
        if self.fail_in == "rename":
            raise OSError(13, "Permission denied")
        super().replace(src, dst)


@pytest.mark.parametrize("fail_in", ["write", "rename"])
def test_failed_save_keeps_the_old_file(tmp_path: Path, fail_in: str) -> None:
    path = tmp_path / "ids"
    path.write_text("joe@h old-1\n")
    store = UidStore.load(str(path), _FailingFS(fail_in))
    store.mark_seen("joe", "h", "new-2")
    with pytest.raises(LocalIOError, match="cannot write UID state file"):
        store.save()
    assert path.read_text() == "joe@h old-1\n"
    assert not (tmp_path / "ids_").exists()  # no temp file left behind


def test_save_does_not_follow_a_planted_temp_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    path = tmp_path / "ids"
    (tmp_path / "ids_").symlink_to(victim)
    store = UidStore.load(str(path))
    store.mark_seen("joe", "h", "1")
    store.save()
    assert victim.read_text() == "precious\n"
    assert path.read_text() == "joe@h 1\n"


def test_in_memory_store_never_writes(tmp_path: Path) -> None:
    store = UidStore(None)
    store.mark_seen("joe", "h", "1")
    store.save()
    assert not store.dirty
    assert store.seen("joe", "h") == {"1"}


def test_record_appends_to_a_journal_that_save_folds_in(tmp_path: Path) -> None:
    path = tmp_path / "ids"
    store = UidStore.load(str(path))
    store.record("joe", "pop.example", None, "u1", seen=True, pending=True)
    store.record("joe", "imap.example", "INBOX", "7", delivered=True, uidvalidity=42)
    journal = Path(str(path) + JOURNAL_SUFFIX)
    assert len(journal.read_text().splitlines()) == 2
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert not path.exists()  # only the journal was written: one flush per record
    # A crash now: a fresh load replays the journal.
    again = UidStore.load(str(path))
    assert again.seen("joe", "pop.example") == {"u1"}
    assert again.folder_state("joe", "pop.example").pending_delete == {"u1"}
    imap = again.folder_state("joe", "imap.example", "INBOX")
    assert (imap.uidvalidity, imap.delivered) == (42, {"7"})
    again.save()
    assert not journal.exists()
    assert path.read_text() == "joe@pop.example u1\n"
    final = UidStore.load(str(path))
    assert final.folder_state("joe", "imap.example", "INBOX").delivered == {"7"}


def test_torn_last_journal_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "ids"
    store = UidStore.load(str(path))
    store.record("joe", "h", None, "u1", seen=True)
    store.record("joe", "h", None, "u2", seen=True)
    journal = Path(str(path) + JOURNAL_SUFFIX)
    data = journal.read_bytes()
    journal.write_bytes(data[:-10])  # the crash hit in the middle of the second append
    assert UidStore.load(str(path)).seen("joe", "h") == {"u1"}


def test_record_after_a_torn_line_survives_another_crash(tmp_path: Path) -> None:
    path = tmp_path / "ids"
    store = UidStore.load(str(path))
    store.record("joe", "h", None, "u1", seen=True)
    store.record("joe", "h", None, "u2", seen=True)
    journal = Path(str(path) + JOURNAL_SUFFIX)
    journal.write_bytes(journal.read_bytes()[:-10])  # first crash: u2's append torn
    resumed = UidStore.load(str(path))
    resumed.record("joe", "h", None, "u3", seen=True)  # delivered after the restart
    # Second crash before any full save: u3's record must not be glued to the fragment.
    assert UidStore.load(str(path)).seen("joe", "h") == {"u1", "u3"}


def test_failed_journal_append_is_an_io_error(tmp_path: Path) -> None:
    class NoSpace(FileSystem):
        def append(self, path: str, data: bytes) -> bool:
            raise OSError(28, "No space left on device")

    store = UidStore.load(str(tmp_path / "ids"), NoSpace())
    with pytest.raises(LocalIOError, match="No space left on device"):
        store.record("joe", "h", None, "u1", seen=True)
