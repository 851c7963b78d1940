"""Progress display of the real console script (spec §7.3, §7.5).

Dots (``.`` per KiB) with ``-v`` when stdout is not a regular file, or with
``--showdots`` anywhere but syslog; never in a logfile without
``--showdots``; on a terminal (a pty here) a meter for big messages that is
erased again, so the log lines stay as they are.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fake_pop3 import FakePop3Server
from tests.integration.e2e_helpers import E2E, crlf, pyfetchmail_argv, sample

pytestmark = pytest.mark.timeout(90)

SMALL = crlf(sample(1, size=20_000))
DOTS = "." * (len(SMALL) // 1024)
READING = f"pyfetchmail: reading message joe@127.0.0.1:1 of 1 ({len(SMALL)} octets) flushed"


def _rc(env: E2E, port: int, smtp_port: int, globals_: str = "") -> None:
    env.write_rc(
        f"{globals_}poll 127.0.0.1 proto pop3 port {port} no dns\n"
        "  user joe password secret is joe here\n"
        f"  sslproto '' no sslcertck smtphost 127.0.0.1/{smtp_port}\n"
    )


def _poll(tmp_path: Path, smtp_sink: Any, *args: str, globals_: str = "") -> tuple[E2E, str]:
    env = E2E(tmp_path)
    with FakePop3Server(mailbox=[SMALL]) as srv:
        _rc(env, srv.port, smtp_sink.port, globals_)
        done = env.pyfetchmail(*args)
    assert done.returncode == 0, done
    assert len(smtp_sink.received) == 1
    return env, done.stdout


def test_verbose_to_a_pipe_shows_a_line_of_dots(tmp_path: Path, smtp_sink: Any) -> None:
    _env, out = _poll(tmp_path, smtp_sink, "-v")
    lines = out.splitlines()
    assert DOTS in lines, out
    assert READING in lines, out
    # the dots line ends before the message's log line
    assert lines.index(DOTS) < lines.index(READING)


def test_normal_output_to_a_pipe_has_no_dots(tmp_path: Path, smtp_sink: Any) -> None:
    _env, out = _poll(tmp_path, smtp_sink)
    assert "..." not in out
    assert READING in out.splitlines()


def test_showdots_without_verbose(tmp_path: Path, smtp_sink: Any) -> None:
    _env, out = _poll(tmp_path, smtp_sink, "--showdots")
    assert DOTS in out.splitlines(), out


def test_silent_wins_over_showdots(tmp_path: Path, smtp_sink: Any) -> None:
    _env, out = _poll(tmp_path, smtp_sink, "-s", "--showdots")
    assert "." not in out


def test_logfile_stays_clean_without_showdots(tmp_path: Path, smtp_sink: Any) -> None:
    logfile = tmp_path / "log"
    logfile.write_text("")
    _env, out = _poll(tmp_path, smtp_sink, "-v", "-L", str(logfile))
    text = logfile.read_text()
    assert "reading message joe@127.0.0.1:1 of 1" in text
    assert not re.search(r"^\.+$", text, re.M), text
    assert "..." not in out


def test_showdots_goes_into_the_logfile(tmp_path: Path, smtp_sink: Any) -> None:
    logfile = tmp_path / "log"
    logfile.write_text("")
    _env, out = _poll(tmp_path, smtp_sink, "-L", str(logfile), globals_="set showdots\n")
    lines = logfile.read_text().splitlines()
    assert DOTS in lines, lines
    reading = [i for i, line in enumerate(lines) if "reading message joe@127.0.0.1:1" in line]
    assert reading
    assert lines.index(DOTS) < reading[0]
    assert "..." not in out


# --- a terminal ---------------------------------------------------------------


def _run_on_pty(env: E2E, *args: str, limit: float = 60) -> tuple[int, str]:
    """Run the console script with stdout and stderr on a pty; return status and output."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [*pyfetchmail_argv(), *env.files_args(), *args],
            cwd=env.home,
            env=env.env(),
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
        )
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the pty
                break
            if not data:
                break
            chunks.append(data)
        status = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(master)
    return status, b"".join(chunks).decode("utf-8", "replace")


def test_terminal_meter_for_a_big_message(tmp_path: Path, smtp_sink: Any) -> None:
    big = crlf(sample(1, size=3 << 20))
    env = E2E(tmp_path)
    with FakePop3Server(mailbox=[big, SMALL]) as srv:
        _rc(env, srv.port, smtp_sink.port)
        status, out = _run_on_pty(env)
    assert status == 0, out
    assert len(smtp_sink.received) == 2
    meter = f"\rreading message joe@127.0.0.1:1 of 2 ({len(big)} octets) "
    assert meter + "100%\x1b[K" in out, repr(out[-2000:])
    assert re.search(re.escape(meter) + r"\d{1,2}%\x1b\[K", out), repr(out[:2000])
    assert "\r\x1b[K" in out  # erased again
    # the log lines are unchanged; the small message gets no meter and no dots
    lines = out.replace("\r\n", "\n").split("\n")
    assert f"pyfetchmail: reading message joe@127.0.0.1:1 of 2 ({len(big)} octets) flushed" in (
        line.rpartition("\x1b[K")[2] for line in lines
    )
    assert f"reading message joe@127.0.0.1:2 of 2 ({len(SMALL)} octets) 100%" not in out
    assert "..." not in out


def test_terminal_with_showdots_shows_dots(tmp_path: Path, smtp_sink: Any) -> None:
    env = E2E(tmp_path)
    with FakePop3Server(mailbox=[SMALL]) as srv:
        _rc(env, srv.port, smtp_sink.port)
        status, out = _run_on_pty(env, "--showdots")
    assert status == 0, out
    lines = out.replace("\r\n", "\n").split("\n")
    assert DOTS in lines, repr(out)
    assert "\x1b[K" not in out


# --- IMAP ---------------------------------------------------------------------------
