"""Logging setup (stderr, logfile, syslog, levels) and the secret-redacting filter."""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyfetchmail.config.model import RunControl
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.errors import FetchmailError
from pyfetchmail.log import (
    SYSLOG_ADDRESS_ENV,
    TRANSCRIPT_LOGGER,
    SecretRedactingFilter,
    redact,
    register_secret,
    setup_logging,
)

log = logging.getLogger("pyfetchmail.test")
transcript = logging.getLogger(TRANSCRIPT_LOGGER)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    root = logging.getLogger("pyfetchmail")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.NOTSET)
    transcript.setLevel(logging.NOTSET)


# -- redaction ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("POP3> PASS hunter2", "POP3> PASS *"),
        ("POP3> USER joe", "POP3> USER joe"),
        ('IMAP> A0001 LOGIN "joe" "pa ss"', 'IMAP> A0001 LOGIN "joe" *'),
        ("IMAP> A0001 LOGIN joe secret", "IMAP> A0001 LOGIN joe *"),
        ('IMAP> A0001 LOGIN "jo\\"e" x', 'IMAP> A0001 LOGIN "jo\\"e" *'),
        ("POP3> APOP joe c4c9334bac560ecc979e58001b3e22fb", "POP3> APOP joe *"),
        ("SMTP> AUTH PLAIN AGpvZQBzZWNyZXQ=", "SMTP> AUTH PLAIN *"),
        ("POP3> AUTH CRAM-MD5", "POP3> AUTH CRAM-MD5"),
        ("IMAP> A0002 AUTHENTICATE XOAUTH2 dXNlcj1q", "IMAP> A0002 AUTHENTICATE XOAUTH2 *"),
        ("user=joe\x01auth=Bearer ya29.a0AfH6SM\x01\x01", "user=joe\x01auth=Bearer *\x01\x01"),
        ('{"access_token": "ya29.xyz", "x": 1}', '{"access_token": "*", "x": 1}'),
        ("login failed for joe", "login failed for joe"),  # prose stays readable
        ("Enter password for joe@pop.example", "Enter password for joe@pop.example"),
    ],
)
def test_redact_patterns(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_registered_secret_is_masked_everywhere() -> None:
    register_secret("Tr0ub4dor&3")
    assert redact("server said: bad password Tr0ub4dor&3!") == "server said: bad password *!"
    assert redact("line1\nPASS x\nline3") == "line1\nPASS *\nline3"


def test_filter_masks_args_and_tracebacks() -> None:
    register_secret("s3cr3t-token-value")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(SecretRedactingFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("pyfetchmail.test.filter")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("token s3cr3t-token-value rejected")
        except ValueError:
            logger.error("got %s from %s", "s3cr3t-token-value", "server", exc_info=True)
    finally:
        logger.removeHandler(handler)
    text = handler.format(records[0])
    assert "s3cr3t-token-value" not in text
    assert "got * from server" in text
    assert "ValueError: token * rejected" in text


def test_short_secrets_are_masked_only_in_credential_lines() -> None:
    register_secret("ab")
    assert redact("tab stop") == "tab stop"
    assert redact("POP3> PASS ab") == "POP3> PASS *"


# -- destinations and levels ----------------------------------------------------


def _setup(run: RunControl | None = None, **opts: object) -> None:
    setup_logging(CommandLineOptions(**opts), run or RunControl())  # type: ignore[arg-type]


def test_stderr_prefix_and_default_level(capsys: pytest.CaptureFixture[str]) -> None:
    _setup()
    log.info("3 messages for joe at pop.example.")
    log.debug("hidden")
    transcript.debug("POP3> STAT")
    # fetchmail's split: progress on stdout, diagnostics on stderr.
    assert capsys.readouterr() == ("pyfetchmail: 3 messages for joe at pop.example.\n", "")
    log.error("connection failed")
    assert capsys.readouterr() == ("", "pyfetchmail: connection failed\n")


@pytest.mark.parametrize(
    ("opts", "shown"),
    [
        ({"silent": True}, []),
        ({}, ["info"]),
        ({"verbose": 1}, ["debug", "info"]),
        ({"verbose": 2}, ["debug", "info", "POP3> PASS *"]),
    ],
)
def test_levels(
    capsys: pytest.CaptureFixture[str], opts: dict[str, object], shown: list[str]
) -> None:
    _setup(**opts)
    log.debug("debug")
    log.info("info")
    log.warning("warning")
    transcript.debug("POP3> PASS letmein")
    out, err = capsys.readouterr()
    assert [line.removeprefix("pyfetchmail: ") for line in out.splitlines()] == shown
    assert err == "pyfetchmail: warning\n"  # warnings are shown at every level


def test_missing_logfile_is_ignored_with_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.log"
    _setup(RunControl(logfile=str(missing)))
    log.info("still here")
    out, err = capsys.readouterr()
    assert f'pyfetchmail: Logfile "{missing}" does not exist, ignoring logfile option.\n' in err
    assert "pyfetchmail: still here\n" in out
    assert not missing.exists()


def test_unwritable_logfile_aborts_with_23(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir()
    with pytest.raises(FetchmailError, match="is not writable, aborting") as err:
        _setup(RunControl(logfile=str(directory)))
    assert err.value.exit_code == 23


def test_nodetach_ignores_logfile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logfile = tmp_path / "f.log"
    logfile.touch()
    _setup(RunControl(logfile=str(logfile)), nodetach=True)
    log.info("to the console")
    out, err = capsys.readouterr()
    assert "The nodetach option is in effect, ignoring logfile option." in err
    assert "pyfetchmail: to the console" in out
    assert logfile.read_text() == ""


def test_logfile_lines_have_timestamps_and_follow_rotation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logfile = tmp_path / "pyfetchmail.log"
    logfile.touch()
    _setup(RunControl(logfile=str(logfile)))
    log.info("before rotation, PASS x")
    os.rename(logfile, tmp_path / "pyfetchmail.log.1")
    log.info("after rotation")
    assert capsys.readouterr().err == ""
    old = (tmp_path / "pyfetchmail.log.1").read_text().splitlines()
    new = logfile.read_text().splitlines()
    assert len(old) == 1
    assert old[0].endswith(" pyfetchmail: before rotation, PASS *")
    # "%b %d %H:%M:%S" like fetchmail 6.5, e.g. "Nov 21 10:02:03"
    stamp = old[0][: len("Nov 21 10:02:03")]
    assert re.fullmatch(r"[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d", stamp)
    assert len(new) == 1
    assert new[0].endswith(" pyfetchmail: after rotation")


@pytest.fixture
def syslog_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = str(tmp_path / "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setenv(SYSLOG_ADDRESS_ENV, path)
    try:
        yield sock
    finally:
        sock.close()


def test_syslog_mail_facility_ident_and_pid(syslog_socket: socket.socket) -> None:
    _setup(RunControl(syslog=True))
    log.info("No mail for joe at pop.example")
    log.error("PASS topsecret refused")
    info = syslog_socket.recv(4096).rstrip(b"\x00")
    error = syslog_socket.recv(4096).rstrip(b"\x00")
    # <facility*8+severity>: LOG_MAIL=2, info=6 -> 22, err=3 -> 19
    assert info == f"<22>pyfetchmail[{os.getpid()}]: No mail for joe at pop.example".encode()
    assert error == f"<19>pyfetchmail[{os.getpid()}]: PASS *".encode()


def test_logfile_wins_over_syslog(syslog_socket: socket.socket, tmp_path: Path) -> None:
    logfile = tmp_path / "f.log"
    logfile.touch()
    _setup(RunControl(syslog=True, logfile=str(logfile)))
    notice = syslog_socket.recv(4096).decode()
    assert notice.endswith(
        f"syslog and logfile options are both set, ignoring syslog, and logging to {logfile}\x00"
    )
    log.info("hello")
    assert logfile.read_text().endswith("pyfetchmail: hello\n")
    syslog_socket.settimeout(0.2)
    with pytest.raises(TimeoutError):
        syslog_socket.recv(4096)
