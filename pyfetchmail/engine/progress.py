"""Progress display while a message downloads (fetchmail(1), ``--showdots``).

The mail sources report bytes as they arrive through the optional
``progress`` hook of a session (see :mod:`pyfetchmail.protocols.base`); the
fetch engine connects that hook to a :class:`ProgressDisplay`, which renders
one of two forms, chosen once per poll by :func:`choose_mode`:

``DOTS`` (fetchmail's ticks)
    one ``.`` per :data:`DOT_BYTES` received, the line ended when the
    message has been read.  Shown, as fetchmail does, iff (verbose or
    ``showdots``) and not silent and not syslog and (``showdots`` or stdout
    is not a regular file).  With a logfile in use the dots go into the
    logfile, and only with ``showdots`` (fetchmail's stdout *is* the logfile
    then, a regular file).
``METER`` (our addition, for terminals)
    when stdout is a terminal and ``showdots`` is not set, a message larger
    than :data:`METER_THRESHOLD` gets one line, rewritten in place with
    ``\\r`` as the percentage changes and erased once the message has been
    read::

        reading message joe@pop.example.org:3 of 10 (52428800 octets) 45%

    Smaller messages show nothing.  This wins over verbose dots on a
    terminal: 50 MB of dots are 51,200 characters of noise.

Invariants:

- The log lines are never changed: the display only writes ticks or its
  transient meter *between* them, so logfiles and non-terminal output stay
  exactly as without it (unless ``showdots`` asks for dots).
- A dots line or meter is always ended (newline / erased) before the next
  message's ticks, before any log record reaches a handler of the
  ``pyfetchmail`` logger (a filter installed by :func:`attach`), when the
  engine takes delivery of the message, and when the session ends.
- Display trouble (a closed stdout) never fails a poll: write errors are
  swallowed.

Not done: fetchmail's ``#`` (header forwarded) and ``*`` (body chunk
written) ticks; messages are spooled before delivery here, so delivery
ticks would only repeat the dots.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import logging.handlers
import os
import stat
import sys
import threading
from collections.abc import Callable

from pyfetchmail.protocols.base import MessageRef

__all__ = [
    "DOT_BYTES",
    "METER_THRESHOLD",
    "Destination",
    "Mode",
    "ProgressDisplay",
    "attach",
    "choose_mode",
    "detach",
    "find_destination",
    "for_poll",
]

log = logging.getLogger(__name__)

#: One tick per this many bytes received (fetchmail: 1024).
DOT_BYTES = 1024
#: Only messages larger than this get the terminal meter.
METER_THRESHOLD = 1 << 20
_ERASE = "\r\x1b[K"  # carriage return + ANSI "erase to end of line"
_ROOT_LOGGER = "pyfetchmail"


class Mode(enum.Enum):
    """How progress is shown."""

    OFF = "off"
    DOTS = "dots"
    METER = "meter"


class Destination(enum.Enum):
    """Where the program's progress output goes."""

    TERMINAL = "terminal"  # stdout is a tty
    REGULAR_FILE = "regular file"  # stdout redirected to a file
    OTHER = "other"  # stdout is a pipe, /dev/null, a socket, ...
    LOGFILE = "logfile"  # a logfile handler replaced the console
    SYSLOG = "syslog"


def choose_mode(*, verbose: bool, silent: bool, showdots: bool, destination: Destination) -> Mode:
    """The display rule of the module docstring, as a pure function.

    >>> choose_mode(verbose=True, silent=False, showdots=False, destination=Destination.OTHER)
    <Mode.DOTS: 'dots'>
    """
    if silent or destination is Destination.SYSLOG:
        return Mode.OFF
    if destination is Destination.TERMINAL and not showdots:
        return Mode.METER
    if not (verbose or showdots):
        return Mode.OFF
    if showdots:
        return Mode.DOTS
    # fetchmail: verbose alone shows dots only when stdout is not a regular file.
    if destination in (Destination.REGULAR_FILE, Destination.LOGFILE):
        return Mode.OFF
    return Mode.DOTS


def _stdout_kind() -> Destination:
    stream = sys.stdout
    if stream is None:
        return Destination.OTHER
    try:
        if stream.isatty():
            return Destination.TERMINAL
        fd = stream.fileno()
        return Destination.REGULAR_FILE if stat.S_ISREG(os.fstat(fd).st_mode) else Destination.OTHER
    except (OSError, ValueError):  # io.UnsupportedOperation is both; closed streams
        return Destination.OTHER


def find_destination() -> tuple[Destination, Callable[[str], None]]:
    """Where log output goes now (from the handlers :mod:`pyfetchmail.log` installed).

    Returns the destination and a function writing text there.
    """
    handlers = logging.getLogger(_ROOT_LOGGER).handlers
    for handler in handlers:
        if isinstance(handler, logging.handlers.SysLogHandler):
            return Destination.SYSLOG, _ignore
        if isinstance(handler, logging.FileHandler):
            return Destination.LOGFILE, _handler_writer(handler)
    return _stdout_kind(), _write_stdout


def _ignore(text: str) -> None:
    """Writer for destinations that take no progress output."""


def _write_stdout(text: str) -> None:
    stream = sys.stdout  # looked up now: tests and detaching replace it
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError):
        stream.write(text)
        stream.flush()


