"""``interface``/``monitor`` in the installed ``pyfetchmail`` daemon (spec §7.2).

The first tests use entries whose ``preconnect`` appends the entry's name to
a file and fails, so every poll (and every skipped one) is visible without a
server.  dovecot/test_daemon_iface_dovecot.py polls the private Dovecot through
``interface`` and ``monitor lo`` for real.  Whether ``lo`` is idle between two polls depends on
everything else on the host, so "inactive" is checked in the unit tests
(tests/unit/test_iface.py) with an injected counter; here traffic is made
on purpose.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux interfaces"),
]

_SCRIPT = shutil.which("pyfetchmail")
_CMD = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "pyfetchmail"]


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class Daemon:
    """One ``pyfetchmail`` process with a private home; output collected as it comes."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.rc = home / "fetchmailrc"
        self.polls = home / "polls"
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "FETCHMAILHOME"}
        env.update(
            FETCHMAILHOME=str(self.home),
            HOME=str(self.home),
            PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
            LC_ALL="C",
        )
        return env

    def write_rc(self, text: str) -> None:
        self.rc.write_text(f"set pidfile {self.home / 'pid'}\n{text}")
        self.rc.chmod(0o600)

    def argv(self, *args: str) -> list[str]:
        return [*_CMD, "-f", str(self.rc), "--idfile", str(self.home / "ids"), *args]

    def start(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            self.argv(*args),
            env=self.env(),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
        self.proc.stdout.close()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def poll_lines(self) -> list[str]:
        return self.polls.read_text().splitlines() if self.polls.exists() else []

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    try:
        yield d
    finally:
        d.stop()


def _entry(d: Daemon, name: str, option: str) -> str:
    return (
        f"poll {name} via 127.0.0.1 proto pop3 port 1 {option}\n"
        f'  user joe password secretpw preconnect "echo {name} >> {d.polls}; exit 1"\n'
    )


def test_interface_gates_each_cycle(daemon: Daemon) -> None:
    daemon.write_rc(
        _entry(daemon, "inside", "interface lo/127.0.0.1/255.0.0.0")
        + _entry(daemon, "excluded", "interface lo/10.0.0.1")
        + _entry(daemon, "missing", "interface nosuch0/10.0.0.1")
    )
    daemon.start("-d", "1", "-N")
    assert wait_for(lambda: daemon.poll_lines().count("inside") >= 2), daemon.output
    assert wait_for(lambda: daemon.output.count("nosuch0/10.0.0.1 down") >= 2), daemon.output
    daemon.stop()
    assert set(daemon.poll_lines()) == {"inside"}
    out = daemon.output
    assert out.count("skipping poll of excluded, lo/10.0.0.1 IP address excluded\n") >= 2
    assert out.count("skipping poll of missing, nosuch0/10.0.0.1 down\n") >= 2
    assert "skipping poll of inside" not in out


def test_single_run_all_skipped_is_success_even_silent(daemon: Daemon) -> None:
    daemon.write_rc(_entry(daemon, "excluded", "interface lo/10.0.0.1"))
    run = subprocess.run(
        daemon.argv("-s"),
        env=daemon.env(),
        cwd=daemon.home,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run  # as fetchmail: nothing polled, nothing failed
    assert "skipping poll of excluded, lo/10.0.0.1 IP address excluded" in run.stderr
    assert daemon.poll_lines() == []


def test_monitor_of_a_missing_interface_skips(daemon: Daemon) -> None:
    daemon.write_rc(_entry(daemon, "watched", "monitor nosuch0") + _entry(daemon, "other", ""))
    daemon.start("-d", "1", "-N")
    assert wait_for(lambda: daemon.poll_lines().count("other") >= 2), daemon.output
    daemon.stop()
    assert "watched" not in daemon.poll_lines()
    assert "skipping poll of watched, nosuch0 down" in daemon.output
