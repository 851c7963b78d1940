"""Progress display over IMAP with the private Dovecot (spec §7.3, §7.5).

The POP3 cases against the scripted server are in fakes/test_progress_display.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyfetchmail.config.model import MailProtocol, Query, Server, User
from pyfetchmail.protocols import imap
from pyfetchmail.protocols.base import MessageRef
from tests.integration.e2e_helpers import E2E, crlf, sample

pytestmark = pytest.mark.timeout(90)


@pytest.mark.dovecot
def test_imap_verbose_dots(tmp_path: Path, smtp_sink: Any, dovecot: Any, mailuser: Any) -> None:
    raw = sample(1, size=30_000)
    mailuser.deliver(raw)
    env = E2E(tmp_path)
    env.write_rc(
        f"poll 127.0.0.1 proto imap port {dovecot.imap_port} no dns\n"
        f'  user "{mailuser.name}" password "{mailuser.password}" is joe here\n'
        f'  sslcertfile "{dovecot.ca_file}" sslcommonname localhost'
        f" smtphost 127.0.0.1/{smtp_sink.port}\n"
    )
    done = env.pyfetchmail("-v")
    assert done.returncode == 0, done
    assert len(smtp_sink.received) == 1
    size = len(crlf(raw))
    assert "." * (size // 1024) in done.stdout.splitlines(), done


@pytest.mark.dovecot
def test_imap_hook_per_batch_and_per_partial_fetch(dovecot: Any, mailuser: Any) -> None:
    small, big = sample(1, size=5000), sample(2, size=imap.CHUNK_THRESHOLD + imap.CHUNK_SIZE)
    mailuser.deliver(small)
    mailuser.deliver(big)
    server = Server(
        pollname="127.0.0.1", protocol=MailProtocol.IMAP, service=str(dovecot.imap_port), timeout=20
    )
    user = User(remote=mailuser.name, sslcertfile=str(dovecot.ca_file), sslcommonname="localhost")
    session = imap.ImapSource(Query(server, user), mailuser.password).open()
    calls: list[tuple[int, int, int | None]] = []

    def hook(ref: MessageRef, got: int, size: int | None) -> None:
        calls.append((ref.number, got, size))

    session.progress = hook
    try:
        listing = session.select(None)
        sizes = [m.size for m in listing.messages]
        got = [(ref.number, msg.size) for ref, msg in session.retrieve(listing.messages)]
    finally:
        session.close(commit=False)
    assert got == [(1, len(crlf(small))), (2, len(crlf(big)))]
    assert calls[0] == (1, len(crlf(small)), sizes[0])  # the batch: once, whole
    chunks = [c for c in calls if c[0] == 2]
    assert len(chunks) >= 5  # one per partial fetch of 1 MiB
    assert [c[1] for c in chunks] == sorted(c[1] for c in chunks)
    assert chunks[-1] == (2, len(crlf(big)), sizes[1])
