"""The per-user lock (PID) file: who else is running, and owning the lock.

fetchmail 6.4 (spec section 4.4) keeps one lock per user (per pidfile path),
not per rc file or server.  Its content is the owner's PID on the first line
and, only for a background daemon, the poll interval on the second line::

    23296\\n300\\n     <- daemon polling every 300 s
    23301\\n          <- foreground single run

Invariants:
- The file is created with ``O_CREAT|O_EXCL`` and mode 0600, written in one
  ``write`` and fsync'ed, so a reader sees either nothing or a whole record.
- On top of fetchmail's scheme the owner holds an exclusive ``flock`` on the
  file for its whole life, and checks after locking that the path still names
  the inode it locked.  Two instances racing to remove the same stale file
  and create a new one therefore cannot both win.
- A lock whose PID does not exist (``kill(pid, 0)`` fails with ESRCH) or
  whose content is unreadable is stale and is removed with the notice
  ``removing stale lockfile "<f>"`` -- only while holding its ``flock`` and
  after checking that the path still names that file, so a fresh lock being
  created by a racing instance is never removed.
- A lock naming our own PID is ours: that is the process re-executed after
  an rc file change (spec section 4.7), which takes the lock over.
- :meth:`PidLock.release` removes the file only while it still names us.

:func:`handle_running_instance` implements what a second invocation does
when the lock is held (spec section 4.5: ``--quit``, wake-up, refusals).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.errors import LockError
from pyfetchmail.exitcodes import ExitCode

__all__ = [
    "LockInfo",
    "PidLock",
    "handle_running_instance",
    "pid_alive",
    "read_lock",
    "wait_until_gone",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LockInfo:
    """What a lock file says: the owner's *pid* and its daemon *interval*."""

    pid: int
    interval: int | None = None  # None = foreground single run

    @property
    def background(self) -> bool:
        """True for a daemon (the file carries a second number)."""
        return self.interval is not None

    def render(self) -> bytes:
        """The file content in fetchmail's format."""
        if self.interval is None:
            return f"{self.pid}\n".encode("ascii")
        return f"{self.pid}\n{self.interval}\n".encode("ascii")


def pid_alive(pid: int) -> bool:
    """True if a process *pid* exists (EPERM counts: it exists, it is not ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse(text: str) -> LockInfo | None:
    """Parse lock content; ``None`` when it is not one or two positive numbers."""
    fields = text.split()
    if not 1 <= len(fields) <= 2 or not all(f.isdigit() for f in fields):
        return None
    pid = int(fields[0])
    if pid <= 0:
        return None
    return LockInfo(pid, int(fields[1]) if len(fields) == 2 else None)


def _unlink_stale(path: str, fd: int) -> None:
    """Remove the stale file open on *fd* (truncate it if unlinking is refused)."""
    log.warning('removing stale lockfile "%s"', path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError:
        try:
            with open(path, "wb"):
                pass
        except OSError as exc:
            raise LockError(f'lock creation failed, pidfile "{path}": {exc.strerror}') from None


def read_lock(path: str) -> LockInfo | None:
    """Return the live owner of the lock at *path*, or ``None`` if there is none.

    A stale file (dead PID, garbage or empty content) is removed on the way,
    as fetchmail's ``fm_lock_state`` does, but only while holding its
    ``flock`` and after checking that *path* still names it: a racing
    instance that has just created a fresh file (and holds its flock) is
    never mistaken for a stale one.  Such a file, still empty, is reported
    as a foreground lock with PID 0, so callers treat it as busy.

    :raises LockError: the file exists but cannot be read.
    """
    for _attempt in range(20):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LockError(f'error reading lockfile "{path}": {exc.strerror}') from None
        try:
            try:
                raw = os.read(fd, 256)
            except OSError as exc:
                raise LockError(f'error reading lockfile "{path}": {exc.strerror}') from None
            info = _parse(raw.decode("ascii", "replace"))
            if info is not None and (info.pid == os.getpid() or pid_alive(info.pid)):
                return info
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its creator is alive and still writing it
                return info if info is not None else LockInfo(0)
            if not _same_file(fd, path):
                continue  # replaced meanwhile: look at the new file
            _unlink_stale(path, fd)
            return None
        finally:
            os.close(fd)
    raise LockError(f'error reading lockfile "{path}": it keeps changing')


class PidLock:
    """Ownership of the lock file at *path* for the life of this process.

    Usage::

        lock = PidLock(path)
        lock.acquire(interval=300)   # or None for a foreground run
        try:
            ...
        finally:
            lock.release()
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._info: LockInfo | None = None

    @property
    def held(self) -> bool:
        """True between a successful :meth:`acquire` and :meth:`release`."""
        return self._fd is not None

    def acquire(self, interval: int | None) -> None:
        """Create the lock naming this process (and *interval* for a daemon).

        A stale file is removed first; our own PID in the file (re-exec after
        an rc change) is taken over.

        :raises LockError: another live instance owns it, or creation failed.
        """
        info = LockInfo(os.getpid(), interval)
        for attempt in range(20):
            current = read_lock(self.path)
            if current is not None and current.pid != os.getpid():
                raise LockError(
                    f'lock creation failed, pidfile "{self.path}": '
                    f"another instance is running at {current.pid}"
                )
            if current is not None:  # our own PID: re-exec after rc change
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            if self._try_create(info):
                return
            time.sleep(0.001 * attempt)  # a racer is replacing a stale file
        raise LockError(f'lock creation failed, pidfile "{self.path}": it keeps changing')

    def _try_create(self, info: LockInfo) -> bool:
        """One attempt: exclusive create, flock, verify the inode, write."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            return False
        except OSError as exc:
            raise LockError(
                f'lock creation failed, pidfile "{self.path}": {exc.strerror}'
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Someone may have unlinked the file between our open and flock
            # (believing it stale because it was still empty): then the path
            # names another inode, or none, and this file is worthless.
            if not _same_file(fd, self.path):
                os.close(fd)
                return False
            os.write(fd, info.render())
            os.fsync(fd)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:
            os.close(fd)
            raise LockError(
                f'lock creation failed, pidfile "{self.path}": {exc.strerror}'
            ) from None
        self._fd = fd
        self._info = info
        log.debug('created lockfile "%s" for PID %d', self.path, info.pid)
        return True

    def release(self) -> None:
        """Remove the lock file if it still names us; always drop the flock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path):
                try:
                    os.unlink(self.path)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        os.ftruncate(fd, 0)
        finally:
            os.close(fd)


