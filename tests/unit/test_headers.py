"""Pure header helpers: field splitting, addresses, rewrite, RFC 2047, Received."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pyfetchmail.mail.headers import (
    PRODUCT,
    BodyType,
    ReceivedMode,
    all_addresses,
    body_type,
    decode_encoded_words,
    field_name,
    field_value,
    first_address,
    format_date,
    received_header,
    rewrite_address_list,
    split_fields,
)
from pyfetchmail.mail.prepare import TraceInfo
from tests.samples import SAMPLES

UTC = UTC
WHEN = datetime(2026, 11, 21, 7, 33, 27, tzinfo=UTC)

# The header fetchmail 6.4.37 wrote (samples/smtp-listener-view.txt).
SAMPLE_RECEIVED = (
    b"Received: from 127.0.0.1 [127.0.0.1]\r\n"
    b"\tby vm with POP3 (fetchmail-6.4.37)\r\n"
    b"\tfor <alice@localhost> (single-drop); Sat, 21 Nov 2026 07:33:27 +0000 (UTC)\r\n"
)


def _info(**kw: object) -> TraceInfo:
    base: dict[str, object] = {
        "server_truename": "127.0.0.1",
        "server_address": "127.0.0.1",
        "protocol_name": "POP3",
        "fetchmailhost": "vm",
        "pollname": "127.0.0.1",
        "remote": "joe",
        "folder": None,
        "folder_explicit": False,
        "date": WHEN,
    }
    base.update(kw)
    return TraceInfo(**base)  # type: ignore[arg-type]


def test_received_header_byte_exact_with_fetchmail_product() -> None:
    got = received_header(
        _info(), ["alice@localhost"], ReceivedMode.SINGLE, False, product="fetchmail-6.4.37"
    )
    assert got == SAMPLE_RECEIVED


def test_received_header_matches_golden_sample_file() -> None:
    sample = SAMPLES / "smtp-listener-view.txt"
    lines = [ln[3:] for ln in sample.read_text().splitlines() if ln.startswith("D: ")][:3]
    expected = "".join(ln + "\r\n" for ln in lines).encode()
    got = received_header(
        _info(), ["alice@localhost"], ReceivedMode.SINGLE, False, product="fetchmail-6.4.37"
    )
    assert got == expected


def test_received_header_default_product_is_ours() -> None:
    got = received_header(_info(), ["a@b"], ReceivedMode.MULTI, False)
    assert f"({PRODUCT})".encode() in got
    assert b"for <a@b> (multi-drop); " in got


def test_received_header_variants() -> None:
    info = _info(server_address=None, folder="INBOX.x", folder_explicit=True)
    got = received_header(info, ["a@h", "b@h"], ReceivedMode.MULTI, True)
    assert got.startswith(b"Received: from 127.0.0.1\r\n")
    assert b"polling 127.0.0.1 account joe folder INBOX.x)" in got
    assert got.endswith(b"\r\n\tSat, 21 Nov 2026 07:33:27 +0000 (UTC)\r\n")
    by_default = received_header(_info(), ["postmaster@h"], ReceivedMode.BY_DEFAULT, False)
    assert b"for <postmaster@h> (by default); " in by_default
    implicit = received_header(_info(folder="INBOX"), ["a@h"], ReceivedMode.SINGLE, True)
    assert b"folder" not in implicit


def test_received_header_needs_date() -> None:
    with pytest.raises(ValueError, match="date"):
        received_header(_info(date=None), ["a@h"], ReceivedMode.SINGLE, False)


def test_format_date_c_locale_and_offsets() -> None:
    tz = timezone(timedelta(hours=-5, minutes=-30), "XST")
    assert format_date(datetime(2024, 1, 1, 0, 0, 5, tzinfo=tz)) == (
        "Mon, 01 Jan 2024 00:00:05 -0530 (XST)"
    )


def test_split_fields_keeps_folding_and_stops_at_blank() -> None:
    block = b"A: 1\r\n 2\r\n\tthree\r\nB: x\r\n\r\nbody"
    assert split_fields(block) == [b"A: 1\r\n 2\r\n\tthree\r\n", b"B: x\r\n"]
    assert field_name(b"Subject : hi\r\n") == b"subject"
    assert field_name(b"no colon here\r\n") == b""
    assert field_value(b"A: 1\r\n 2\r\n") == b"1 2"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"joe", b"joe@h.x"),
        (b" Joe <joe>", b" Joe <joe@h.x>"),
        (b" joe (Joe User)", b" joe@h.x (Joe User)"),
        (b' "Doe, J" <jd>, bob@x, carl', b' "Doe, J" <jd@h.x>, bob@x, carl@h.x'),
        (b" <>", b" <>"),
        (b" undisclosed-recipients:;", b" undisclosed-recipients:;"),
        (b" grp: a, b@c;", b" grp: a@h.x, b@c;"),
        (b" Joe <joe> (see <x>)", b" Joe <joe@h.x> (see <x>)"),
        (b" host!user", b" host!user"),
        (b" joe ,\r\n\tann\r\n", b" joe@h.x ,\r\n\tann@h.x\r\n"),
        (b" (only a comment)", b" (only a comment)"),
    ],
)
def test_rewrite_address_list(value: bytes, expected: bytes) -> None:
    assert rewrite_address_list(value, "h.x") == expected


def test_address_extraction() -> None:
    assert all_addresses(b'"A, B" <a@x>, c@y (C), grp: d@z;') == ["a@x", "c@y", "d@z"]
    assert all_addresses(b"<@r1,@r2:u@h>") == ["u@h"]
    assert first_address(b"<>") == ""
    assert first_address(b"") is None
    assert first_address(b"Sender <s@r>") == "s@r"


def test_decode_encoded_words() -> None:
    assert decode_encoded_words(b"second =?ISO-8859-1?Q?caf=E9?=") == b"second caf\xe9"
    assert decode_encoded_words(b"=?utf-8?B?w6k=?= =?utf-8?q?a_b?=") == b"\xc3\xa9a b"
    assert decode_encoded_words(b"=?utf-8?B?!!!?=") == b"=?utf-8?B?!!!?="
    assert decode_encoded_words(b"plain") == b"plain"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\n", BodyType.EIGHT_BIT),
        (
            b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n",
            BodyType.EIGHT_BIT,
        ),
        (b"Content-Transfer-Encoding: quoted-printable\r\n", BodyType.UNKNOWN),
        (b"Content-Transfer-Encoding: 7bit\r\n", BodyType.SEVEN_BIT),
        (
            b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="x"\r\n',
            BodyType.EIGHT_BIT,
        ),
        (b"Subject: x\r\n", BodyType.UNKNOWN),
    ],
)
def test_body_type(block: bytes, expected: BodyType) -> None:
    assert body_type(split_fields(block)) is expected
