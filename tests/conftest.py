"""Shared pytest fixtures: real servers on loopback from :mod:`testbed`.

Fixtures (read the docstrings below for details):

- ``dovecot`` (session): a private Dovecot with POP3/POP3S/IMAP/IMAPS/LMTP.
- ``mailuser`` (function): a fresh user with a random password on it.
- ``smtp_sink`` / ``lmtp_sink`` (function): aiosmtpd sinks with scripted replies.
- ``postfix`` (session): the system Postfix on 127.0.0.1:25 and user ``pfmtest``.
- ``write_rc`` (function): write an rc file with mode 0600.

Rule: a server that cannot start fails the test when the environment
variable ``CI`` is non-empty, and skips it (with the reason) otherwise.

Tests under ``tests/integration/dovecot``, ``postfix`` and ``oracle`` get that
marker automatically (see ``pytest_collection_modifyitems``); tests elsewhere
that need a server still carry the marker themselves.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testbed.dovecot import Dovecot, DovecotError, MailUser
from testbed.postfix import POSTFIX_TEST_USER, PostfixInfo, maildir_of, postfix_running
from testbed.sinks import SmtpSink

__all__: list[str] = []

_INTEGRATION = Path(__file__).parent / "integration"
_DIRECTORY_MARKERS = ("dovecot", "postfix", "oracle")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests under ``integration/<marker>/`` with ``<marker>`` (before ``-m`` selects)."""
    for item in items:
        if not item.path.is_relative_to(_INTEGRATION):
            continue
        folder = item.path.relative_to(_INTEGRATION).parts[0]
        if folder in _DIRECTORY_MARKERS:
            item.add_marker(folder)


def _unavailable(reason: str) -> None:
    """Fail in CI (a missing server is a broken setup there), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """A private Dovecot 2.3 for the whole session (``testbed.dovecot.Dovecot``).

    Attributes: ``host`` ("127.0.0.1"), ``pop3_port`` (plain, STLS offered),
    ``pop3s_port`` (implicit TLS), ``imap_port`` (STARTTLS offered),
    ``imaps_port``, ``lmtp_port``, ``ca_file`` (Path of the test CA PEM: use as
    ``sslcertfile``; the server cert is for ``localhost`` and 127.0.0.1),
    ``cert_md5``/``cert_sha256`` ("AA:BB:..." fingerprints), ``log_path``.
    ``add_user(name, password) -> MailUser``; prefer the ``mailuser`` fixture.
    Mechanisms: USER/PASS, APOP, PLAIN, LOGIN, CRAM-MD5; plaintext login is
    allowed without TLS; failed logins answer at once. LMTP recipients are
    ``name@localhost``.
    """
    server = Dovecot()
    try:
        server.start()
    except (DovecotError, OSError) as exc:
        _unavailable(f"cannot start the private Dovecot: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mailuser(dovecot: Dovecot) -> MailUser:
    """A fresh, uniquely named mailbox user on the session Dovecot, with an empty INBOX.

    ``name``, ``password`` (random), ``home``, ``maildir``. Fill it with
    ``deliver(raw, folder=None, seen=False) -> file name`` (stored with LF line
    ends, as an MTA stores mail; POP3/IMAP serve CRLF). Inspect it with
    ``messages(folder=None) -> list[bytes]`` and ``flags(folder=None) ->
    list[str]`` (delivery order), ``create_folder(imap_name)`` (Maildir++,
    separator "."), ``set_seen(index, folder=None)``.
    """
    return dovecot.add_user(f"u{secrets.token_hex(5)}", secrets.token_urlsafe(12))


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An aiosmtpd SMTP sink on 127.0.0.1 (``testbed.sinks.SmtpSink``); ``host``, ``port``.

    ``received`` lists accepted messages as ``Received(mail_from, rcpt_tos, data,
    mail_options)`` (data unstuffed, CRLF kept); ``transactions`` every
    end-of-data with its replies; ``wait_for(n, timeout)``. Script replies with
    ``reject_mail(addr, reply)``, ``reject_rcpt(addr, reply)``,
    ``reply_to_data(n, "451 4.3.0 try later")`` (n-th end-of-data, 1-based), or
    ``sink.policy = lambda stage, arg: reply_or_None``.
    """
    sink = SmtpSink()
    try:
        sink.start()
    except (RuntimeError, OSError) as exc:
        _unavailable(f"cannot start the SMTP sink: {exc}")
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def lmtp_sink() -> Iterator[SmtpSink]:
    """An aiosmtpd LMTP sink (``SmtpSink(lmtp=True)``); same API as ``smtp_sink``.

    Per-recipient end-of-data replies (RFC 2033): set
    ``lmtp_sink.lmtp_replies[addr] = "452 4.2.2 mailbox full"``; ``received``
    then lists each message with only the recipients that got 2xx.
    """
    sink = SmtpSink(lmtp=True)
    try:
        sink.start()
    except (RuntimeError, OSError) as exc:
        _unavailable(f"cannot start the LMTP sink: {exc}")
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def postfix() -> PostfixInfo:
    """The system Postfix on 127.0.0.1:25 (started by scripts/setup.sh).

    Yields ``testbed.postfix.PostfixInfo``: ``host``, ``port`` (25), ``user``
    ("pfmtest", a Unix user whose mail lands in ``maildir`` =
    ~pfmtest/Maildir), ``messages()``, ``clear()``,
    ``wait_for_messages(n, timeout) -> list[Path]``. Tests should ``clear()``
    first; deliveries are asynchronous, so wait for them.
    """
    if not postfix_running():
        _unavailable("Postfix is not answering on 127.0.0.1:25 (run scripts/setup.sh)")
    try:
        maildir_of(POSTFIX_TEST_USER)
    except KeyError:
        _unavailable(f"Unix user {POSTFIX_TEST_USER} is missing (run scripts/setup.sh)")
    return PostfixInfo()


@pytest.fixture
def write_rc(tmp_path: Path) -> Callable[..., Path]:
    """``write_rc(text, name=".fetchmailrc") -> Path``: write an rc file with mode 0600.

    fetchmail (and pyfetchmail) refuse rc files readable by others.
    """

    def _write(text: str, name: str = ".fetchmailrc") -> Path:
        path = tmp_path / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(path, 0o600)
        return path

    return _write
