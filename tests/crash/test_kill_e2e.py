"""SIGKILL the real ``pyfetchmail`` CLI mid-poll, again and again; lose nothing.

The installed console script fetches 300 messages from the private Dovecot
(POP3 and IMAP) into the aiosmtpd sink.  Each round kills it with SIGKILL:
from the sink's end-of-data handler *before* the 250 reply is sent, a few
milliseconds *after* it, or at a random time.  Then it is run again from its
state files until the mailbox is empty.  Checked after every kill: the idfile
reads by fetchmail's rules and the sidecar is valid JSON.  Checked at the end:
every message arrived at least once, and there are no more duplicates than
kills (only the message in flight at a kill may arrive twice).

Shared with ``test_imap_kill.py`` (import them from here rather than copy):
``_message``, ``_write_rc``, ``_check_state`` and ``_Killer`` (subclass it
to remember the message in flight or add timed kills).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pyfetchmail.state.uidstore import SIDECAR_SUFFIX, UidStore

pytestmark = [pytest.mark.slow, pytest.mark.dovecot]

N_MESSAGES = 300
KILL_ROUNDS = 12
_SEQ = re.compile(rb"^X-Seq: (\d+)\r?$", re.MULTILINE)


def _message(n: int) -> bytes:
    return (
        f"From: sender{n}@remote.example\nTo: joe@remote.example\n"
        f"Subject: crash test {n}\nMessage-ID: <crash{n}@remote.example>\nX-Seq: {n}\n\n"
        f"body of message {n}\n" + "filler line\n" * (n % 40)
    ).encode()


def _write_rc(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _check_state(idfile: Path) -> None:
    UidStore.load(str(idfile))  # raises on anything unreadable
    if idfile.exists():
        for line in idfile.read_text().splitlines():
            userhost, _, uid = line.partition(" ")
            assert "@" in userhost, f"bad idfile line {line!r}"
            assert uid.strip(), f"bad idfile line {line!r}"
    sidecar = Path(str(idfile) + SIDECAR_SUFFIX)
    if sidecar.exists():
        assert json.loads(sidecar.read_text())["format"] == "pyfetchmail-state"


class _Killer:
    """Kills the running client at the n-th end-of-data, before or after replying."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.kill_at = 0
        self.after = False
        self.count = 0

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)

    def policy(self, stage: str, arg: Any) -> str | None:
        if stage != "DATA":
            return None
        self.count += 1
        if self.count == self.kill_at:
            if self.after:
                threading.Timer(0.003, self.kill).start()  # the 250 goes out first
            else:
                self.kill()  # dead before the reply: the sink still keeps the message
        return None


@pytest.mark.timeout(600)
@pytest.mark.parametrize("proto", ["pop3", "imap"])
def test_sigkill_anywhere_loses_nothing(
    proto: str, dovecot: Any, mailuser: Any, smtp_sink: Any, tmp_path: Path
) -> None:
    for n in range(N_MESSAGES):
        mailuser.deliver(_message(n))
    port = dovecot.pop3_port if proto == "pop3" else dovecot.imap_port
    rc = tmp_path / "fetchmailrc"
    _write_rc(
        rc,
        f"poll 127.0.0.1 proto {proto} port {port} no dns\n"
        f'  user "{mailuser.name}" password "{mailuser.password}" is joe here\n'
        f"  sslproto '' smtphost 127.0.0.1/{smtp_sink.port}\n",
    )
    idfile = tmp_path / "fetchids"
    argv = ["pyfetchmail", "-f", str(rc), "-i", str(idfile), "--pidfile", str(tmp_path / "pid")]
    env = dict(os.environ, HOME=str(tmp_path))
    killer = _Killer()
    smtp_sink.policy = killer.policy
    rng = random.Random(20261121)
    kills = 0
    for round_no in range(KILL_ROUNDS + 10):
        killing = round_no < KILL_ROUNDS
        killer.count = 0
        killer.kill_at = rng.randint(1, 25) if killing and round_no % 3 != 2 else 0
        killer.after = round_no % 2 == 1
        timer = None
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        killer.proc = proc
        if killing and round_no % 3 == 2:
            timer = threading.Timer(rng.uniform(0.05, 0.8), killer.kill)
            timer.start()
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            if timer is not None:
                timer.cancel()
            killer.proc = None
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        else:
            assert proc.returncode in (0, 1), err.decode(errors="replace")
        _check_state(idfile)
        if not killing and proc.returncode == 1 and not mailuser.messages():
            break
    else:
        pytest.fail(f"mailbox not emptied: {len(mailuser.messages())} messages left")
    assert kills >= KILL_ROUNDS // 2, "too few rounds were actually killed to mean anything"
    seqs = Counter(int(m.group(1)) for r in smtp_sink.received if (m := _SEQ.search(r.data)))
    missing = set(range(N_MESSAGES)) - set(seqs)
    assert not missing, f"lost messages: {sorted(missing)[:20]}"
    duplicates = sum(c - 1 for c in seqs.values())
    assert duplicates <= kills, f"{duplicates} duplicates for {kills} kills"
    assert not idfile.exists()  # everything expunged: nothing left to remember
