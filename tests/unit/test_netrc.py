"""~/.netrc parsing with fetchmail 6.4's quirks (checked against fetchmail 6.4.37)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyfetchmail.auth.netrc import NetrcEntry, find_password, parse_netrc, read_netrc


def test_basic_entries_in_file_order() -> None:
    text = "machine a login joe password pa\nmachine b\n  login ann\n  password pb\n"
    assert parse_netrc(text) == (
        NetrcEntry("a", "joe", "pa"),
        NetrcEntry("b", "ann", "pb"),
    )


def test_synonyms_and_account() -> None:
    entries = parse_netrc("machine a user joe passwd pw account acct-ignored")
    assert entries == (NetrcEntry("a", "joe", "pw"),)


def test_entries_without_login_are_dropped() -> None:
    assert parse_netrc("machine a password pw\nmachine b login x") == (NetrcEntry("b", "x"),)


def test_quoted_tokens_and_comments() -> None:
    text = (
        "# a comment line\n"
        "machine a login 'joe smith' password \"p w#1\"  # trailing comment\n"
        "machine b login bob password pa#ss\n"  # '#' inside a token is data
    )
    assert parse_netrc(text) == (
        NetrcEntry("a", "joe smith", "p w#1"),
        NetrcEntry("b", "bob", "pa#ss"),
    )


def test_unterminated_quote_runs_to_end_of_line() -> None:
    assert parse_netrc('machine a login joe password "open quote') == (
        NetrcEntry("a", "joe", "open quote"),
    )


def test_macdef_skips_to_the_next_empty_line() -> None:
    text = (
        "machine a login joe password pa\n"
        "macdef init machine evil login joe password bad\n"
        "cd /pub\n"
        "machine evil2 login joe password bad\n"
        "\n"
        "machine b login ann password pb\n"
    )
    assert parse_netrc(text) == (NetrcEntry("a", "joe", "pa"), NetrcEntry("b", "ann", "pb"))


def test_default_entry_is_parsed_but_never_matches() -> None:
    entries = parse_netrc("default login joe password anything\n")
    assert entries == (NetrcEntry(None, "joe", "anything"),)
    assert find_password(entries, "pop.example", "joe") is None


def test_warnings_name_file_and_line(caplog: pytest.LogCaptureFixture) -> None:
    parse_netrc("login early password x\nmachine a login joe\nbogus\n", "/h/.netrc")
    assert [r.getMessage() for r in caplog.records] == [
        '/h/.netrc:1: warning: found "login" before any host names',
        '/h/.netrc:1: warning: found "password" before any host names',
        '/h/.netrc:3: warning: unknown token "bogus"',
    ]


def test_first_match_wins_even_without_password() -> None:
    # fetchmail stops at the first machine+login match; verified: no password found.
    entries = parse_netrc(
        "machine pop.example login joe\nmachine pop.example login joe password second\n"
    )
    assert find_password(entries, "pop.example", "joe") is None


def test_lookup_is_exact_and_falls_back_to_via() -> None:
    entries = parse_netrc(
        "machine POP.example login joe password upper\n"
        "machine real.example login joe password viapw\n"
        "machine pop.example login ann password annpw\n"
    )
    assert find_password(entries, "pop.example", "joe") is None  # case-sensitive
    assert find_password(entries, "pop.example", "joe", via="real.example") == "viapw"
    assert find_password(entries, "pop.example", "ann", via="real.example") == "annpw"
    assert find_password(entries, "pop.example", "Ann") is None


def test_read_missing_file(tmp_path: Path) -> None:
    assert read_netrc(str(tmp_path / "none")) == ()


def test_read_file_with_crlf(tmp_path: Path) -> None:
    path = tmp_path / ".netrc"
    path.write_bytes(b"machine a login joe password pw\r\n")
    assert read_netrc(str(path)) == (NetrcEntry("a", "joe", "pw"),)
