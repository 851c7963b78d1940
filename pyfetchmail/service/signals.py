"""Signal handling for the run loop: wake-ups, termination, interruptible sleep.

fetchmail 6.4 semantics (spec section 4.6) and where we differ:

- SIGUSR1 wakes a sleeping daemon at once.  fetchmail ignores a SIGUSR1 that
  arrives while it polls; **we remember one** such wake-up and start the next
  cycle right after the current one, so mail announced mid-poll (e.g. by an
  MTA hook running ``pyfetchmail`` to wake the daemon) is fetched promptly.
  A wake-up also clears the "wedged" marks (done by the caller).
- SIGHUP: a detached daemon ignores it (fetchmail's daemonize); a detached
  daemon running as root treats it like SIGUSR1.  Otherwise the default
  action is left alone.
- SIGTERM, SIGINT, SIGQUIT: stop.  Outside a poll the loop notices the flag
  and ends.  Inside a poll (:meth:`SignalState.polling`) the handler raises
  :class:`Terminated` in the main thread, which unwinds the fetch engine.
  That is safe by the engine's invariant: a message is marked for deletion
  only after positive delivery acknowledgement and its UID is persisted
  before QUIT/EXPUNGE, and an abandoned POP3 session never reaches QUIT
  (RFC 1939 section 6: DELE takes effect only in the UPDATE state), so an
  interrupted message is fetched again next time (at most one duplicate).

The sleep uses a self-pipe registered with :func:`signal.set_wakeup_fd` and
``select``, so a signal arriving between "check the flags" and "start
sleeping" still ends the sleep (no lost wake-up, no polling loop).  Handlers
only set flags; they never take locks (``threading.Event.set`` from a handler
can deadlock).
"""

from __future__ import annotations

import contextlib
import enum
import os
import select
import signal
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TypeAlias

#: What :func:`signal.signal` accepts and returns.
_Handler: TypeAlias = "Callable[[int, FrameType | None], object] | int | signal.Handlers | None"

__all__ = ["STOP_SIGNALS", "SignalState", "Terminated", "WakeReason"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


class Terminated(BaseException):
    """Raised in the main thread when a stop signal arrives during a poll.

    A BaseException so that ``except Exception`` blocks in the engine do not
    swallow it; ``finally`` blocks still run.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated with signal {signum}")


class WakeReason(enum.Enum):
    """Why :meth:`SignalState.sleep` returned."""

    TIMEOUT = "timeout"
    WAKE = "wake"  # SIGUSR1 (or SIGHUP for a root daemon)
    STOP = "stop"
    DONE = "done"  # the caller's condition became true


class SignalState:
    """Installed handlers plus the flags they set; one per process.

    Use as a context manager: ``with SignalState(detached=...) as sig:``.
    """

    def __init__(self, *, detached: bool = False) -> None:
        self.detached = detached
        self.stop_signum: int | None = None
        self.wake_signum: int | None = None
        self._polling = False
        self._rfd = -1
        self._wfd = -1
        self._old_wakeup_fd = -1
        self._saved: dict[int, _Handler] = {}

    # -- installation ---------------------------------------------------------

    def __enter__(self) -> SignalState:
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._old_wakeup_fd = signal.set_wakeup_fd(self._wfd, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            self._install(signum, self._on_stop)
        self._install(signal.SIGUSR1, self._on_wake)
        if self.detached:
            self._install(signal.SIGHUP, self._on_wake if os.getuid() == 0 else signal.SIG_IGN)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved.clear()
        signal.set_wakeup_fd(self._old_wakeup_fd)
        for fd in (self._rfd, self._wfd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._rfd = self._wfd = -1

    def _install(self, signum: int, handler: _Handler) -> None:
        self._saved[signum] = signal.signal(signum, handler)

    # -- handlers (run in the main thread between bytecodes) -----------------

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_signum = signum
        if self._polling:
            self._polling = False  # raise once; cleanup code runs unmolested
            raise Terminated(signum)

    def _on_wake(self, signum: int, _frame: FrameType | None) -> None:
        self.wake_signum = signum

    # -- use --------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """True once a stop signal has arrived."""
        return self.stop_signum is not None

    @contextlib.contextmanager
    def polling(self) -> Iterator[None]:
        """Mark a poll in progress: a stop signal now raises :class:`Terminated`."""
        if self.stop_signum is not None:
            raise Terminated(self.stop_signum)
        self._polling = True
        try:
            yield
        finally:
            self._polling = False

    def take_wake(self) -> int | None:
        """Consume a remembered wake-up; return its signal number or ``None``."""
        signum, self.wake_signum = self.wake_signum, None
        return signum

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._rfd, 512):
                pass

    def poke(self) -> None:
        """Make a concurrent :meth:`sleep` re-check its condition (any thread)."""
        with contextlib.suppress(OSError):
            os.write(self._wfd, b"\0")

    def sleep(self, seconds: float, done: Callable[[], bool] | None = None) -> WakeReason:
        """Sleep up to *seconds*; return early on a stop or wake signal.

        A wake-up remembered from before the call ends the sleep at once.
        *done*, re-checked whenever another thread calls :meth:`poke`, ends
        the sleep with ``WakeReason.DONE`` when it returns True.
        """
        deadline = time.monotonic() + seconds
        while True:
            self._drain()
            if self.stop_signum is not None:
                return WakeReason.STOP
            if self.wake_signum is not None:
                return WakeReason.WAKE
            if done is not None and done():
                return WakeReason.DONE
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return WakeReason.TIMEOUT
            # The C-level handler writes to the pipe before the Python handler
            # runs, so a signal after the checks above still ends this select.
            select.select([self._rfd], [], [], remaining)
