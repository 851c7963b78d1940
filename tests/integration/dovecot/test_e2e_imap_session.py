"""End to end over IMAP: IDLE, mandatory STARTTLS, authentication (spec §5.3, §5.4, §5.6, §7.5).

The installed ``pyfetchmail`` runs in a subprocess with a private HOME,
``--idfile``/``--pidfile`` and a bounded timeout, against the private
Dovecot (IDLE, auth) or the scripted fake IMAP server (a server that does not
offer, or refuses, STARTTLS).
"""

from __future__ import annotations

import imaplib
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fake_imap import FakeImapServer
from tests.integration.dovecot.test_e2e_imap import _bodies, _fill, _served, imap_rc
from tests.integration.e2e_helpers import E2E, pyfetchmail_argv, sample

pytestmark = [pytest.mark.dovecot, pytest.mark.timeout(90)]


@pytest.fixture
def e2e(tmp_path: Path) -> Iterator[E2E]:
    world = E2E(tmp_path / "home")
    world.procs = []  # type: ignore[attr-defined]
    yield world
    for proc in world.procs:  # type: ignore[attr-defined]
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _start(e2e: E2E, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*pyfetchmail_argv(), *e2e.files_args(), *args],
        cwd=e2e.home,
        env=e2e.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    e2e.procs.append(proc)  # type: ignore[attr-defined]
    return proc


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def _append(dovecot: Any, user: Any, raw: bytes) -> None:
    """APPEND *raw* to INBOX from another IMAP connection."""
    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        imap.starttls(ssl.create_default_context(cafile=str(dovecot.ca_file)))
        imap.login(user.name, user.password)
        typ, data = imap.append("INBOX", None, None, raw.replace(b"\n", b"\r\n"))
        assert typ == "OK", data
    finally:
        imap.logout()


@pytest.mark.parametrize("mode", [("-d", "3600", "-N"), ()], ids=["daemon-N", "foreground"])
def test_idle_delivers_appended_mail_at_once_then_quit(
    mode: tuple[str, ...], e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    first = _fill(mailuser, 0)
    e2e.write_rc(imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="idle"))
    daemon = _start(e2e, *mode)
    assert _wait(lambda: len(smtp_sink.received) >= 1, 20), daemon.poll()
    # Let the first pass end and the client enter IDLE (an interval of an
    # hour, or none at all, means only the server's EXISTS can wake it).
    time.sleep(1.0)
    assert daemon.poll() is None
    appended = sample(2)
    _append(dovecot, mailuser, appended)
    start = time.monotonic()
    assert _wait(lambda: len(smtp_sink.received) >= 2, 10)
    latency = time.monotonic() - start
    assert latency < 2.5, f"IDLE wake-up took {latency:.2f} s"
    assert _bodies(smtp_sink) == [_served(first[0]), _served(appended)]
    assert _wait(lambda: mailuser.messages() == [], 5)

    quit_run = e2e.pyfetchmail("--quit", timeout=30)
    assert quit_run.returncode == 0, quit_run
    # fetchmail's wording: a daemon (even with -N) is "background".
    kind = "background" if mode else "foreground"
    assert f"{kind} pyfetchmail at {daemon.pid} killed" in quit_run.output
    _out, err = daemon.communicate(timeout=15)
    assert daemon.returncode is not None
    assert not e2e.pidfile.exists()
    assert "Traceback" not in err
    assert len(smtp_sink.received) == 2


# -- STARTTLS mandatory (spec §5.6: sslcertck is on by default) -----------------------


_NO_STARTTLS = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=CRAM-MD5 IDLE] fake ready\r\n"
_STARTTLS = b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN AUTH=CRAM-MD5 IDLE] fake ready\r\n"


@pytest.mark.parametrize(
    ("greeting", "replies"),
    [
        (_NO_STARTTLS, {"STARTTLS": b"{tag} BAD unknown command\r\n"}),
        (_STARTTLS, {"STARTTLS": b"{tag} NO TLS not available\r\n"}),
        (_STARTTLS, {"STARTTLS": b"{tag} OK Begin TLS negotiation now.\r\nnot a TLS record\r\n"}),
    ],
    ids=["not-offered", "refused", "broken-handshake"],
)
@pytest.mark.timeout(60)
def test_starttls_required_and_refused_sends_no_credentials(
    greeting: bytes, replies: dict[str, Any], e2e: E2E, smtp_sink: Any
) -> None:
    secret = "Sup3r-s3cret-pw"
    with FakeImapServer(greeting, replies, read_timeout=5) as server:
        e2e.write_rc(
            f"poll 127.0.0.1 proto imap service {server.port} no dns timeout 10\n"
            f'  user "joe" password "{secret}" is joe here\n'
            f"  smtphost 127.0.0.1/{smtp_sink.port}\n"
        )
        run = e2e.pyfetchmail("-vv", timeout=40)
        commands = server.commands()
        received = b"\n".join(server.received)
    assert run.returncode == 2, run  # PS_SOCKET (spec §3)
    assert not {"LOGIN", "AUTHENTICATE"} & set(commands), commands
    assert secret.encode() not in received
    assert secret not in run.output
    assert smtp_sink.received == []


# -- authentication (spec §5.4) -------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "mechanism"),
    [("password", "LOGIN"), ("cram-md5", "CRAM-MD5"), ("any", "CRAM-MD5")],
)
def test_auth_methods(
    auth: str, mechanism: str, e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raws = _fill(mailuser, 0)
    e2e.write_rc(imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, server_opts=f"auth {auth}"))
    run = e2e.pyfetchmail("-vv")
    assert run.returncode == 0, run
    assert f"authenticated {mailuser.name} with {mechanism}" in run.output
    assert mailuser.password not in run.output  # not even in the -vv transcript
    assert _bodies(smtp_sink) == [_served(raws[0])]


@pytest.mark.parametrize("auth", ["password", "cram-md5", "any"])
def test_wrong_password_is_exit_3_without_password(
    auth: str, e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    _fill(mailuser, 0)
    wrong = "Wr0ng-Passw0rd-xyz"
    e2e.write_rc(
        imap_rc(
            dovecot,
            mailuser,
            smtp_port=smtp_sink.port,
            server_opts=f"auth {auth}",
            password=wrong,
        )
    )
    run = e2e.pyfetchmail("-vv")
    assert run.returncode == 3, run  # PS_AUTHFAIL
    assert f"Authorization failure on {mailuser.name}@" in run.output
    assert wrong not in run.output
    assert "Traceback" not in run.output
    assert smtp_sink.received == []
    assert len(mailuser.messages()) == 1
