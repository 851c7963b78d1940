"""The lock (PID) file: fetchmail's format, stale locks, races, second invocations."""

from __future__ import annotations

import fcntl
import io
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.errors import LockError
from pyfetchmail.service.lock import (
    LockInfo,
    PidLock,
    handle_running_instance,
    pid_alive,
    read_lock,
)

# A stand-in for another instance: owns the lock at argv[1] (background when
# argv[2] is an interval), records SIGUSR1 in argv[3], removes the lock on
# SIGTERM as a real instance does.
_OTHER = r"""
import os, signal, sys, time
path, interval, marks = sys.argv[1], sys.argv[2], sys.argv[3]
body = f"{os.getpid()}\n" + (f"{interval}\n" if interval != "-" else "")
with open(path, "w") as fp:
    fp.write(body)
def usr1(*_):
    with open(marks, "a") as fp:
        fp.write("usr1\n")
def term(*_):
    os.unlink(path)
    sys.exit(0)
signal.signal(signal.SIGUSR1, usr1)
signal.signal(signal.SIGTERM, term)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def lockpath(tmp_path: Path) -> str:
    return str(tmp_path / ".fetchmail.pid")


def _start_other(path: str, marks: Path, interval: int | None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _OTHER, path, str(interval) if interval else "-", str(marks)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture
def other(lockpath: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    marks = tmp_path / "marks"
    proc = _start_other(lockpath, marks, 300)
    try:
        yield proc, marks
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=10)
    return proc.pid


def test_render_matches_fetchmail_format() -> None:
    assert LockInfo(23296, 300).render() == b"23296\n300\n"
    assert LockInfo(23301).render() == b"23301\n"
    assert LockInfo(1, 5).background
    assert not LockInfo(1).background


@pytest.mark.parametrize(("interval", "content"), [(None, "{pid}\n"), (300, "{pid}\n300\n")])
def test_acquire_writes_pid_and_interval(lockpath: str, interval: int | None, content: str) -> None:
    lock = PidLock(lockpath)
    lock.acquire(interval)
    try:
        assert Path(lockpath).read_text() == content.format(pid=os.getpid())
        assert stat.S_IMODE(os.stat(lockpath).st_mode) == 0o600
        assert read_lock(lockpath) == LockInfo(os.getpid(), interval)
    finally:
        lock.release()
    assert not os.path.exists(lockpath)


def test_live_owner_refuses_the_lock(
    lockpath: str, other: tuple[subprocess.Popen[str], Path]
) -> None:
    proc, _ = other
    assert read_lock(lockpath) == LockInfo(proc.pid, 300)
    with pytest.raises(LockError, match=f"another instance is running at {proc.pid}") as err:
        PidLock(lockpath).acquire(None)
    assert err.value.exit_code == 8
    assert Path(lockpath).read_text() == f"{proc.pid}\n300\n"


@pytest.mark.parametrize("content", ["{dead}\n300\n", "garbage\n", "", "12 34 56\n"])
def test_stale_lock_is_removed(
    lockpath: str, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    Path(lockpath).write_text(content.format(dead=_dead_pid()))
    assert read_lock(lockpath) is None
    assert not os.path.exists(lockpath)
    assert f'removing stale lockfile "{lockpath}"' in caplog.text
    lock = PidLock(lockpath)
    lock.acquire(60)
    lock.release()


def test_own_pid_is_taken_over_after_reexec(lockpath: str) -> None:
    Path(lockpath).write_text(f"{os.getpid()}\n300\n")
    lock = PidLock(lockpath)
    lock.acquire(300)
    assert lock.held
    lock.release()
    assert not os.path.exists(lockpath)


def test_empty_file_being_created_by_a_racer_is_busy(lockpath: str) -> None:
    # A racing instance has created and flock-ed the file but not yet written it.
    fd = os.open(lockpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert read_lock(lockpath) == LockInfo(0)
        assert os.path.exists(lockpath)  # not mistaken for a stale lock
        with pytest.raises(LockError):
            PidLock(lockpath).acquire(None)
    finally:
        os.close(fd)


def test_release_keeps_a_file_that_is_no_longer_ours(lockpath: str) -> None:
    lock = PidLock(lockpath)
    lock.acquire(None)
    os.unlink(lockpath)
    Path(lockpath).write_text("4242\n")  # someone else's now
    lock.release()
    assert Path(lockpath).read_text() == "4242\n"


def test_unreadable_lock_is_an_exclude_error(tmp_path: Path) -> None:
    path = tmp_path / "dir.pid"
    path.mkdir()
    with pytest.raises(LockError, match="error reading lockfile") as err:
        read_lock(str(path))
    assert err.value.exit_code == 8


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(_dead_pid())


# -- second invocation (spec section 4.5) -------------------------------------


def _opts(*argv: str, **kw: object) -> CommandLineOptions:
    return CommandLineOptions(argv=argv, **kw)  # type: ignore[arg-type]


@pytest.mark.timeout(20)
def test_quit_kills_the_daemon_and_waits(
    lockpath: str, other: tuple[subprocess.Popen[str], Path]
) -> None:
    proc, _ = other
    out = io.StringIO()
    start = time.monotonic()
    status = handle_running_instance(_opts("-q", quit=True, quit_is_last=True), lockpath, out=out)
    assert status == 0
    assert out.getvalue() == f"pyfetchmail: background pyfetchmail at {proc.pid} killed.\n"
    assert proc.wait(timeout=5) == 0
    assert not os.path.exists(lockpath)
    assert time.monotonic() - start < 5


def test_quit_foreground_instance_then_continue(lockpath: str, tmp_path: Path) -> None:
    proc = _start_other(lockpath, tmp_path / "m", None)
    try:
        out = io.StringIO()
        status = handle_running_instance(_opts("-q", "-v", quit=True), lockpath, out=out)
        assert status is None  # -q was not last: go on with a normal run
        assert "foreground pyfetchmail at" in out.getvalue()
    finally:
        _stop(proc)


def test_quit_with_nothing_running(lockpath: str) -> None:
    out = io.StringIO()
    status = handle_running_instance(_opts("-q", quit=True, quit_is_last=True), lockpath, out=out)
    assert status == 8
    assert out.getvalue() == "pyfetchmail: no other pyfetchmail is running\n"
    assert (
        handle_running_instance(_opts("-q", "-v", quit=True), lockpath, out=io.StringIO()) is None
    )


def test_nothing_running_means_go_on(lockpath: str) -> None:
    assert handle_running_instance(_opts("-v"), lockpath, out=io.StringIO()) is None


_CHECK = "can't check mail while another pyfetchmail to same host is running."
_HOSTS = "can't poll specified hosts with another pyfetchmail running at {pid}."


@pytest.mark.parametrize(
    ("opts", "message"),
    [(_opts("-c", check=True), _CHECK), (_opts("h", servers=("h",)), _HOSTS)],
)
def test_refusals(
    lockpath: str,
    other: tuple[subprocess.Popen[str], Path],
    opts: CommandLineOptions,
    message: str,
) -> None:
    proc, marks = other
    out = io.StringIO()
    assert handle_running_instance(opts, lockpath, out=out) == 8
    assert out.getvalue() == f"pyfetchmail: {message.format(pid=proc.pid)}\n"
    assert not marks.exists()


def test_foreground_owner_refuses(lockpath: str, tmp_path: Path) -> None:
    proc = _start_other(lockpath, tmp_path / "m", None)
    try:
        out = io.StringIO()
        assert handle_running_instance(_opts(), lockpath, out=out) == 8
        assert (
            out.getvalue()
            == f"pyfetchmail: another foreground pyfetchmail is running at {proc.pid}.\n"
        )
    finally:
        _stop(proc)


def test_options_refused_with_argument_listing(
    lockpath: str, other: tuple[subprocess.Popen[str], Path]
) -> None:
    out = io.StringIO()
    assert handle_running_instance(_opts("-k", "-v"), lockpath, out=out) == 8
    assert out.getvalue() == (
        "pyfetchmail: can't accept options while a background pyfetchmail is running.\n"
        "argc = 3, arg list:\n"
        'arg 1 = "-k"\n'
        'arg 2 = "-v"\n'
    )


@pytest.mark.timeout(20)
@pytest.mark.parametrize("argv", [(), ("-v",), ("-vs", "--configdump"), ("--silent",)])
def test_safe_options_wake_the_daemon(
    lockpath: str, other: tuple[subprocess.Popen[str], Path], argv: tuple[str, ...]
) -> None:
    proc, marks = other
    out = io.StringIO()
    silent = any("s" in a for a in argv)
    assert handle_running_instance(_opts(*argv, silent=silent), lockpath, out=out) == 0
    expected = "" if silent else f"pyfetchmail: background pyfetchmail at {proc.pid} awakened.\n"
    assert out.getvalue() == expected
    deadline = time.monotonic() + 5
    while (not marks.exists() or not marks.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marks.read_text() == "usr1\n"
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)


_RACER = r"""
import os, sys, time
from pyfetchmail.errors import LockError
from pyfetchmail.service.lock import PidLock
path, go = sys.argv[1], float(sys.argv[2])
while time.time() < go:
    pass
lock = PidLock(path)
try:
    lock.acquire(None)
except LockError:
    print("lost", flush=True)
    sys.exit(0)
print("won", flush=True)
time.sleep(1.0)
lock.release()
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stale", [False, True])
def test_racing_starts_have_exactly_one_winner(lockpath: str, stale: bool) -> None:
    if stale:  # everybody finds the same stale lock and wants to replace it
        Path(lockpath).write_text(f"{_dead_pid()}\n")
    go = time.time() + 1.5
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, lockpath, str(go)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    results = [r.communicate(timeout=30)[0].strip() for r in racers]
    assert sorted(results) == ["lost"] * 7 + ["won"]
    assert not os.path.exists(lockpath)
