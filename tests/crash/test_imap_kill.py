"""SIGKILL ``pyfetchmail`` mid-poll over IMAP (verified STARTTLS), again and again.

Structure and helpers follow ``test_kill_e2e.py``: the installed console
script fetches 300 messages from the private Dovecot into the aiosmtpd sink
and is killed with SIGKILL, from the sink's end-of-data handler *before* the
250 reply is sent, a few milliseconds *after* it, or at a random time
after the first end-of-data of the run; then
it is run again from its state files until a run finds no mail.  Three
shapes of the IMAP state machine are exercised: the default (``expunge 1``),
``expunge 50`` (kills land between ``STORE \\Deleted`` and ``EXPUNGE``, so
the next poll finds delivered messages still on the server) and ``uidl``
with ``keep`` (nothing is deleted; UIDs alone must prevent refetching).

Checked after every kill: the idfile reads by fetchmail's rules and the
sidecar is valid JSON.  Checked at the end: every message arrived at least
once, and every duplicate is a message that was in flight at a kill (the one
whose end-of-data triggered it; a random kill may add one unknown message).
"""

from __future__ import annotations

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

from tests.crash.test_kill_e2e import _check_state, _message

pytestmark = [pytest.mark.slow, pytest.mark.dovecot]

N_MESSAGES = 300
KILL_ROUNDS = 15
_SEQ = re.compile(rb"^X-Seq: (\d+)\r?$", re.MULTILINE)


def _seq_of(data: bytes) -> int | None:
    match = _SEQ.search(data)
    return int(match.group(1)) if match else None


class _InFlightKiller:
    """Kills the client at the n-th end-of-data; remembers which message was in flight."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.kill_at = 0
        self.after = False
        self.count = 0
        self.timed_delay: float | None = None  # random kill, counted from the first DATA
        self.timers: list[threading.Timer] = []
        self.in_flight: set[int] = set()

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)

    def policy(self, stage: str, arg: Any) -> str | None:
        if stage != "DATA":
            return None
        self.count += 1
        if self.count == 1 and self.timed_delay is not None:
            timer = threading.Timer(self.timed_delay, self.kill)
            self.timers.append(timer)
            timer.start()
        if self.count == self.kill_at:
            seq = _seq_of(getattr(arg, "data", b""))
            if seq is not None:
                self.in_flight.add(seq)
            if self.after:
                threading.Timer(0.003, self.kill).start()  # the 250 goes out first
            else:
                self.kill()  # dead before the reply: the sink still keeps the message
        return None


def _write_rc(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("server_opts", "user_opts"),
    [("", ""), ("", "expunge 50"), ("uidl", "keep")],
    ids=["expunge-1", "expunge-50", "uidl-keep"],
)
def test_imap_sigkill_anywhere_loses_nothing(
    server_opts: str,
    user_opts: str,
    dovecot: Any,
    mailuser: Any,
    smtp_sink: Any,
    tmp_path: Path,
) -> None:
    for n in range(N_MESSAGES):
        mailuser.deliver(_message(n))
    keep = "keep" in user_opts
    rc = tmp_path / "fetchmailrc"
    _write_rc(
        rc,
        f"poll 127.0.0.1 proto imap service {dovecot.imap_port} no dns {server_opts}\n"
        f'  user "{mailuser.name}" password "{mailuser.password}" is joe here\n'
        f'  sslcertfile "{dovecot.ca_file}" sslcommonname localhost\n'
        f"  smtphost 127.0.0.1/{smtp_sink.port} {user_opts}\n",
    )
    idfile = tmp_path / "fetchids"
    argv = ["pyfetchmail", "-f", str(rc), "-i", str(idfile), "--pidfile", str(tmp_path / "pid")]
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    killer = _InFlightKiller()
    smtp_sink.policy = killer.policy
    rng = random.Random(f"imap-kill:{server_opts}:{user_opts}")
    kills = random_kills = 0
    for round_no in range(KILL_ROUNDS + 10):
        killing = round_no < KILL_ROUNDS
        timed = killing and round_no % 3 == 2
        killer.count = 0
        killer.kill_at = rng.randint(1, 20) if killing and not timed else 0
        killer.after = round_no % 2 == 1
        killer.timed_delay = rng.uniform(0.0, 0.15) if timed else None
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        killer.proc = proc
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            killer.proc = None
            for timer in killer.timers:
                timer.cancel()
            killer.timers.clear()
        if proc.returncode == -signal.SIGKILL:
            kills += 1
            random_kills += timed
        else:
            assert proc.returncode in (0, 1), err.decode(errors="replace")
        _check_state(idfile)
        if not killing and proc.returncode == 1:
            break
    else:
        pytest.fail(f"still finding mail: {len(mailuser.messages())} messages left")
    assert kills >= KILL_ROUNDS // 2, "too few rounds were actually killed to mean anything"

    seqs = Counter(s for r in smtp_sink.received if (s := _seq_of(r.data)) is not None)
    missing = set(range(N_MESSAGES)) - set(seqs)
    assert not missing, f"lost messages: {sorted(missing)[:20]}"
    duplicated = {s: c for s, c in seqs.items() if c > 1}
    unexplained = {s: c for s, c in duplicated.items() if s not in killer.in_flight}
    assert sum(c - 1 for c in unexplained.values()) <= random_kills, (
        f"duplicates not in flight at a kill: {unexplained}; in flight: {sorted(killer.in_flight)}"
    )
    assert sum(c - 1 for c in duplicated.values()) <= kills, duplicated
    if keep:
        assert len(mailuser.messages()) == N_MESSAGES
        # Delivered and recorded, killed before STORE +FLAGS (\Seen): the UID
        # record stops a refetch, but nothing marks it seen later (a known
        # deviation from §6.8 step 5, reported), so at most one per kill.
        unseen = [f for f in mailuser.flags() if "S" not in f]
        assert len(unseen) <= kills, unseen
    else:
        assert mailuser.messages() == []
