"""The rc lexer: flex longest-match rules, states, escapes (spec section 1.1)."""

from __future__ import annotations

import pytest

from pyfetchmail.config.model import Auth
from pyfetchmail.config.rclexer import scan, token_position, token_text, tokenize, unescape


def kinds(text: str) -> list[str]:
    return [t.kind for t in tokenize(text)]


def values(text: str) -> list[object]:
    return [t.value for t in tokenize(text)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\\nb", "a\nb"),
        ("a\\tb", "a\tb"),
        ("a\\bb", "a\bb"),
        ("a\\rb", "a\rb"),
        ("a\\\\b", "a\\b"),
        ("\\x41\\x4a\\X4b", "AJK"),
        ("\\x414", "A4"),  # at most two hex digits
        ("\\101", "e"),  # decimal, unlike C
        ("\\0101", "\b1"),  # quirk: the 0 is one of three octal digits
        ("\\07", "\x07"),
        ('\\q\\"', 'q"'),  # any other escaped character stands for itself
        ("a\\\nb", "ab"),  # backslash-newline is removed
        ("ab\\", "ab"),  # a trailing backslash is dropped
        ("a\\x00b", "a"),  # NUL ends a C string
        ("a\\256b", "a"),  # 256 & 0xff == 0
        ("a\\xzzb", "a"),  # \x without digits is NUL
        ("a\x00b", "a"),  # so does a raw NUL byte
        ("\\999", chr(999 & 0xFF)),
    ],
)
def test_escapes(raw: str, expected: str) -> None:
    assert unescape(raw) == expected


def test_escapes_apply_to_bare_and_quoted_strings() -> None:
    assert values("poll a\\x41 \"b\\x42\" 'c\\x43'") == [None, "aA", "bB", "cC"]


def test_keywords_are_lower_case_only() -> None:
    assert kinds("poll POLL Poll") == ["POLL", "STRING", "STRING"]


@pytest.mark.parametrize("word", ["pop3", "POP3", "imap", "IMAP", "auto", "etrn", "ODMR"])
def test_protocol_names_all_lower_or_all_upper(word: str) -> None:
    assert tokenize(word)[0].kind == "PROTO"
    assert tokenize(word.capitalize())[0].kind == "STRING"


def test_kpop_and_sdps_are_tokens_of_their_own() -> None:
    assert kinds("kpop KPOP sdps SDPS") == ["KPOP", "KPOP", "SDPS", "SDPS"]


def test_numbers_and_strings() -> None:
    assert values("12345 -7 10.0.0.1 12a") == [12345, -7, "10.0.0.1", "12a"]
    assert kinds('"123"') == ["STRING"]


def test_name_state_reads_the_next_word_as_string() -> None:
    # After user/pass/is/to/= the next token is a string even if a keyword.
    toks = tokenize("user keep pass 1234 is poll to ssh x = with")
    assert [(t.kind, t.value) for t in toks] == [
        ("USERNAME", None),
        ("STRING", "keep"),
        ("PASSWORD", None),
        ("STRING", "1234"),
        ("IS", None),
        ("STRING", "poll"),
        ("TO", None),
        ("STRING", "ssh"),
        ("STRING", "x"),
        ("MAP", None),
        ("STRING", "with"),
    ]


def test_name_state_only_covers_the_first_word() -> None:
    assert kinds("is a keep") == ["IS", "STRING", "KEEP"]


def test_auth_state_password_is_an_auth_type() -> None:
    toks = tokenize("auth password password x")
    assert [(t.kind, t.value) for t in toks] == [
        ("AUTHENTICATE", None),
        ("AUTHTYPE", Auth.PASSWORD),
        ("PASSWORD", None),
        ("STRING", "x"),
    ]


@pytest.mark.parametrize(
    ("word", "auth"),
    [
        ("kerberos", Auth.KERBEROS_V4),
        ("kerberos_v4", Auth.KERBEROS_V4),
        ("kerberos5", Auth.KERBEROS_V5),
        ("cram", Auth.CRAM_MD5),
        ("opie", Auth.OTP),
        ("ssh", Auth.SSH),
        ("external", Auth.EXTERNAL),
    ],
)
def test_auth_words_are_keywords_everywhere(word: str, auth: Auth) -> None:
    assert [(t.kind, t.value) for t in tokenize(f"via {word}")][1] == ("AUTHTYPE", auth)


def test_glued_no_forms() -> None:
    assert kinds("nokeep nopass8bits nomimedec noenvelope") == ["NO", "KEEP"] * 1 + [
        "NO",
        "PASS8BITS",
        "NO",
        "MIMEDECODE",
        "NO",
        "ENVELOPE",
    ]


@pytest.mark.parametrize("word", ["nosyslog", "nossl", "nosslcertck", "nosoftbounce", "noshowdots"])
def test_words_that_are_not_glued(word: str) -> None:
    assert kinds(word) == ["STRING"]


def test_noise_words_and_punctuation_are_ignored() -> None:
    assert kinds("poll x with and has wants options , ; : keep") == ["POLL", "STRING", "KEEP"]


def test_comment_at_token_start_only() -> None:
    assert values("user u#x # comment\nkeep") == [None, "u#x", None]


def test_comment_needs_its_newline() -> None:
    toks = tokenize("keep # a comment")
    assert [t.kind for t in toks] == ["KEEP", "STRING", "STRING", "STRING"]
    assert token_text("keep # a comment", toks[1]) == "#"


def test_quoted_strings_longest_match() -> None:
    # flex takes the longest match: '"a"b' is one bare word, '"a b"c' is a
    # quoted string followed by the word c.
    assert values('poll "a"b') == [None, '"a"b']
    assert values('poll "a b"c') == [None, "a b", "c"]
    assert values("poll 'it''s'") == [None, "'it''s'"]


def test_quoted_strings_span_lines_without_counting_them() -> None:
    toks, end_line = scan('poll "a\nb\\\nc"\nkeep\n')
    assert toks[1].value == "a\nbc"
    assert toks[2].line == 2  # fetchmail does not count newlines inside quotes
    assert token_position('poll "a\nb\\\nc"\nkeep\n', toks[2]) == (4, 1)
    assert end_line == 3


def test_line_continuation() -> None:
    toks, end_line = scan("poll x \\\n keep")
    assert [t.kind for t in toks] == ["POLL", "STRING", "KEEP"]
    assert toks[2].line == 2
    assert end_line == 2


def test_unterminated_quote_is_a_bare_word() -> None:
    assert values('poll "abc') == [None, '"abc']


def test_utf8_and_invalid_bytes_survive() -> None:
    raw = "pässword".encode().decode("latin-1") + " \xff"
    assert values(raw) == ["pässword", "\udcff"]


def test_lexing_never_fails_on_garbage() -> None:
    text = "".join(chr(i) for i in range(256)) * 3
    tokenize(text)
