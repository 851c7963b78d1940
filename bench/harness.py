"""Benchmark harness: run a mail retriever against a prepared box and measure it.

Responsibility: for one *case* (program, protocol, delivery, latency, mailbox
contents) prepare a fresh Dovecot user, a sink or MDA, an optional delay
proxy and an rc file; run the program once as a child process; measure the
wall time and the child's peak RSS (``os.wait4``); check that every message
arrived and the server box is empty; report a row.

Invariants:

- Every server is on 127.0.0.1 (private Dovecot from :mod:`testbed`).
- A failure of the program is a row with its exit status and the last line
  of its output, never an exception that stops the whole run.
- Every child is bounded by a timeout and killed when it overruns.
- The same rc text drives fetchmail and pyfetchmail (pyfetchmail reads the
  same rc language).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from testbed.dovecot import Dovecot, MailUser
from testbed.fastsink import FastSmtpSink
from testbed.proxy import DelayProxy

__all__ = ["Case", "Result", "mailbox_octets", "markdown_table", "program_command", "run_case"]

FETCHMAIL = "/usr/bin/fetchmail"
GNU_TIME = "/usr/bin/time"
MDA_COMMAND = "cat >/dev/null"
"""The trivial MDA (run through ``sh -c``): one fork+exec per message, stores nothing."""


@dataclass(frozen=True, slots=True)
class Case:
    """One measurement.

    *program*: "fetchmail" or "pyfetchmail". *protocol*: "pop3" (plain port,
    STLS upgraded and verified) or "pop3s" (implicit TLS). *delivery*:
    "smtp" (fast sink) or "mda" (:data:`MDA_COMMAND`). *delay*: seconds
    added each way by a proxy (0 = none). *fill* puts the messages into the
    user's Maildir and returns their count.
    """

    name: str
    program: str
    protocol: str
    delivery: str
    fill: Callable[[MailUser], int]
    delay: float = 0.0
    timeout: float = 900.0


@dataclass(slots=True)
class Result:
    """One row of the table."""

    case: Case
    status: int | None = None
    wall: float | None = None
    maxrss_kb: int | None = None
    messages: int = 0
    delivered: int = 0
    left_on_server: int = 0
    octets: int = 0
    note: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 0 and self.delivered == self.messages and not self.left_on_server


def program_command(program: str, rc: Path, state: Path) -> list[str] | None:
    """The argv for *program* with *rc*, or None if it is not installed."""
    idfile = str(state / "fetchids")
    pidfile = str(state / "pid")
    if program == "fetchmail":
        if not Path(FETCHMAIL).exists():
            return None
        return [FETCHMAIL, "-N", "-f", str(rc), "--idfile", idfile, "--pidfile", pidfile]
    if program == "pyfetchmail":
        exe = shutil.which("pyfetchmail")
        if exe is None:
            return None
        return [exe, "-N", "-f", str(rc), "--idfile", idfile, "--pidfile", pidfile]
    raise ValueError(f"unknown program {program!r}")


def rc_text(
    *, proto: str, port: int, user: MailUser, case: Case, sink_port: int, options: str
) -> str:
    """The rc file both programs read: one entry, delivering to the sink or the MDA."""
    if case.delivery == "smtp":
        deliver = f"smtphost 127.0.0.1/{sink_port}"
    else:
        deliver = f'mda "{MDA_COMMAND}"'
    return (
        "set no bouncemail\n"
        f"poll 127.0.0.1 with proto {proto} service {port}\n"
        f'  user "{user.name}" there with password "{user.password}" is "root" here\n'
        f"  {deliver}\n"
        f"  {options}\n"
    )


def write_private(path: Path, text: str) -> None:
    """Write *text* to *path* with mode 0600 (both programs refuse a readable rc file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def write_rc(
    path: Path, *, user: MailUser, port: int, case: Case, ca_file: Path, sink_port: int
) -> None:
    """Write the POP3 rc file (mode 0600) both programs read."""
    ssl = " ssl" if case.protocol == "pop3s" else ""
    options = f"fetchall{ssl} sslcertfile {ca_file} sslcommonname localhost"
    write_private(
        path,
        rc_text(proto="POP3", port=port, user=user, case=case, sink_port=sink_port,
                options=options),
    )  # fmt: skip


def _run_child(argv: Sequence[str], timeout: float, log_path: Path) -> tuple[int, float, int]:
    """Run *argv*; return (exit status, wall seconds, peak RSS in KiB).

    The peak RSS comes from GNU time's ``%M``, which reads ``wait4`` in a
    small process: a child forked straight from this (large) Python process
    would report our RSS, because Linux keeps the pre-exec high-water mark in
    ``ru_maxrss``. Without GNU time we fall back to our own ``wait4``.
    """
    env = dict(os.environ)
    env.setdefault("HOME", str(log_path.parent))
    rss_file = log_path.with_suffix(".rss")
    wrapped = list(argv)
    if Path(GNU_TIME).exists():
        wrapped = [GNU_TIME, "-q", "-f", "%M", "-o", str(rss_file), *argv]
    with open(log_path, "wb") as out:
        start = time.monotonic()
        proc = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    maxrss = usage.ru_maxrss
    with contextlib.suppress(OSError, ValueError, IndexError):
        maxrss = int(rss_file.read_text().split()[-1])
    return proc.returncode, wall, maxrss


def run_case(dovecot: Dovecot, case: Case, workdir: Path) -> Result:
    """Prepare, run and check one *case*; never raises for a program failure."""
    result = Result(case)
    state = Path(tempfile.mkdtemp(prefix=f"{case.name}-", dir=workdir))
    user = dovecot.add_user(f"b{os.getpid()}x{int(time.time() * 1000) % 10**9}", "benchpw")
    result.messages = case.fill(user)
    result.octets = mailbox_octets(user)
    port = dovecot.pop3s_port if case.protocol == "pop3s" else dovecot.pop3_port
    sink = FastSmtpSink()
    sink.start()
    proxy: DelayProxy | None = None
    try:
        if case.delay:
            proxy = DelayProxy(dovecot.host, port, delay=case.delay, lifetime=case.timeout + 60)
            proxy.start()
            port = proxy.port
        rc = state / "fetchmailrc"
        write_rc(rc, user=user, port=port, case=case, ca_file=dovecot.ca_file, sink_port=sink.port)
        run_program(result, rc, state, user=user, sink_messages=lambda: sink.messages)
    finally:
        if proxy is not None:
            proxy.stop()
        sink.stop()
        shutil.rmtree(user.home, ignore_errors=True)
    return result


def mailbox_octets(user: MailUser) -> int:
    """Size of the box as the server serves it (CRLF), from Dovecot's ``W=`` in names."""
    total = 0
    for path in user.message_files():
        match = re.search(r",W=(\d+)", path.name)
        total += int(match.group(1)) if match else path.stat().st_size
    return total


def run_program(
    result: Result,
    rc: Path,
    state: Path,
    *,
    user: MailUser,
    sink_messages: Callable[[], int],
) -> None:
    """Run *result.case*'s program on *rc* and fill in *result*: time, RSS, what arrived."""
    case = result.case
    argv = program_command(case.program, rc, state)
    if argv is None:
        result.note = f"{case.program} is not installed"
        return
    log_path = state / "output.log"
    result.status, result.wall, result.maxrss_kb = _run_child(argv, case.timeout, log_path)
    result.left_on_server = len(user.message_files())
    if case.delivery == "smtp":
        result.delivered = sink_messages()
    else:
        result.delivered = result.messages - result.left_on_server
    if not result.ok:
        result.note = _last_line(log_path)


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    text = lines[-1] if lines else "(no output)"
    return text if len(text) <= 120 else text[:117] + "..."


def markdown_table(results: Sequence[Result]) -> str:
    """A Markdown table of *results* (time in s, peak RSS in MiB)."""
    rows = [
        "| case | program | messages | wall s | msg/s | MB/s | peak RSS MiB | exit | note |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        wall = f"{r.wall:.2f}" if r.wall is not None else "-"
        rate = f"{r.delivered / r.wall:.1f}" if r.wall and r.delivered else "-"
        mbps = f"{r.octets / 1e6 / r.wall:.1f}" if r.wall and r.octets and r.ok else "-"
        rss = f"{r.maxrss_kb / 1024:.1f}" if r.maxrss_kb is not None else "-"
        status = "-" if r.status is None else str(r.status)
        note = r.note.replace("|", "\\|")
        if r.status is not None and not r.ok and not note:
            note = f"delivered {r.delivered}/{r.messages}, left {r.left_on_server}"
        rows.append(
            f"| {r.case.name} | {r.case.program} | {r.delivered}/{r.messages} | {wall} | {rate} "
            f"| {mbps} | {rss} | {status} | {note} |"
        )
    return "\n".join(rows)


def self_rusage_note() -> str:
    """Peak RSS of this harness process (so it is not mistaken for a child's)."""
    return f"harness peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
