"""The installed ``pyfetchmail`` console script and ``python -m pyfetchmail`` end to end."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)


def _script() -> str:
    found = shutil.which("pyfetchmail") or str(Path(sys.executable).parent / "pyfetchmail")
    if not os.access(found, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail("the pyfetchmail console script is not installed", pytrace=False)
        pytest.skip("the pyfetchmail console script is not installed")
    return found


def _run(argv: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    return subprocess.run(
        argv, cwd=home, env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_script_help_exits_0(tmp_path: Path) -> None:
    done = _run([_script(), "--help"], tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("usage:  pyfetchmail [options] [server ...]\n")
    assert done.stderr == ""


def test_script_question_mark_help(tmp_path: Path) -> None:
    done = _run([_script(), "-?"], tmp_path)
    assert done.returncode == 0
    assert "--configdump" in done.stdout


def test_script_unknown_option_exits_5(tmp_path: Path) -> None:
    done = _run([_script(), "--bogus"], tmp_path)
    assert done.returncode == 5
    assert done.stdout == ""
    assert done.stderr.startswith("pyfetchmail: unrecognized option '--bogus'\n")
    assert "Traceback" not in done.stderr


def test_script_bad_number_exits_5(tmp_path: Path) -> None:
    done = _run([_script(), "-d", "12x"], tmp_path)
    assert done.returncode == 5
    assert "String '12x' is not a valid number string." in done.stderr


def test_module_help(tmp_path: Path) -> None:
    done = _run([sys.executable, "-m", "pyfetchmail", "-?"], tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("usage:  pyfetchmail")


def test_module_version(tmp_path: Path) -> None:
    if importlib.util.find_spec("pyfetchmail.config.rcfile") is None:
        pytest.skip("pyfetchmail.config.rcfile is not available yet")
    rc = tmp_path / ".fetchmailrc"
    rc.write_text("poll mail.example.org proto imap user joe pass secret\n")
    rc.chmod(0o600)
    done = _run([sys.executable, "-m", "pyfetchmail", "-V", "-v"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("This is pyfetchmail release ")
    assert "Options for retrieving from joe@mail.example.org:\n" in done.stdout
    assert "secret" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_module_version_without_rcfile(tmp_path: Path) -> None:
    if importlib.util.find_spec("pyfetchmail.config.rcfile") is None:
        pytest.skip("pyfetchmail.config.rcfile is not available yet")
    done = _run([sys.executable, "-m", "pyfetchmail", "-V"], tmp_path)
    assert done.returncode == 0
    assert done.stdout.endswith("Taking options from command line\n")
    assert done.stderr.endswith(
        f"No mailservers set up -- perhaps {tmp_path}/.fetchmailrc is missing?\n"
    )


def test_module_config_error_has_no_traceback(tmp_path: Path) -> None:
    if importlib.util.find_spec("pyfetchmail.config.rcfile") is None:
        pytest.skip("pyfetchmail.config.rcfile is not available yet")
    rc = tmp_path / ".fetchmailrc"
    rc.write_text("poll a.example user u pass p\n")
    rc.chmod(0o644)
    done = _run([sys.executable, "-m", "pyfetchmail", "--configdump"], tmp_path)
    assert done.returncode == 6
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
