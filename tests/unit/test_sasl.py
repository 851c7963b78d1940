"""SASL encoders against the RFC example vectors."""

from __future__ import annotations

import base64

import pytest

from pyfetchmail.errors import LocalProtocolError, RemoteProtocolError
from pyfetchmail.protocols import sasl


def test_cram_md5_rfc2195_example() -> None:
    # RFC 2195 §2: challenge, user "tim", secret "tanstaaftanstaaf".
    challenge_b64 = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
    challenge = sasl.decode_challenge(challenge_b64)
    assert challenge == b"<1896.697170952@postoffice.reston.mci.net>"
    response = sasl.cram_md5(challenge, "tim", "tanstaaftanstaaf")
    assert response == b"tim b913a602c7eda7a495b4e6e7334d3890"
    assert sasl.b64(response) == "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"


def test_plain_rfc4616() -> None:
    assert sasl.plain("tim", "tanstaaftanstaaf") == b"\0tim\0tanstaaftanstaaf"
    assert sasl.plain("Kurt", "xipj3plmq", "Ursel") == b"Ursel\0Kurt\0xipj3plmq"
    assert sasl.plain("j\u00f6", "p\u00e4ss") == "\0j\u00f6\0p\u00e4ss".encode()


def test_plain_rejects_nul_without_echoing_secret() -> None:
    with pytest.raises(LocalProtocolError) as info:
        sasl.plain("u", "se\0cret")
    assert "cret" not in str(info.value)


def test_login_steps() -> None:
    assert sasl.login_step(b"Username:", "u", "p") == b"u"
    assert sasl.login_step(b"Password:", "u", "p") == b"p"


def test_external_empty_and_b64_of_empty() -> None:
    assert sasl.external() == b""
    assert sasl.b64(b"") == "="


def test_xoauth2_format() -> None:
    raw = sasl.xoauth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    assert raw == (
        b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
        b"\x01\x01"
    )


def test_oauthbearer_rfc7628_example() -> None:
    # RFC 7628 §4.1, without host/port: GS2 header then auth, ^A-separated.
    raw = sasl.oauthbearer("user@example.com", "vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg==")
    assert raw == (
        b"n,a=user@example.com,\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg==\x01\x01"
    )
    with_host = sasl.oauthbearer("a=b,c", "T", host="server.example.com", port=143)
    assert with_host == (
        b"n,a=a=3Db=2Cc,\x01host=server.example.com\x01port=143\x01auth=Bearer T\x01\x01"
    )


@pytest.mark.parametrize("bad", ["not base64!", "abc", "\u00e9\u00e9\u00e9\u00e9"])
def test_bad_challenge_is_remote_protocol_error(bad: str) -> None:
    with pytest.raises(RemoteProtocolError):
        sasl.decode_challenge(bad)


def test_empty_challenge_decodes_to_empty() -> None:
    assert sasl.decode_challenge("") == b""
    assert sasl.decode_challenge("=") == b""
    assert sasl.decode_challenge(base64.b64encode(b"x").decode()) == b"x"


def test_cram_md5_empty_challenge_rejected() -> None:
    with pytest.raises(RemoteProtocolError):
        sasl.cram_md5(b"", "u", "p")
