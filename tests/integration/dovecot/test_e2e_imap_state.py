"""End to end over IMAP: which messages are "new", across polls and server changes.

The rules under test are those documented in :mod:`pyfetchmail.engine.poll` and
:func:`pyfetchmail.engine.policy.is_new_imap`:

- default (fetchmail compatible, spec §5.3 step 9): new iff not ``\\Seen``
  and not recorded as delivered for the folder's current UIDVALIDITY, so a
  message another client has read is never fetched;
- UID mode (``uidl`` on the poll entry): new iff the UID is not recorded for
  the current UIDVALIDITY; while no baseline exists (first poll, or the
  UIDVALIDITY changed, RFC 3501 §2.3.1.1) the pass falls back to ``\\Seen``
  rather than refetching the whole folder.

The other client is a real IMAP connection (imaplib) to the same Dovecot;
UIDVALIDITY is changed with ``doveadm mailbox update --uid-validity`` after
Dovecot's UID list was rebuilt, so old UIDs are reused by other messages.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dovecot.test_e2e_imap import _bodies, _fill, _served, imap_rc
from tests.integration.e2e_helpers import E2E, sample

pytestmark = [pytest.mark.dovecot, pytest.mark.timeout(90)]


@pytest.fixture
def e2e(tmp_path: Path) -> E2E:
    return E2E(tmp_path / "home")


class OtherClient:
    """A second IMAP client (another mail reader) logged in to *user*'s INBOX."""

    def __init__(self, dovecot: Any, user: Any) -> None:
        self.imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
        self.imap.starttls(ssl.create_default_context(cafile=str(dovecot.ca_file)))
        self.imap.login(user.name, user.password)
        typ, data = self.imap.select("INBOX")
        assert typ == "OK", data

    def uids(self) -> list[int]:
        typ, data = self.imap.uid("SEARCH", "ALL")
        assert typ == "OK", data
        return [int(u) for u in (data[0] or b"").split()]

    def uidvalidity(self) -> int:
        typ, data = self.imap.status("INBOX", "(UIDVALIDITY)")
        assert typ == "OK", data
        return int(data[0].split(b"UIDVALIDITY ")[1].rstrip(b")"))

    def mark_seen(self, uid: int) -> None:
        typ, data = self.imap.uid("STORE", str(uid), "+FLAGS", r"(\Seen)")
        assert typ == "OK", data

    def close(self) -> None:
        self.imap.logout()


@pytest.mark.parametrize("keep", [True, False], ids=["keep", "nokeep"])
@pytest.mark.parametrize("uid_mode", [False, True], ids=["seen-mode", "uid-mode"])
def test_message_read_by_another_client(
    uid_mode: bool, keep: bool, e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    first_raw = _fill(mailuser, 0)
    e2e.write_rc(
        imap_rc(
            dovecot,
            mailuser,
            smtp_port=smtp_sink.port,
            server_opts="uidl" if uid_mode else "",
            user_opts="keep" if keep else "",
        )
    )
    # The first poll establishes the baseline (UID mode: "\Seen" decides on it).
    first = e2e.pyfetchmail()
    assert first.returncode == 0, first
    assert _bodies(smtp_sink) == [_served(first_raw[0])]

    read = sample(2)
    mailuser.deliver(read)
    other = OtherClient(dovecot, mailuser)
    try:
        other.mark_seen(other.uids()[-1])  # read elsewhere before our poll
    finally:
        other.close()

    second = e2e.pyfetchmail()
    third = e2e.pyfetchmail()
    assert third.returncode == 1, third
    if uid_mode:
        # Unknown UID: delivered exactly once, whatever its flags.
        assert second.returncode == 0, second
        assert _bodies(smtp_sink) == [_served(first_raw[0]), _served(read)]
        assert mailuser.messages() == ([first_raw[0], read] if keep else [])
    else:
        # fetchmail compatible: \Seen means old; never fetched, left alone.
        assert second.returncode == 1, second
        assert _bodies(smtp_sink) == [_served(first_raw[0])]
        assert mailuser.messages() == ([first_raw[0], read] if keep else [read])


def _doveadm(dovecot: Any, *args: str) -> None:
    conf = Path(dovecot.base) / "dovecot.conf"
    doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
    root = os.geteuid() == 0
    subprocess.run(
        [doveadm, "-c", str(conf), *args],
        check=True,
        capture_output=True,
        timeout=30,
        user=dovecot.uid if root else None,
        group=dovecot.gid if root else None,
    )


def _rebuild_uid_list(dovecot: Any, user: Any, uidvalidity: int) -> None:
    """Make Dovecot number the INBOX afresh (UIDs from 1) under *uidvalidity*."""
    for path in user.maildir.iterdir():
        if path.name.startswith(("dovecot-uidlist", "dovecot.index")):
            path.unlink()
    _doveadm(dovecot, "mailbox", "update", "-u", user.name, "--uid-validity", str(uidvalidity),
             "INBOX")  # fmt: skip


@pytest.mark.parametrize("uid_mode", [False, True], ids=["seen-mode", "uid-mode"])
def test_uidvalidity_change_loses_nothing_and_refetches_nothing(
    uid_mode: bool, e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    if shutil.which("doveadm") is None and not Path("/usr/bin/doveadm").exists():
        pytest.skip("doveadm is not installed")
    kept = _fill(mailuser, 0, 0)
    e2e.write_rc(
        imap_rc(
            dovecot,
            mailuser,
            smtp_port=smtp_sink.port,
            server_opts="uidl" if uid_mode else "",
            user_opts="keep",
        )
    )
    first = e2e.pyfetchmail()
    assert first.returncode == 0, first
    assert _bodies(smtp_sink) == [_served(raw) for raw in kept]
    other = OtherClient(dovecot, mailuser)
    try:
        old_validity, old_uids = other.uidvalidity(), other.uids()
    finally:
        other.close()
    assert old_uids == [1, 2]

    # The second kept message disappears, a new one arrives, and the server
    # renumbers: the new message gets UID 2, a UID already recorded as
    # delivered under the old UIDVALIDITY.
    mailuser.message_files()[1].unlink()
    new = sample(3)
    mailuser.deliver(new)
    _rebuild_uid_list(dovecot, mailuser, old_validity + 1000)
    other = OtherClient(dovecot, mailuser)
    try:
        assert other.uidvalidity() == old_validity + 1000
        assert other.uids() == [1, 2]
    finally:
        other.close()

    second = e2e.pyfetchmail()
    assert second.returncode == 0, second
    # Nothing lost (the new message under a reused UID arrives), no mass
    # refetch (the kept, \Seen message is not delivered again).
    assert _bodies(smtp_sink) == [_served(raw) for raw in kept] + [_served(new)]
    assert "UIDVALIDITY" in second.output
    assert mailuser.messages() == [kept[0], new]

    third = e2e.pyfetchmail()
    assert third.returncode == 1, third
    assert len(smtp_sink.received) == 3


def test_uid_mode_first_poll_takes_seen_as_baseline(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    # No recorded UIDVALIDITY yet: \Seen decides, and what it called old stays
    # old by UID afterwards (no mass fetch of a mailbox read elsewhere).
    raws = _fill(mailuser, 0, 0)
    mailuser.set_seen(0)
    e2e.write_rc(
        imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, server_opts="uidl", user_opts="keep")
    )
    first = e2e.pyfetchmail()
    assert first.returncode == 0, first
    assert _bodies(smtp_sink) == [_served(raws[1])]
    second = e2e.pyfetchmail()
    assert second.returncode == 1, second
    assert len(smtp_sink.received) == 1
    assert mailuser.messages() == raws
