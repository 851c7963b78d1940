"""The installed ``pyfetchmail`` script as a daemon: lock, wake-up, quit, signals, re-exec.

Each test gets its own ``FETCHMAILHOME`` with an rc file that sets the
pidfile (root's default would be ``/var/run/fetchmail.pid``) and a poll entry
whose ``preconnect`` appends a line to a file and fails: every poll is then
visible without any server, and nothing connects anywhere.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

_SCRIPT = shutil.which("pyfetchmail")
_CMD = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "pyfetchmail"]


def _collect(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
    proc.stdout.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@dataclass
class Home:
    path: Path
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    stderr: dict[int, tuple[list[str], threading.Thread]] = field(default_factory=dict)

    @property
    def rc(self) -> Path:
        return self.path / "fetchmailrc"

    @property
    def pidfile(self) -> Path:
        return self.path / "pid"

    @property
    def polls(self) -> Path:
        return self.path / "polls"

    @property
    def logfile(self) -> Path:
        return self.path / "log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "FETCHMAILHOME"}
        env["FETCHMAILHOME"] = str(self.path)
        env["HOME"] = str(self.path)
        env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
        return env

    def write_rc(self, tag: str = "polled", extra: str = "", password: str = "secretpw") -> None:
        pw = f" password {password}" if password else ""
        self.rc.write_text(
            f"set pidfile {self.pidfile}\n{extra}"
            f"poll 127.0.0.1 proto pop3 port 1 user joe{pw}\n"
            f'  preconnect "echo {tag} >> {self.polls}; exit 1"\n'
        )
        self.rc.chmod(0o600)

    def poll_lines(self) -> list[str]:
        return self.polls.read_text().splitlines() if self.polls.exists() else []

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*_CMD, *args],
            env=self.env(),
            cwd=self.path,
            stdin=subprocess.DEVNULL,
            # Progress goes to stdout and diagnostics to stderr (as fetchmail);
            # a daemon's whole output is read as one stream, in order.
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.procs.append(proc)
        lines: list[str] = []
        reader = threading.Thread(target=_collect, args=(proc, lines), daemon=True)
        reader.start()
        self.stderr[proc.pid] = (lines, reader)
        return proc

    def err(self, proc: subprocess.Popen[str]) -> str:
        """What *proc* has written (stdout and stderr) so far."""
        return "".join(self.stderr[proc.pid][0])

    def finish(self, proc: subprocess.Popen[str], timeout: float = 10) -> str:
        """Wait for *proc* to end; return its whole output."""
        proc.wait(timeout=timeout)
        self.stderr[proc.pid][1].join(timeout=timeout)
        return self.err(proc)

    def run(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_CMD, *args],
            env=self.env(),
            cwd=self.path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def lock_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    h = Home(tmp_path)
    h.write_rc()
    try:
        yield h
    finally:
        for proc in h.procs:
            if proc.poll() is None:
                proc.kill()
            h.finish(proc)
        pid = h.lock_pid()
        if pid and pid != os.getpid():  # a detached daemon left over by a failed test
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _start_daemon(home: Home, *extra: str) -> subprocess.Popen[str]:
    """Start a foreground daemon and wait until its first cycle is over."""
    proc = home.start("-d", "3600", "-N", *extra)
    assert wait_for(lambda: "Query status=" in home.err(proc)), (proc.poll(), home.err(proc))
    assert home.lock_pid() == proc.pid
    assert home.poll_lines() == ["polled"]
    return proc


def test_lock_file_format_and_first_poll(home: Home) -> None:
    proc = _start_daemon(home)
    assert home.pidfile.read_text() == f"{proc.pid}\n3600\n"
    assert (home.pidfile.stat().st_mode & 0o777) == 0o600


def test_second_daemon_is_refused(home: Home) -> None:
    first = _start_daemon(home)
    second = home.run("-d", "1", "-N")
    assert second.returncode == 8
    assert second.stderr.startswith(
        "pyfetchmail: can't accept options while a background pyfetchmail is running.\n"
        "argc = 4, arg list:\n"
    )
    assert first.poll() is None
    assert home.lock_pid() == first.pid


def test_quit_stops_the_daemon_quickly(home: Home) -> None:
    proc = _start_daemon(home)
    start = time.monotonic()
    quit_run = home.run("--quit")
    assert quit_run.returncode == 0
    assert quit_run.stderr == f"pyfetchmail: background pyfetchmail at {proc.pid} killed.\n"
    assert proc.wait(timeout=5) == 5  # the last cycle's status (preconnect failed)
    # Generous: this includes starting the --quit process itself (see the
    # SIGTERM test for the daemon's own reaction time).
    assert time.monotonic() - start < 5
    assert not home.pidfile.exists()
    assert "terminated with signal 15" in home.finish(proc)


def test_quit_with_nothing_running(home: Home) -> None:
    result = home.run("-q")
    assert result.returncode == 8
    assert result.stderr == "pyfetchmail: no other pyfetchmail is running\n"


def test_plain_invocation_wakes_the_daemon(home: Home) -> None:
    proc = _start_daemon(home)
    wake = home.run()
    assert wake.returncode == 0
    assert wake.stderr == f"pyfetchmail: background pyfetchmail at {proc.pid} awakened.\n"
    assert wait_for(lambda: len(home.poll_lines()) >= 2, timeout=5)
    silent = home.run("-s")
    assert silent.returncode == 0
    assert silent.stderr == ""
    assert wait_for(lambda: len(home.poll_lines()) >= 3, timeout=5)
    proc.send_signal(signal.SIGTERM)
    assert home.finish(proc).count("awakened by signal 10") == 2


def test_check_and_hosts_are_refused_while_running(home: Home) -> None:
    proc = _start_daemon(home)
    check = home.run("-c")
    assert (check.returncode, check.stderr) == (
        8,
        "pyfetchmail: can't check mail while another pyfetchmail to same host is running.\n",
    )
    hosts = home.run("127.0.0.1")
    assert hosts.returncode == 8
    assert f"can't poll specified hosts with another pyfetchmail running at {proc.pid}." in (
        hosts.stderr
    )


def test_sigterm_logs_and_removes_the_lock(home: Home) -> None:
    proc = _start_daemon(home)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert time.monotonic() - start < 1.0  # a sleeping daemon stops at once
    err = home.finish(proc)
    assert "pyfetchmail: terminated with signal 15\n" in err
    assert "pyfetchmail: starting pyfetchmail 0.1.0 daemon\n" in err
    assert "Query status=5 (SYNTAX)" in err
    assert proc.returncode == 5  # the last cycle's status
    assert not home.pidfile.exists()


def test_stale_lock_is_removed_at_startup(home: Home) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=10)
    home.pidfile.write_text(f"{dead.pid}\n300\n")
    result = home.run()
    assert result.returncode == 5  # the preconnect failure, i.e. it did poll
    assert f'removing stale lockfile "{home.pidfile}"' in result.stderr
    assert home.poll_lines() == ["polled"]
    assert not home.pidfile.exists()


def test_rc_change_reexecs_with_the_same_pid(home: Home) -> None:
    home.logfile.touch()
    home.write_rc(extra=f"set logfile {home.logfile}\n")
    proc = home.start("-d", "1")  # detaches: the parent exits at once
    assert proc.wait(timeout=10) == 0
    assert wait_for(lambda: len(home.poll_lines()) >= 1)
    daemon_pid = home.lock_pid()
    assert daemon_pid is not None
    assert daemon_pid != proc.pid
    assert home.pidfile.read_text() == f"{daemon_pid}\n1\n"
    time.sleep(0.05)  # a distinct mtime
    home.write_rc(tag="changed", extra=f"set logfile {home.logfile}\n")
    assert wait_for(lambda: "changed" in home.poll_lines(), timeout=10)
    assert home.lock_pid() == daemon_pid  # same process, re-executed
    # A detached daemon survives SIGHUP (non-root: ignored; root: a wake-up).
    before = len(home.poll_lines())
    os.kill(daemon_pid, signal.SIGHUP)
    assert wait_for(lambda: len(home.poll_lines()) > before, timeout=10)
    assert home.lock_pid() == daemon_pid
    quit_run = home.run("-q")
    assert quit_run.returncode == 0
    assert wait_for(lambda: not home.pidfile.exists(), timeout=5)
    log = home.logfile.read_text()
    assert f"pyfetchmail: restarting pyfetchmail ({home.rc} changed)\n" in log
    assert log.count("starting pyfetchmail 0.1.0 daemon") == 2
    assert "terminated with signal 15" in log


def test_no_password_and_no_tty(home: Home) -> None:
    home.write_rc(password="")
    result = home.run()
    assert result.returncode == 3
    assert result.stderr.endswith("pyfetchmail: can't find a password for joe@127.0.0.1.\n")
    assert home.poll_lines() == []
    assert not home.pidfile.exists()


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (("--pidfile", "{pid}", "-q"), 8, "pyfetchmail: no other pyfetchmail is running\n"),
        (("-q", "--pidfile", "{pid}"), 5, "pyfetchmail: no mailservers have been specified.\n"),
        (("--pidfile", "{pid}"), 5, "pyfetchmail: no mailservers have been specified.\n"),
    ],
)
def test_no_rc_file(home: Home, args: tuple[str, ...], status: int, message: str) -> None:
    home.rc.unlink()
    result = home.run(*(a.format(pid=home.pidfile) for a in args))
    assert result.returncode == status
    assert result.stderr.endswith(message)


def test_syslog_run_reaches_the_socket(home: Home) -> None:
    path = str(home.path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(10)
        env = {**home.env(), "PYFETCHMAIL_SYSLOG_ADDRESS": path}
        proc = subprocess.run(
            [*_CMD, "--syslog"],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert proc.returncode == 5
        assert proc.stderr == ""  # everything went to syslog
        lines = [sock.recv(4096).rstrip(b"\0").decode() for _ in range(2)]
    assert re.fullmatch(
        r"<19>pyfetchmail\[\d+\]: pre-connection command failed with status 1", lines[0]
    )
    assert re.fullmatch(r"<20>pyfetchmail\[\d+\]: Query status=5 \(SYNTAX\)", lines[1])
