"""Golden samples: the reference rc files give fetchmail 6.4.37's configdump.

The samples were made by user ``alice`` (home ``/home/alice``, host ``vm``).
Field-by-field comparison uses our own dict derivation; when the dump
printer exists the initializer text is also compared byte for byte.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pyfetchmail.config.overrides import CommandLineOptions
from tests.data.rc.dumpdict import model_dict, parse_configdump
from tests.data.rc.rchelp import load_result
from tests.samples import SAMPLES


def sample(name: str) -> Path:
    return SAMPLES / name


@pytest.mark.parametrize("name", ["rc-full", "rc-small"])
def test_sample_matches_golden_configdump(name: str) -> None:
    text = sample(f"{name}.fetchmailrc").read_bytes().decode("latin-1")
    golden = sample(f"{name}.configdump.txt").read_text()
    result = load_result(text, CommandLineOptions(configdump=True))
    assert model_dict(result.config) == parse_configdump(golden)


def test_sample_warnings_match_golden_stderr() -> None:
    text = sample("rc-full.fetchmailrc").read_text()
    golden = sample("rc-full.configdump.stderr.txt").read_text()
    result = load_result(text, CommandLineOptions(configdump=True))
    assert "".join(f"{line}\n" for line in result.warnings) == golden


@pytest.mark.parametrize("name", ["rc-full", "rc-small"])
def test_dump_printer_reproduces_golden_initializer(name: str) -> None:
    if importlib.util.find_spec("pyfetchmail.config.dump") is None:
        pytest.skip("dump printer not written yet")
    from pyfetchmail.config.dump import configdump

    text = sample(f"{name}.fetchmailrc").read_text()
    golden = sample(f"{name}.configdump.txt").read_text()
    result = load_result(text, CommandLineOptions(configdump=True))
    marker = "# Start of configuration initializer"
    expected = golden[golden.index(marker) :].removesuffix("rc=0\n")
    ours = configdump(result)
    assert ours[ours.index(marker) :] == expected