def _handler_writer(handler: logging.FileHandler) -> Callable[[str], None]:
    def write(text: str) -> None:
        handler.acquire()  # the handler's own lock: never inside a log record
        try:
            stream = handler.stream
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.write(text)
                    stream.flush()
        finally:
            handler.release()

    return write


class ProgressDisplay:
    """Renders the progress of one message at a time (see the module docstring).

    *describe* gives the meter's text for a message and its announced size
    (the engine uses the ``reading message ...`` wording); *write* puts text
    on the destination.  :meth:`received` has the signature of a session's
    ``progress`` hook.
    """

    def __init__(
        self,
        mode: Mode,
        write: Callable[[str], None],
        describe: Callable[[MessageRef, int | None], str],
        *,
        threshold: int = METER_THRESHOLD,
    ) -> None:
        self.mode = mode
        self._write = write
        self._describe = describe
        self._threshold = threshold
        self._lock = threading.Lock()
        self._ref: MessageRef | None = None
        self._dots = 0  # ticks written for the current message
        self._shown: int | None = None  # meter state last drawn (percent or MiB)
        self._text = ""
        self._open = False  # something of ours is on the current line

    def received(self, ref: MessageRef, got: int, size: int | None) -> None:
        """*got* bytes of *ref* have arrived so far; *size* is the announced size."""
        if self.mode is Mode.OFF:
            return
        with self._lock:
            if ref != self._ref:
                self._end_line()
                self._ref, self._dots, self._shown, self._text = ref, 0, None, ""
            if self.mode is Mode.DOTS:
                due = got // DOT_BYTES
                if due > self._dots:
                    self._write("." * (due - self._dots))
                    self._dots, self._open = due, True
            else:
                self._meter(ref, got, size)

    def _meter(self, ref: MessageRef, got: int, size: int | None) -> None:
        if size is not None and size > 0:
            if size <= self._threshold:
                return
            state = min(100, got * 100 // size)
            suffix = f" {state}%"
        else:
            if got <= self._threshold:
                return  # unknown size: only once it is clearly big
            state = got >> 20
            suffix = f" {state} MiB"
        if state == self._shown:
            return
        if not self._text:
            self._text = self._describe(ref, size)
        self._shown, self._open = state, True
        self._write(f"\r{self._text}{suffix}\x1b[K")

    def complete(self, ref: MessageRef) -> None:
        """*ref* has been read completely: end its dots line or erase its meter."""
        with self._lock:
            if ref == self._ref:
                self._end_line()
                self._ref = None

    def interrupt(self) -> None:
        """A log line is about to be written: give it a line of its own.

        The current message's dots continue on the next line; its meter is
        redrawn at the next update.
        """
        with self._lock:
            self._end_line()
            self._shown = None

    def close(self) -> None:
        """End whatever line is open (the session is over)."""
        with self._lock:
            self._end_line()
            self._ref = None

    def _end_line(self) -> None:
        if self._open:
            self._write("\n" if self.mode is Mode.DOTS else _ERASE)
            self._open = False


class _LineBreaker(logging.Filter):
    """Handler filter: ends the open progress line before a log record is written."""

    def __init__(self, display: ProgressDisplay) -> None:
        super().__init__()
        self.display = display

    def filter(self, record: logging.LogRecord) -> bool:
        """Never drops *record*; only makes room for it."""
        self.display.interrupt()
        return True


def for_poll(
    *,
    verbose: bool,
    silent: bool,
    showdots: bool,
    describe: Callable[[MessageRef, int | None], str],
) -> ProgressDisplay | None:
    """The display for this poll, or ``None`` when nothing is to be shown."""
    destination, write = find_destination()
    mode = choose_mode(verbose=verbose, silent=silent, showdots=showdots, destination=destination)
    if mode is Mode.OFF:
        return None
    return ProgressDisplay(mode, write, describe)


def attach(
    session: object,
    *,
    verbose: bool,
    silent: bool,
    showdots: bool,
    describe: Callable[[MessageRef, int | None], str],
) -> ProgressDisplay | None:
    """Connect a display to *session*'s optional ``progress`` hook.

    Returns ``None`` (and changes nothing) when the session has no hook or
    nothing is to be shown.  Undo with :func:`detach`.
    """
    if not hasattr(session, "progress"):
        return None
    display = for_poll(verbose=verbose, silent=silent, showdots=showdots, describe=describe)
    if display is not None:
        setattr(session, "progress", display.received)  # noqa: B010 - not in the Protocol
        breaker = _LineBreaker(display)
        for handler in logging.getLogger(_ROOT_LOGGER).handlers:
            handler.addFilter(breaker)
    return display


def detach(session: object, display: ProgressDisplay | None) -> None:
    """End the open progress line and disconnect the hook set by :func:`attach`."""
    if display is None:
        return
    display.close()
    with contextlib.suppress(AttributeError):
        setattr(session, "progress", None)  # noqa: B010
    for handler in logging.getLogger(_ROOT_LOGGER).handlers:
        for filt in list(handler.filters):
            if isinstance(filt, _LineBreaker) and filt.display is display:
                handler.removeFilter(filt)