def _same_file(fd: int, path: str) -> bool:
    """True if *path* currently names the file open on *fd*."""
    try:
        st_path = os.stat(path)
    except OSError:
        return False
    st_fd = os.fstat(fd)
    return (st_path.st_dev, st_path.st_ino) == (st_fd.st_dev, st_fd.st_ino)


# -- a second invocation (spec section 4.5) ---------------------------------

_SAFE_WITH_BACKGROUND = frozenset({"--version", "--silent", "--verbose", "--configdump"})
_QUIT_WAIT = 10.0  # seconds, as fetchmail waits for a killed instance


def _safe_with_background(argv: Sequence[str]) -> bool:
    """True if *argv* holds only ``-V``, ``-s``, ``-v``, ``--configdump`` (or none)."""
    for arg in argv:
        if arg in _SAFE_WITH_BACKGROUND:
            continue
        if len(arg) >= 2 and arg[0] == "-" and arg[1] != "-" and set(arg[1:]) <= {"V", "s", "v"}:
            continue
        return False
    return True


def _say(out: TextIO, message: str) -> None:
    out.write(f"pyfetchmail: {message}\n")
    out.flush()


def wait_until_gone(pid: int, path: str, timeout: float = _QUIT_WAIT) -> bool:
    """Wait up to *timeout* s until *pid* is dead or no longer owns the lock at *path*.

    The lock test matters when the other process is a not-yet-reaped child of
    ours (a zombie still answers ``kill(pid, 0)``).
    """
    deadline = time.monotonic() + timeout
    while True:
        if not pid_alive(pid):
            return True
        try:
            current = read_lock(path)
        except LockError:
            current = None
        if current is None or current.pid != pid:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def handle_running_instance(
    options: CommandLineOptions, path: str, *, out: TextIO | None = None
) -> int | None:
    """Apply fetchmail's rules for a second invocation; ``None`` = go on and run.

    Checks, in fetchmail's order: ``-q`` (kill the other instance, wait for
    it, exit 0 if ``-q`` was the last argument), ``-c``, server names on the
    command line, a foreground owner, options other than ``-V -s -v
    --configdump``, and finally wakes a background daemon with SIGUSR1.
    Messages go to *out* (stderr) with the ``pyfetchmail: `` prefix.

    :returns: the exit status when this invocation is done, else ``None``.
    """
    out = out if out is not None else sys.stderr
    info = read_lock(path)
    if info is not None and info.pid == os.getpid():
        info = None  # our own re-exec after an rc change: the lock is ours
    if options.quit:
        if info is None or info.pid <= 0:
            _say(out, "no other pyfetchmail is running")
            if options.quit_is_last:
                return int(ExitCode.EXCLUDE)
        else:
            kind = "background" if info.background else "foreground"
            try:
                os.kill(info.pid, signal.SIGTERM)
            except OSError:
                _say(out, f"error killing {kind} pyfetchmail at {info.pid}; bailing out.")
                return int(ExitCode.EXCLUDE)
            _say(out, f"{kind} pyfetchmail at {info.pid} killed.")
            # Ours: wait even when -q is the last argument, so that a service
            # manager's ExecStop returns only once the daemon is really gone.
            wait_until_gone(info.pid, path)
            if options.quit_is_last:
                return int(ExitCode.SUCCESS)
        info = None
    if info is None:
        return None
    pid = info.pid
    if options.check:
        _say(out, "can't check mail while another pyfetchmail to same host is running.")
        return int(ExitCode.EXCLUDE)
    if options.servers:
        _say(out, f"can't poll specified hosts with another pyfetchmail running at {pid}.")
        return int(ExitCode.EXCLUDE)
    if not info.background:
        _say(out, f"another foreground pyfetchmail is running at {pid}.")
        return int(ExitCode.EXCLUDE)
    if not _safe_with_background(options.argv):
        _say(out, "can't accept options while a background pyfetchmail is running.")
        out.write(f"argc = {len(options.argv) + 1}, arg list:\n")
        for i, arg in enumerate(options.argv, start=1):
            out.write(f'arg {i} = "{arg}"\n')
        out.flush()
        return int(ExitCode.EXCLUDE)
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError:
        _say(out, f"elder sibling at {pid} died mysteriously.")
        return int(ExitCode.UNDEFINED)
    if not options.silent:
        _say(out, f"background pyfetchmail at {pid} awakened.")
    return int(ExitCode.SUCCESS)
