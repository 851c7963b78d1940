"""The progress display: the mode rule (spec §7.3) and what each mode writes."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyfetchmail.engine import progress
from pyfetchmail.engine.progress import Destination, Mode, ProgressDisplay, choose_mode
from pyfetchmail.protocols.base import MessageRef

D = Destination


@pytest.mark.parametrize(
    ("verbose", "silent", "showdots", "destination", "mode"),
    [
        # fetchmail's rule: (verbose or showdots) and not silent and not syslog
        # and (showdots or stdout not a regular file)
        (False, False, False, D.OTHER, Mode.OFF),
        (True, False, False, D.OTHER, Mode.DOTS),
        (True, False, False, D.REGULAR_FILE, Mode.OFF),
        (True, False, False, D.LOGFILE, Mode.OFF),
        (False, False, True, D.REGULAR_FILE, Mode.DOTS),
        (False, False, True, D.LOGFILE, Mode.DOTS),
        (True, False, True, D.SYSLOG, Mode.OFF),
        (True, True, True, D.OTHER, Mode.OFF),
        (True, False, False, D.SYSLOG, Mode.OFF),
        # our terminal meter; showdots asks for fetchmail's dots instead
        (False, False, False, D.TERMINAL, Mode.METER),
        (True, False, False, D.TERMINAL, Mode.METER),
        (False, False, True, D.TERMINAL, Mode.DOTS),
        (False, True, False, D.TERMINAL, Mode.OFF),
    ],
)
def test_choose_mode(
    verbose: bool, silent: bool, showdots: bool, destination: Destination, mode: Mode
) -> None:
    got = choose_mode(verbose=verbose, silent=silent, showdots=showdots, destination=destination)
    assert got is mode


def _describe(ref: MessageRef, size: int | None) -> str:
    return f"reading message joe@pop.test:{ref.number} of 9 ({size} octets)"


def _display(
    mode: Mode, threshold: int = progress.METER_THRESHOLD
) -> tuple[ProgressDisplay, list[str]]:
    out: list[str] = []
    return ProgressDisplay(mode, out.append, _describe, threshold=threshold), out


def test_dots_one_per_kib_and_newline_when_complete() -> None:
    display, out = _display(Mode.DOTS)
    ref = MessageRef(1, "a", 5000)
    for got in (100, 1023, 1024, 3000, 5000):
        display.received(ref, got, 5000)
    assert "".join(out) == "...."  # 5000 // 1024
    display.complete(ref)
    assert "".join(out) == "....\n"
    display.complete(ref)  # idempotent
    display.close()
    assert "".join(out) == "....\n"


def test_dots_small_message_writes_nothing() -> None:
    display, out = _display(Mode.DOTS)
    ref = MessageRef(1, "a", 500)
    display.received(ref, 500, 500)
    display.complete(ref)
    assert out == []


def test_dots_next_message_ends_the_previous_line() -> None:
    # POP3 pipelining can read message 2 before the engine took message 1.
    display, out = _display(Mode.DOTS)
    one, two = MessageRef(1, "a", 2048), MessageRef(2, "b", 2048)
    display.received(one, 2048, 2048)
    display.received(two, 1024, 2048)
    display.complete(one)  # no longer current: nothing to end
    display.received(two, 2048, 2048)
    display.close()
    assert "".join(out) == "..\n..\n"


def test_meter_shows_percent_in_place_and_erases() -> None:
    display, out = _display(Mode.METER, threshold=1000)
    ref = MessageRef(3, "c", 4000)
    for got in (1000, 1010, 2000, 4000):
        display.received(ref, got, 4000)
    assert out == [
        "\rreading message joe@pop.test:3 of 9 (4000 octets) 25%\x1b[K",
        "\rreading message joe@pop.test:3 of 9 (4000 octets) 50%\x1b[K",
        "\rreading message joe@pop.test:3 of 9 (4000 octets) 100%\x1b[K",
    ]  # 1010 bytes is still 25%: not redrawn
    display.complete(ref)
    assert out[-1] == "\r\x1b[K"


def test_meter_ignores_small_messages() -> None:
    display, out = _display(Mode.METER, threshold=1000)
    ref = MessageRef(1, "a", 999)
    display.received(ref, 999, 999)
    display.complete(ref)
    assert out == []


def test_meter_unknown_size_shows_mebibytes_once_big() -> None:
    display, out = _display(Mode.METER, threshold=1 << 20)
    ref = MessageRef(1, "a", None)
    display.received(ref, 1 << 19, None)
    assert out == []
    display.received(ref, (3 << 20) + 5, None)
    assert out == ["\rreading message joe@pop.test:1 of 9 (None octets) 3 MiB\x1b[K"]
    display.close()
    assert out[-1] == "\r\x1b[K"


def test_off_writes_nothing() -> None:
    display, out = _display(Mode.OFF)
    ref = MessageRef(1, "a", 1 << 22)
    display.received(ref, 1 << 22, 1 << 22)
    display.close()
    assert out == []


# --- destinations -----------------------------------------------------------


@pytest.fixture
def clean_root() -> Iterator[logging.Logger]:
    root = logging.getLogger("pyfetchmail")
    saved, level = list(root.handlers), root.level
    for handler in saved:
        root.removeHandler(handler)
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def test_destination_logfile_gets_the_dots(clean_root: logging.Logger, tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_text("")
    clean_root.addHandler(logging.handlers.WatchedFileHandler(path))
    destination, write = progress.find_destination()
    assert destination is Destination.LOGFILE
    write("...\n")
    assert path.read_text() == "...\n"


def test_destination_syslog_writes_nowhere(clean_root: logging.Logger) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(0.2)
        clean_root.addHandler(logging.handlers.SysLogHandler(address=sink.getsockname()))
        destination, write = progress.find_destination()
        assert destination is Destination.SYSLOG
        write("....")
        with pytest.raises(TimeoutError):
            sink.recv(100)


def test_destination_stdout_kinds(
    clean_root: logging.Logger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert progress.find_destination()[0] is Destination.OTHER
    with open(tmp_path / "out", "w") as regular:
        monkeypatch.setattr(sys, "stdout", regular)
        destination, write = progress.find_destination()
        assert destination is Destination.REGULAR_FILE
        write("..")
    assert (tmp_path / "out").read_text() == ".."
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "w") as pipe:
        monkeypatch.setattr(sys, "stdout", pipe)
        assert progress.find_destination()[0] is Destination.OTHER
        assert reader is not None
    monkeypatch.setattr(sys, "stdout", None)
    assert progress.find_destination()[0] is Destination.OTHER


def test_closed_stdout_never_fails(
    clean_root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    destination, write = progress.find_destination()
    assert destination is Destination.OTHER
    write("...")  # swallowed


# --- attaching to a session -------------------------------------------------


class _HookedSession:
    progress = None


class _PlainSession:
    pass


def test_attach_sets_and_detach_clears_the_hook(
    clean_root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    session = _HookedSession()
    display = progress.attach(
        session, verbose=True, silent=False, showdots=False, describe=_describe
    )
    assert display is not None
    assert display.mode is Mode.DOTS
    assert session.progress is not None
    session.progress(MessageRef(1, "a", 3000), 3000, 3000)
    progress.detach(session, display)
    assert session.progress is None
    assert out.getvalue() == "..\n"


def test_attach_leaves_sessions_without_a_hook_alone(clean_root: logging.Logger) -> None:
    session = _PlainSession()
    assert (
        progress.attach(session, verbose=True, silent=False, showdots=True, describe=_describe)
        is None
    )
    assert not hasattr(session, "progress")
    progress.detach(session, None)


def test_attach_returns_none_when_nothing_to_show(
    clean_root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    session = _HookedSession()
    assert (
        progress.attach(session, verbose=False, silent=False, showdots=False, describe=_describe)
        is None
    )
    assert session.progress is None


def test_interrupt_gives_a_log_line_its_own_line() -> None:
    display, out = _display(Mode.DOTS)
    ref = MessageRef(1, "a", 4096)
    display.received(ref, 2048, 4096)
    display.interrupt()
    display.interrupt()  # nothing open: nothing written
    display.received(ref, 4096, 4096)  # continues on a new line
    display.complete(ref)
    assert "".join(out) == "..\n..\n"


def test_interrupt_erases_and_redraws_the_meter() -> None:
    display, out = _display(Mode.METER, threshold=1000)
    ref = MessageRef(1, "a", 4000)
    display.received(ref, 2000, 4000)
    display.interrupt()
    display.received(ref, 2001, 4000)  # same percentage, redrawn after the log line
    assert out[1:] == ["\r\x1b[K", "\rreading message joe@pop.test:1 of 9 (4000 octets) 50%\x1b[K"]


def test_log_records_end_the_dots_line(
    clean_root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("pyfetchmail: %(message)s"))
    clean_root.addHandler(handler)
    clean_root.setLevel(logging.INFO)
    session = _HookedSession()
    display = progress.attach(
        session, verbose=True, silent=False, showdots=False, describe=_describe
    )
    assert display is not None
    ref = MessageRef(1, "a", 5000)
    display.received(ref, 2048, 5000)
    logging.getLogger("pyfetchmail.test").info("in the middle")
    display.received(ref, 5000, 5000)
    display.complete(ref)
    progress.detach(session, display)
    assert handler.filters == []
    logging.getLogger("pyfetchmail.test").info("after")
    assert out.getvalue() == "..\npyfetchmail: in the middle\n..\npyfetchmail: after\n"
