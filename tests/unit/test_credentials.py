"""Password resolution order: rc, dummy, .netrc, keyring, prompt, error (spec 4.8)."""

from __future__ import annotations

import os
import pty
import select
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.backend
import pytest

from pyfetchmail.auth.credentials import KEYRING_SERVICE, resolve_password
from pyfetchmail.config.model import Auth, MailProtocol, Query, Server, User
from pyfetchmail.errors import AuthError
from pyfetchmail.log import redact


@dataclass(frozen=True)
class FakeIdentity:
    netrc: str


class DictKeyring(keyring.backend.KeyringBackend):
    """An in-memory keyring backend (keyring's public backend interface)."""

    priority = 1

    def __init__(self, items: dict[tuple[str, str], str] | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.items = dict(items or {})
        self.asked: list[tuple[str, str]] = []

    def get_password(self, service: str, username: str) -> str | None:
        self.asked.append((service, username))
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


class BrokenKeyring(DictKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise RuntimeError("no D-Bus session here")


@pytest.fixture
def ring() -> Iterator[DictKeyring]:
    previous = keyring.get_keyring()
    backend = DictKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def _query(
    password: str | None = None,
    auth: Auth = Auth.ANY,
    protocol: MailProtocol = MailProtocol.POP3,
    via: str | None = None,
) -> Query:
    return Query(
        Server("pop.example", protocol=protocol, auth=auth, via=via),
        User("joe", password=password),
    )


@pytest.fixture
def identity(tmp_path: Path) -> FakeIdentity:
    return FakeIdentity(str(tmp_path / ".netrc"))


def test_rc_password_comes_first(identity: FakeIdentity, ring: DictKeyring) -> None:
    Path(identity.netrc).write_text("machine pop.example login joe password fromnetrc\n")
    ring.items[(KEYRING_SERVICE, "joe@pop.example")] = "fromkeyring"
    assert resolve_password(_query("fromrc-pw"), identity, interactive=False) == "fromrc-pw"
    assert redact("echo fromrc-pw") == "echo *"  # registered as a secret


@pytest.mark.parametrize(
    ("auth", "protocol"),
    [
        (Auth.EXTERNAL, MailProtocol.IMAP),
        (Auth.GSSAPI, MailProtocol.IMAP),
        (Auth.OTP, MailProtocol.POP3),
        (Auth.SSH, MailProtocol.POP3),
        (Auth.ANY, MailProtocol.ETRN),
    ],
)
def test_password_less_methods_use_the_remote_name(
    identity: FakeIdentity, ring: DictKeyring, auth: Auth, protocol: MailProtocol
) -> None:
    assert resolve_password(_query(auth=auth, protocol=protocol), identity) == "joe"
    assert ring.asked == []


def test_netrc_before_keyring(identity: FakeIdentity, ring: DictKeyring) -> None:
    Path(identity.netrc).write_text("machine pop.example login joe password fromnetrc\n")
    ring.items[(KEYRING_SERVICE, "joe@pop.example")] = "fromkeyring"
    assert resolve_password(_query(), identity, interactive=False) == "fromnetrc"
    assert ring.asked == []


def test_netrc_via_name(identity: FakeIdentity, ring: DictKeyring) -> None:
    Path(identity.netrc).write_text("machine real.example login joe password viapw\n")
    assert resolve_password(_query(via="real.example"), identity, interactive=False) == "viapw"


def test_keyring_when_netrc_has_nothing(identity: FakeIdentity, ring: DictKeyring) -> None:
    Path(identity.netrc).write_text("machine other.example login joe password nope\n")
    ring.items[(KEYRING_SERVICE, "joe@pop.example")] = "fromkeyring"
    assert resolve_password(_query(), identity, interactive=False) == "fromkeyring"
    assert ring.asked == [("pyfetchmail", "joe@pop.example")]


def test_keyring_failure_is_silent(
    identity: FakeIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(BrokenKeyring())
    try:
        with pytest.raises(AuthError):
            resolve_password(_query(), identity, interactive=False)
    finally:
        keyring.set_keyring(previous)
    assert all(r.levelname == "DEBUG" for r in caplog.records if "keyring" in r.getMessage())


def test_no_password_and_no_tty_is_exit_3(identity: FakeIdentity, ring: DictKeyring) -> None:
    with pytest.raises(AuthError) as err:
        resolve_password(_query(), identity, interactive=False)
    assert str(err.value) == "can't find a password for joe@pop.example."
    assert err.value.exit_code == 3


def test_stdin_not_a_tty_means_no_prompt(identity: FakeIdentity, ring: DictKeyring) -> None:
    # Under pytest stdin is not a terminal: the default must not prompt.
    with pytest.raises(AuthError, match=r"can.t find a password for joe@pop\.example\."):
        resolve_password(_query(), identity)


_PROMPT_CHILD = r"""
import sys
from pyfetchmail.auth.credentials import resolve_password
from pyfetchmail.config.model import Query, Server, User
class Ident:
    netrc = sys.argv[1]
pw = resolve_password(Query(Server("pop.example"), User("joe")), Ident())
print("GOT[" + pw + "]", flush=True)
"""


@pytest.mark.timeout(30)
def test_prompt_on_the_terminal_with_echo_off(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    pid, fd = pty.fork()
    if pid == 0:  # child: stdin/stdout/stderr and the controlling tty are the pty
        os.execve(sys.executable, [sys.executable, "-c", _PROMPT_CHILD, str(tmp_path / "n")], env)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        while marker not in seen:
            ready, _, _ = select.select([fd], [], [], 20)
            assert ready, f"timed out waiting for {marker!r}; got {seen!r}"
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                chunk = b""
            assert chunk, f"child ended before {marker!r}; got {seen!r}"
            seen += chunk

    try:
        read_until(b"Enter password for joe@pop.example: ")
        os.write(fd, b"typed-secret\n")
        read_until(b"GOT[")
        read_until(b"]")
    finally:
        os.waitpid(pid, 0)
        os.close(fd)
    assert b"GOT[typed-secret]" in seen
    assert seen.count(b"typed-secret") == 1  # echo was off while typing
