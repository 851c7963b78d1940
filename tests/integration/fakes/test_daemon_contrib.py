"""The files in contrib/ are usable as shipped."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONTRIB = Path(__file__).resolve().parents[3] / "contrib"
_SCRIPT = shutil.which("pyfetchmail")
_CMD = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "pyfetchmail"]

UNITS = ["pyfetchmail.service", "pyfetchmail-system.service", "pyfetchmail-oneshot.service"]


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    text = (CONTRIB / name).read_text().replace("\\\n", " ")
    parser.read_string(text)
    return parser


@pytest.mark.timeout(30)
def test_sample_rc_is_accepted(tmp_path: Path) -> None:
    rc = tmp_path / "fetchmailrc"
    rc.write_text((CONTRIB / "fetchmailrc.sample").read_text())
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    result = subprocess.run(
        [*_CMD, "-f", str(rc), "--configdump"],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    for host in ("pop.example.com", "imap.example.org", "tunnel.example.net"):
        assert f'"pollname":"{host}"' in result.stdout


def test_every_sample_line_is_explained() -> None:
    # "Annotated line by line": every setting has a comment right above it.
    lines = (CONTRIB / "fetchmailrc.sample").read_text().splitlines()
    unexplained = [
        line
        for before, line in zip(["#", *lines], lines, strict=False)
        if line.strip()
        and not line.lstrip().startswith("#")
        and not before.lstrip().startswith("#")
    ]
    assert unexplained == []


@pytest.mark.parametrize("name", UNITS)
def test_units_use_our_flags(name: str) -> None:
    service = _unit(name)["Service"]
    start = service["ExecStart"]
    assert "pyfetchmail" in start
    if service.get("Type") == "simple":
        assert "--nodetach" in start
        assert "--daemon" in start
        # --quit must be the last word, or the stopper goes on polling itself.
        assert service["ExecStop"].split()[-1] == "--quit"


def test_timer_targets_the_oneshot_service() -> None:
    timer = _unit("pyfetchmail-oneshot.timer")
    assert timer["Timer"]["OnUnitInactiveSec"]
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert _unit("pyfetchmail-oneshot.service")["Service"]["Type"] == "oneshot"


def test_cron_line_is_well_formed() -> None:
    entries = [
        line
        for line in (CONTRIB / "pyfetchmail.cron").read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert entries == ["*/5 * * * *  pyfetchmail --silent"]
    assert re.match(r"^(\S+\s+){5}pyfetchmail\b", entries[0])


def test_logrotate_needs_no_copytruncate() -> None:
    text = (CONTRIB / "pyfetchmail.logrotate").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "copytruncate" not in body
    assert "create 0600" in body
