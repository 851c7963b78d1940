"""Shared helpers for the end-to-end tests (``test_e2e_*.py``).

Responsibility: run the installed ``pyfetchmail`` console script (and the
real ``/usr/bin/fetchmail`` oracle) in a subprocess exactly as a user would,
with a private HOME, an rc file of mode 0600, explicit ``--idfile`` and
``--pidfile`` under the test's temporary directory, stdin not a tty, and a
bounded timeout.

Invariants: nothing here touches the invoking user's real files (HOME and
FETCHMAILHOME point at the test directory); every subprocess has a timeout;
the environment is minimal and in the C locale so output is predictable.
"""

from __future__ import annotations

import contextlib
import os
import poplib
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.loopback import LoopbackServer

__all__ = [
    "E2E",
    "FETCHMAIL",
    "PROGRAMS",
    "DroppingSmtpServer",
    "Outcome",
    "Run",
    "both_runs",
    "crlf",
    "fresh_user",
    "normalise_received",
    "pop3_rc",
    "pyfetchmail_argv",
    "received_top",
    "run_both",
    "sample",
    "server_uids",
    "strip_received",
    "without_return_path",
]

FETCHMAIL = "/usr/bin/fetchmail"
"""The reference fetchmail 6.4.37 binary."""


def pyfetchmail_argv() -> list[str]:
    """The console script, falling back to ``python -m pyfetchmail``."""
    script = shutil.which("pyfetchmail") or str(Path(sys.executable).parent / "pyfetchmail")
    if os.access(script, os.X_OK):
        return [script]
    if os.environ.get("CI"):
        pytest.fail("the pyfetchmail console script is not installed", pytrace=False)
    return [sys.executable, "-m", "pyfetchmail"]


