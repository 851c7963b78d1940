"""Identity and default file names (spec section 4.1, fetchmail's env.c)."""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path

import pytest

from pyfetchmail.config.env import current_identity, local_hostname
from pyfetchmail.errors import FetchmailError

ME = pwd.getpwuid(os.getuid())


def other_user() -> str:
    """A passwd name whose uid is not ours."""
    for entry in pwd.getpwall():
        if entry.pw_uid != os.getuid():
            return entry.pw_name
    pytest.skip("no second passwd entry")


def test_defaults_from_home(tmp_path: Path) -> None:
    ident = current_identity({"HOME": str(tmp_path)})
    assert (ident.user, ident.uid, ident.home, ident.fmhome) == (
        ME.pw_name,
        os.getuid(),
        str(tmp_path),
        str(tmp_path),
    )
    assert ident.rcfile == f"{tmp_path}/.fetchmailrc"
    assert ident.idfile == f"{tmp_path}/.fetchids"
    assert ident.netrc == f"{tmp_path}/.netrc"
    expected_pid = "/var/run/fetchmail.pid" if os.getuid() == 0 else f"{tmp_path}/.fetchmail.pid"
    assert ident.pidfile == expected_pid


def test_fetchmailhome_drops_the_dots_except_for_the_idfile(tmp_path: Path) -> None:
    fm = tmp_path / "fm"
    fm.mkdir()
    ident = current_identity({"HOME": str(tmp_path), "FETCHMAILHOME": str(fm)})
    assert (ident.rcfile, ident.idfile) == (f"{fm}/fetchmailrc", f"{fm}/.fetchids")
    assert ident.netrc == f"{tmp_path}/.netrc"  # never in FETCHMAILHOME
    if os.getuid() != 0:
        assert ident.pidfile == f"{fm}/fetchmail.pid"


def test_fetchmailhome_must_exist(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "FETCHMAILHOME": str(tmp_path / "missing")}
    with pytest.raises(FetchmailError) as info:
        current_identity(env)
    assert str(info.value) == "fetchmail: Cannot find absolute path for fetchmail's home directory."
    assert info.value.exit_code == 23


def test_home_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FetchmailError, match="user's home directory") as info:
        current_identity({"HOME": str(tmp_path / "missing")})
    assert info.value.exit_code == 23


def test_home_etc_wins_and_paths_are_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    ident = current_identity({"HOME": "/nonexistent", "HOME_ETC": str(tmp_path / "link")})
    assert ident.home == str(real)


def test_home_falls_back_to_passwd() -> None:
    ident = current_identity({})
    assert ident.home == os.path.realpath(ME.pw_dir)


@pytest.mark.parametrize("var", ["FETCHMAILUSER", "LOGNAME", "USER"])
def test_user_name_must_have_our_uid(tmp_path: Path, var: str) -> None:
    assert current_identity({"HOME": str(tmp_path), var: other_user()}).user == ME.pw_name
    assert current_identity({"HOME": str(tmp_path), var: ME.pw_name}).user == ME.pw_name
    assert current_identity({"HOME": str(tmp_path), var: "no-such-user-x"}).user == ME.pw_name


def test_first_set_variable_wins_even_if_empty(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "FETCHMAILUSER": "", "LOGNAME": ME.pw_name}
    assert current_identity(env).user == ME.pw_name


def test_local_hostname() -> None:
    name = socket.gethostname()
    host = local_hostname()
    if "." in name:
        assert host == name
        return
    try:
        canon = socket.getaddrinfo(name, None, flags=socket.AI_CANONNAME)[0][3] or name
    except OSError:
        canon = name  # unqualifiable: fetchmail goes on with the bare name
    assert host == canon


@pytest.mark.parametrize("var", ["QMAILINJECT", "NULLMAILER_FLAGS"])
def test_refuses_to_run_with_header_rewriting_mta_variables(tmp_path: Path, var: str) -> None:
    with pytest.raises(FetchmailError) as info:
        current_identity({"HOME": str(tmp_path), var: "x"})
    lines = str(info.value).splitlines()
    assert lines[0] == f"fetchmail: The {var} environment variable is set."
    assert lines[-2:] == [f'Try "env {var}= fetchmail YOUR ARGUMENTS HERE"', "fetchmail: Abort."]
    assert info.value.exit_code == 23
    assert current_identity({"HOME": str(tmp_path), var: ""}).home == str(tmp_path)  # empty is fine
