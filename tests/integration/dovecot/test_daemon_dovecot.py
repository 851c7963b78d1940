"""End to end: the ``pyfetchmail`` daemon against the private Dovecot (POP3).

The daemon runs in the foreground (``-N``) as a subprocess, fetches into the
aiosmtpd sink, picks up mail appended between polls, is woken at once by a
second plain invocation, and stops cleanly with ``--quit``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.dovecot, pytest.mark.timeout(90)]

_SCRIPT = shutil.which("pyfetchmail")
_CMD = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "pyfetchmail"]


def _message(n: int) -> bytes:
    return (
        f"From: sender{n}@remote.example\nTo: joe@remote.example\n"
        f"Subject: daemon test {n}\nMessage-ID: <daemon{n}@remote.example>\n\nbody {n}\n"
    ).encode()


class Env:
    def __init__(self, tmp_path: Path, dovecot: Any, mailuser: Any, smtp_sink: Any) -> None:
        self.home = tmp_path
        self.pidfile = tmp_path / "pid"
        self.rc = tmp_path / "fetchmailrc"
        self.write_rc(
            f"poll 127.0.0.1 proto pop3 port {dovecot.pop3_port} no dns\n"
            f'  user "{mailuser.name}" password "{mailuser.password}" is joe here\n'
            f"  sslproto '' smtphost 127.0.0.1/{smtp_sink.port}\n"
        )
        self.env = dict(os.environ, FETCHMAILHOME=str(tmp_path), HOME=str(tmp_path))
        self.procs: list[subprocess.Popen[str]] = []

    def write_rc(self, text: str) -> None:
        fd = os.open(self.rc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"set pidfile {self.pidfile}\n{text}")

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*_CMD, *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            # Progress on stdout, diagnostics on stderr (as fetchmail): read both
            # as one ordered stream, returned as communicate()[0].
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_CMD, *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )


@pytest.fixture
def env(tmp_path: Path, dovecot: Any, mailuser: Any, smtp_sink: Any) -> Iterator[Env]:
    e = Env(tmp_path, dovecot, mailuser, smtp_sink)
    try:
        yield e
    finally:
        for proc in e.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)


def _subjects(smtp_sink: Any) -> list[str]:
    return [
        line.split(b": ", 1)[1].decode()
        for r in smtp_sink.received
        for line in r.data.splitlines()
        if line.startswith(b"Subject: ")
    ]


def _wait_received(smtp_sink: Any, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(smtp_sink.received) >= n:
            return True
        time.sleep(0.02)
    return len(smtp_sink.received) >= n


def _quit(env: Env, daemon: subprocess.Popen[str]) -> str:
    result = env.run("--quit")
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"pyfetchmail: background pyfetchmail at {daemon.pid} killed.\n"
    err = daemon.communicate(timeout=10)[0]
    assert not env.pidfile.exists()
    assert "terminated with signal 15" in err
    return err


def test_daemon_fetches_mail_appended_between_polls(
    env: Env, mailuser: Any, smtp_sink: Any
) -> None:
    mailuser.deliver(_message(1))
    daemon = env.start("-d", "1", "-N")
    assert _wait_received(smtp_sink, 1, 20), daemon.poll()
    mailuser.deliver(_message(2))
    assert _wait_received(smtp_sink, 2, 20)
    assert _subjects(smtp_sink) == ["daemon test 1", "daemon test 2"]
    assert [r.rcpt_tos for r in smtp_sink.received] == [
        ["joe@127.0.0.1"]
    ] * 2  # fetchmail qualifies with the smtphost
    err = _quit(env, daemon)
    assert "starting pyfetchmail" in err
    assert mailuser.messages() == []  # fetched mail is deleted from the server


def test_second_invocation_wakes_the_daemon_at_once(
    env: Env, mailuser: Any, smtp_sink: Any
) -> None:
    mailuser.deliver(_message(1))
    daemon = env.start("-d", "3600", "-N")
    assert _wait_received(smtp_sink, 1, 20), daemon.poll()
    mailuser.deliver(_message(2))
    time.sleep(0.3)
    assert len(smtp_sink.received) == 1  # asleep for an hour
    wake = env.run()
    assert wake.returncode == 0
    assert wake.stderr == f"pyfetchmail: background pyfetchmail at {daemon.pid} awakened.\n"
    start = time.monotonic()
    assert _wait_received(smtp_sink, 2, 10)
    assert time.monotonic() - start < 5
    assert _subjects(smtp_sink) == ["daemon test 1", "daemon test 2"]
    err = _quit(env, daemon)
    assert "awakened by signal 10" in err
    assert mailuser.messages() == []


def test_idle_query_gets_new_mail_without_polling(
    env: Env, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    env.write_rc(
        f"poll 127.0.0.1 proto imap port {dovecot.imap_port} no dns\n"
        f'  user "{mailuser.name}" password "{mailuser.password}" is joe here\n'
        f"  sslproto '' smtphost 127.0.0.1/{smtp_sink.port} idle\n"
    )
    mailuser.deliver(_message(1))
    daemon = env.start("-d", "3600", "-N")
    assert _wait_received(smtp_sink, 1, 20), daemon.poll()
    time.sleep(0.5)  # let it settle into IDLE
    mailuser.deliver(_message(2))
    start = time.monotonic()
    assert _wait_received(smtp_sink, 2, 15)  # the server's EXISTS, not the hour-long interval
    assert time.monotonic() - start < 10
    assert _subjects(smtp_sink) == ["daemon test 1", "daemon test 2"]
    _quit(env, daemon)


def test_sigterm_during_delivery_loses_nothing(env: Env, mailuser: Any, smtp_sink: Any) -> None:
    for n in (1, 2, 3):
        mailuser.deliver(_message(n))
    daemon: subprocess.Popen[str] | None = None
    datas = 0

    def policy(stage: str, arg: Any) -> str | None:
        nonlocal datas
        if stage == "DATA":
            datas += 1
            if datas == 2 and daemon is not None:
                # Stop the daemon while it waits for the reply to message 2;
                # the sink still accepts the message afterwards.
                daemon.send_signal(signal.SIGTERM)
                time.sleep(0.3)
        return None

    smtp_sink.policy = policy
    daemon = env.start("-d", "3600", "-N")
    err = daemon.communicate(timeout=30)[0]
    assert "terminated with signal 15" in err
    assert "Query status" not in err  # it really stopped in the middle of the poll
    assert not env.pidfile.exists()
    assert len(mailuser.messages()) >= 2  # message 2 was not acknowledged: still there
    smtp_sink.policy = None
    again = env.run()  # a single run picks up what is left
    assert again.returncode == 0, again.stderr
    subjects = _subjects(smtp_sink)
    assert set(subjects) == {"daemon test 1", "daemon test 2", "daemon test 3"}
    assert subjects.count("daemon test 1") == 1
    assert subjects.count("daemon test 2") <= 2  # at most the one in flight twice
    assert mailuser.messages() == []
