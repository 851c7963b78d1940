"""Fuzzing the rc loader: any input gives a Config or a ConfigError, never another exception."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.config.rclexer import KEYWORDS
from pyfetchmail.errors import ConfigError
from tests.data.rc.rchelp import load_result
from tests.data.rcgen import generate

VALID = generate(7, 60)
WORDS = [*KEYWORDS, "user", "is", "to", "=", "auth", "password", "no", "here", "there"]
WORDS += ['"', "'", "\\", "#", "\n", " ", "*", "-1", "99999999999", "nokeep", "\x00", "\xff"]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load_or_config_error(text: str, options: CommandLineOptions | None = None) -> None:
    message = "loaded"
    try:
        load_result(text, options or CommandLineOptions(configdump=True))
    except ConfigError as exc:
        message = str(exc)
    assert message  # an error always has a message


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    load_or_config_error(data.decode("latin-1"))


@FUZZ
@given(st.lists(st.sampled_from(WORDS), max_size=60).map(" ".join))
def test_random_keyword_soup(text: str) -> None:
    load_or_config_error(text)


@FUZZ
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 8), st.sampled_from(WORDS))),
)
def test_mutated_valid_files(base: str, edits: list[tuple[int, int, str]]) -> None:
    text = base
    for pos, cut, insert in edits:
        pos %= len(text) + 1
        text = text[:pos] + insert + text[pos + cut :]
    load_or_config_error(text)
    load_or_config_error(text, CommandLineOptions(servers=("x", "alpha"), keep=True))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n" * 1000,
        "#",
        '"',
        "poll " + "x" * (1 << 20),
        'poll "' + "y" * (1 << 20),
        "poll a\x00b user \x00",
        "\\" * 1001,
        "user " * 5000,
    ],
)
def test_edge_inputs(text: str) -> None:
    load_or_config_error(text)


def test_deterministic_mutation_sweep() -> None:
    """Every single-token deletion of the generated files is handled."""
    rng = random.Random(3)
    for base in VALID[:20]:
        words = base.split(" ")
        for _ in range(20):
            i = rng.randrange(len(words))
            load_or_config_error(" ".join(words[:i] + words[i + 1 :]))
