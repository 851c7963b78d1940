"""Golden files through the whole pipeline: command line -> load_config -> dump.

The goldens were made by user ``alice`` with home /home/alice; here the home
is a temporary directory and the user is whoever runs the tests, so the
values fetchmail derives from the user (postmaster, esmtpname, default local
name) are substituted before comparing.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest

from pyfetchmail import cli
from pyfetchmail.config import dump
from pyfetchmail.service import versiondump
from tests.samples import SAMPLES


def _load(tmp_path: Path, sample: str, name: str, *argv: str) -> Any:
    rcfile = importlib.import_module("pyfetchmail.config.rcfile")
    rc = tmp_path / name
    shutil.copy(SAMPLES / sample, rc)
    rc.chmod(0o600)
    options = cli.parse_args(["-f", str(rc), *argv])
    return rcfile.load_config(options, environ={"HOME": str(tmp_path), "PATH": "/usr/bin"})


def _for_this_user(text: str, tmp_path: Path, result: Any) -> str:
    user = result.identity.user
    return (
        text.replace("/home/alice", str(tmp_path))
        .replace('"postmaster":"alice"', f'"postmaster":"{result.config.run.postmaster}"')
        .replace("messages to alice.", f"messages to {result.config.run.postmaster}.")
        .replace('"esmtpname":"alice"', f'"esmtpname":"{user}"')
        .replace("'localnames':[\"alice\"]", f"'localnames':[\"{user}\"]")
    )


@pytest.fixture(autouse=True)
def _need_loader() -> None:
    if importlib.util.find_spec("pyfetchmail.config.rcfile") is None:
        pytest.skip("pyfetchmail.config.rcfile is not available yet")


def test_small_configdump_through_the_pipeline(tmp_path: Path) -> None:
    result = _load(tmp_path, "rc-small.fetchmailrc", ".fetchmailrc", "--configdump")
    golden = (SAMPLES / "rc-small.configdump.txt").read_text()
    expected = _for_this_user(golden, tmp_path, result)
    ours = "feature_options = (" + "".join(f"'{n}'," for n in dump.feature_names()) + ")"
    expected = expected.replace(
        "feature_options = ('pop3','imap','gssapi','sdps','etrn','odmr','ssl',)", ours
    )
    assert dump.configdump(result) == expected


def test_min_version_verbose_through_the_pipeline(tmp_path: Path) -> None:
    result = _load(tmp_path, "rc-min.fetchmailrc", "min.rc", "-V", "-v")
    out, err = versiondump.version_dump(result, verbose=1, environ={}, uids={})
    golden = (SAMPLES / "rc-min.V-verbose.txt").read_text()
    expected = _for_this_user(golden, tmp_path, result).replace(
        '  Password = "secret".\n', "  Password is set.\n"
    )
    assert (out, err) == (expected, "")
