"""The man pages document exactly the options of build_parser(), and render cleanly."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pyfetchmail import cli

MAN = Path(__file__).resolve().parents[2] / "man"
_LONG = re.compile(r"\\-\\-((?:[a-z0-9]|\\-)+)")
_SHORT = re.compile(r"^\.BR \\-(.) ", re.MULTILINE)


def _long_options_in(text: str) -> set[str]:
    return {match.replace("\\-", "-") for match in _LONG.findall(text)}


def test_every_long_option_is_in_the_man_page_and_vice_versa() -> None:
    text = (MAN / "pyfetchmail.1").read_text()
    documented = _long_options_in(text)
    parser_longs = {
        option[2:]
        for action in cli.build_parser()._actions
        for option in action.option_strings
        if option.startswith("--")
    }
    assert parser_longs == {long for spec in cli.OPTIONS for long in spec.longs}
    assert parser_longs - documented == set()
    assert documented - parser_longs == set()


def test_every_short_option_is_in_the_man_page() -> None:
    text = (MAN / "pyfetchmail.1").read_text()
    documented = set(_SHORT.findall(text))
    shorts = {spec.short for spec in cli.OPTIONS if spec.short}
    assert shorts - documented == set()


def test_man_page_lists_every_exit_code() -> None:
    text = (MAN / "pyfetchmail.1").read_text()
    section = text.split('.SH "EXIT STATUS"')[1].split(".SH ")[0]
    codes = {int(code) for code in re.findall(r"^\.B (\d+)$", section, re.MULTILINE)}
    assert codes == {*range(15), 23}


@pytest.mark.parametrize("page", ["pyfetchmail.1", "pyfetchmailrc.5"])
def test_man_page_renders_without_warnings(page: str) -> None:
    if shutil.which("man") is None or shutil.which("groff") is None:
        if os.environ.get("CI"):
            pytest.fail("man/groff not installed (apt-get install man-db groff-base)")
        pytest.skip("man/groff not installed")
    result = subprocess.run(
        ["man", "--warnings", "-l", str(MAN / page)],
        capture_output=True,
        text=True,
        env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stderr == ""
    assert "DESCRIPTION" in result.stdout