def sample(n: int, *, size: int = 0, to: str = "joe@remote.example") -> bytes:
    """A small, distinct message as an MTA stores it (LF line ends).

    It carries a ``Return-Path`` so the tests can check it is removed for
    SMTP/LMTP/BSMTP and kept for an MDA (spec §6.6 step 11). *size* pads the
    body to at least that many bytes.
    """
    head = (
        f"Return-Path: <sender{n}@remote.example>\n"
        f"From: Sender {n} <sender{n}@remote.example>\n"
        f"To: {to}\n"
        f"Subject: e2e message {n}\n"
        f"Message-ID: <e2e{n}.{size}@remote.example>\n"
        f"Date: Sat, 21 Nov 2026 07:00:0{n % 10} +0000\n"
        "\n"
    )
    body = f"Hello {n}.\n.leading dot line\n..two dots\nlast line\n"
    raw = (head + body).encode()
    if len(raw) < size:
        line = b"x" * 75 + b"\n"
        raw += line * ((size - len(raw)) // len(line) + 1)
    return raw


def crlf(raw: bytes) -> bytes:
    """LF-stored bytes as POP3 serves them (CRLF)."""
    return raw.replace(b"\n", b"\r\n")


def received_top(data: bytes) -> tuple[bytes, bytes]:
    """Split our ``Received:`` header (first header, with continuations) from the rest."""
    eol = b"\r\n" if b"\r\n" in data[:200] else b"\n"
    assert data.startswith(b"Received: from "), data[:200]
    lines = data.split(eol)
    n = 1
    while n < len(lines) and lines[n][:1] in (b"\t", b" "):
        n += 1
    return eol.join(lines[:n]) + eol, eol.join(lines[n:])


def strip_received(data: bytes) -> bytes:
    """The message without the Received header we inserted on top."""
    return received_top(data)[1]


def without_return_path(raw: bytes) -> bytes:
    """*raw* minus its first ``Return-Path:`` line."""
    lines = raw.split(b"\n")
    for i, line in enumerate(lines):
        if line.lower().startswith(b"return-path:"):
            del lines[i]
            break
    return b"\n".join(lines)


@dataclass
class Run:
    """A finished run: exit status and the two output streams."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return (
            f"argv={self.argv}\nstatus={self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


@dataclass
class E2E:
    """One test's private world: HOME, rc file, idfile, pidfile."""

    home: Path
    rc: Path = field(init=False)
    idfile: Path = field(init=False)
    pidfile: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.rc = self.home / "fetchmailrc"
        self.idfile = self.home / "fetchids"
        self.pidfile = self.home / "fetchmail.pid"

    def write_rc(self, text: str, name: str | None = None) -> Path:
        """Write the rc file (mode 0600) and return its path."""
        path = self.rc if name is None else self.home / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(path, 0o600)
        return path

    def env(self) -> dict[str, str]:
        path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        env = {
            "HOME": str(self.home),
            "FETCHMAILHOME": str(self.home),
            "PATH": path,
            "LC_ALL": "C",
            "LANG": "C",
            "TZ": "UTC",
        }
        for keep in ("PYTHONPATH", "VIRTUAL_ENV"):
            if keep in os.environ:
                env[keep] = os.environ[keep]
        return env

    def _run(self, argv: list[str], timeout: float) -> Run:
        done = subprocess.run(
            argv,
            cwd=self.home,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(argv, done.returncode, done.stdout, done.stderr)

    def files_args(self, rc: Path | None = None) -> list[str]:
        return [
            "-f",
            str(rc or self.rc),
            "--idfile",
            str(self.idfile),
            "--pidfile",
            str(self.pidfile),
        ]

    def pyfetchmail(self, *args: str, rc: Path | None = None, timeout: float = 45) -> Run:
        """Run ``pyfetchmail -f RC --idfile F --pidfile F ARGS``."""
        return self._run([*pyfetchmail_argv(), *self.files_args(rc), *args], timeout)

    def fetchmail(self, *args: str, rc: Path | None = None, timeout: float = 45) -> Run:
        """Run the oracle ``fetchmail -N -f RC --idfile F --pidfile F ARGS``."""
        if not os.access(FETCHMAIL, os.X_OK):
            if os.environ.get("CI"):
                pytest.fail(f"{FETCHMAIL} is not installed", pytrace=False)
            pytest.skip(f"{FETCHMAIL} is not installed")
        return self._run([FETCHMAIL, "-N", *self.files_args(rc), *args], timeout)

    def idfile_lines(self) -> list[str]:
        if not self.idfile.exists():
            return []
        return self.idfile.read_text().splitlines()


def pop3_rc(
    dovecot: Any,
    user: Any,
    *,
    smtp_port: int | None = None,
    user_opts: str = "",
    server_opts: str = "",
    globals_: str = "",
    local: str = "joe",
) -> str:
    """An rc for the test Dovecot over POP3 + verified STLS.

    Delivery goes to ``smtphost 127.0.0.1/<smtp_port>`` when a port is given;
    otherwise *user_opts* must name the sink (mda, bsmtp, lmtp ...).
    """
    sink = f" smtphost 127.0.0.1/{smtp_port}" if smtp_port is not None else ""
    return (
        f"{globals_}"
        f"poll 127.0.0.1 proto pop3 port {dovecot.pop3_port} no dns {server_opts}\n"
        f'  user "{user.name}" password "{user.password}" is {local} here\n'
        f'  sslcertfile "{dovecot.ca_file}" sslcommonname localhost{sink}\n'
        f"  {user_opts}\n"
    )


class DroppingSmtpServer(LoopbackServer):
    """A scripted SMTP listener on 127.0.0.1 that hangs up in the middle of DATA.

    It answers the dialogue normally up to ``354``, reads at most *drop_after*
    bytes of the message, then closes the connection without any reply, so the
    client never gets an end-of-data acknowledgement. ``data_started`` counts
    the DATA phases entered; ``commands`` lists every command line seen.
    """

    def __init__(self, drop_after: int = 10) -> None:
        self.drop_after = drop_after
        self.commands: list[str] = []
        self.data_started = 0
        self.serve()

    def handle_connection(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        conn.sendall(b"220 drop.test ESMTP\r\n")
        reader = conn.makefile("rb")
        while True:
            line = reader.readline(4096)
            if not line:
                return
            text = line.decode("ascii", "replace").rstrip("\r\n")
            self.commands.append(text)
            verb = text.split(" ", 1)[0].upper()
            if verb in ("EHLO", "LHLO"):
                conn.sendall(b"250-drop.test\r\n250 8BITMIME\r\n")
            elif verb == "DATA":
                conn.sendall(b"354 go ahead\r\n")
                self.data_started += 1
                reader.read(self.drop_after)
                conn.shutdown(socket.SHUT_RDWR)
                return
            elif verb == "QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 OK\r\n")


def server_uids(dovecot: Any, user: Any) -> list[str]:
    """The POP3 UIDL list of *user*'s box, read over verified STLS (independent of our client)."""
    pop = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        pop.stls(ssl.create_default_context(cafile=str(dovecot.ca_file)))
        pop.user(user.name)
        pop.pass_(user.password)
        _, lines, _ = pop.uidl()
        return [line.decode().split()[1] for line in lines]
    finally:
        pop.quit()


# --- running fetchmail and pyfetchmail on the same setup ------------------------

PROGRAMS = ("fetchmail", "pyfetchmail")
"""The oracle first, then ours (some tests rely on that order)."""

_RECEIVED_DATE = re.compile(
    rb"(; |\r?\n\t)[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(\S+\)"
)


def normalise_received(data: bytes) -> bytes:
    """Hide what legitimately differs between the two programs' output.

    The program name/version and the date in the Received header (after
    ``"; "`` or, with two or more recipients and so no ``for`` clause, on its
    own continuation line), and fetchmail's blank padding after
    ``Content-Transfer-Encoding: 8bit`` (with ``mimedecode`` it overwrites
    ``quoted-printable`` in place; pyfetchmail writes no padding).
    """
    data = re.sub(rb"with POP3 \((?:py)?fetchmail-[^)]*\)", b"with POP3 (PROGRAM)", data)
    data = re.sub(rb"(?m)^(Content-Transfer-Encoding: 8bit) +(?=\r?$)", rb"\1", data)
    return _RECEIVED_DATE.sub(rb"\1DATE", data)


def fresh_user(dovecot: Any, raws: list[bytes]) -> Any:
    """A new Dovecot user whose INBOX holds *raws*."""
    user = dovecot.add_user(f"i{secrets.token_hex(5)}", secrets.token_urlsafe(12))
    for raw in raws:
        user.deliver(raw)
    return user


@dataclass
class Outcome:
    """One program's run in :func:`run_both`."""

    run: Run
    user: Any
    env: E2E
    received: list[Any]

    @property
    def left(self) -> int:
        """Messages left on the server."""
        return len(self.user.messages())


def run_both(
    root: Path,
    dovecot: Any,
    raws: list[bytes],
    prepare: Callable[[Any, E2E], list[str]],
    sink: Any = None,
) -> dict[str, Outcome]:
    """Give each program its own fresh user holding *raws* and its own HOME.

    ``prepare(user, env)`` writes the rc (and anything else) and returns the
    extra command-line arguments. *sink*'s messages accepted during each run
    land in ``Outcome.received``.
    """
    out: dict[str, Outcome] = {}
    for prog in PROGRAMS:
        env = E2E(root / prog)
        user = fresh_user(dovecot, raws)
        args = prepare(user, env)
        before = len(sink.received) if sink is not None else 0
        done = env.fetchmail(*args) if prog == "fetchmail" else env.pyfetchmail(*args)
        received = list(sink.received[before:]) if sink is not None else []
        out[prog] = Outcome(done, user, env, received)
    return out


def both_runs(outcomes: dict[str, Outcome]) -> str:
    """Both transcripts, for an assertion message."""
    return "\n\n".join(str(outcomes[prog].run) for prog in PROGRAMS)
