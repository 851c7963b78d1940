"""MDA command expansion and quoting (spec §6.4), pure parts."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyfetchmail.delivery.mda import check_mda_quoting, expand_mda, strip_cr
from pyfetchmail.errors import ConfigError


def test_verified_example() -> None:
    # spec §6.4: mda "/x/mda.sh -f %F -d %T" ran /x/mda.sh -f 'sender@remote.example' -d 'alice'
    got = expand_mda("/x/mda.sh -f %F -d %T", ["alice"], "sender@remote.example")
    assert got == "/x/mda.sh -f 'sender@remote.example' -d 'alice'"


def test_expansions() -> None:
    assert expand_mda("m %s %T", ["a", "b"], "") == "m 'a' 'b' 'a' 'b'"
    assert expand_mda("m %F", [], "") == "m ''"
    assert expand_mda("m %T", [], "x") == "m ''"
    assert expand_mda("x%%y %x %", ["a"], "s") == "x%%y %x %"
    assert expand_mda("m %F", [], "o'brien@x") == "m 'o_brien@x'"


@pytest.mark.parametrize("command", ["p '%T'", "p -f '%F'", "p '%s' x", "a %T '%F'"])
def test_quoted_expansion_refused(command: str) -> None:
    with pytest.raises(ConfigError, match="single-quoted"):
        check_mda_quoting(command)


@pytest.mark.parametrize("command", ["p %T", 'p "%T"', "p -d%T", "p '%%T'x", "no expansion '%x'"])
def test_unquoted_accepted(command: str) -> None:
    check_mda_quoting(command)


@given(st.text(max_size=40), st.lists(st.text(max_size=20), max_size=3))
def test_expansion_is_always_one_shell_word_each(sender: str, recipients: list[str]) -> None:
    command = expand_mda("mda %F %T", recipients, sender)
    if "\0" in command:
        return  # shlex cannot represent NUL; the shell never sees one (header NULs are removed)
    words = shlex.split(command)
    assert words[0] == "mda"
    assert words[1] == sender.replace("'", "_")
    assert words[2:] == ([r.replace("'", "_") for r in recipients] or [""])


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=20))
def test_strip_cr_independent_of_chunking(data: bytes, size: int) -> None:
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    assert b"".join(strip_cr(chunks)) == data.replace(b"\r\n", b"\n")


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ('m "%T"', ["m", "alice"]),
        ('m "-d%T-"', ["m", "-dalice-"]),
        ("m 'x%T'", ["m", "xalice"]),
        ('m "a\\"%T"', ["m", 'a"alice']),
        ('m "it\'s" %F', ["m", "it's", "s@x"]),
    ],
)
def test_user_quotes_are_closed_around_expansions(template: str, words: list[str]) -> None:
    assert shlex.split(expand_mda(template, ["alice"], "s@x")) == words


@given(st.text(alphabet=st.sampled_from(list("ab$()`;'\"\\ \n")), max_size=30))
def test_hostile_value_stays_literal_in_every_context(value: str) -> None:
    for template in ("m %F", 'm "%F"', "m 'x%F'", 'm "pre %F post"'):
        words = shlex.split(expand_mda(template, [], value))
        assert value.replace("'", "_") in " ".join(words)
