"""Pure POP3 login rules: capabilities, APOP timestamps, -ERR classes, redaction."""

from __future__ import annotations

import hashlib

import pytest

from pyfetchmail.errors import AuthError, ServerBusy, ServerLockBusy
from pyfetchmail.protocols.pop3_auth import (
    Capabilities,
    apop_digest,
    apop_timestamp,
    classify_auth_err,
)
from pyfetchmail.protocols.transcript import redact


def test_capabilities_parse_and_match() -> None:
    caps = Capabilities.parse(["TOP", "uidl", "SASL PLAIN cram-md5", "PIPELINING", "STLS", ""])
    assert caps.has("STLS")
    assert caps.has("UIDL")
    assert not caps.has("USER")
    assert caps.sasl == {"PLAIN", "CRAM-MD5"}
    assert caps.offers("CRAM-MD5")
    assert not caps.offers("GSSAPI")
    # fetchmail's substring match also finds mechanisms outside a SASL line.
    assert Capabilities.parse(["AUTH-RESP-CODE", "X-CRAM-MD5-ONLY"]).offers("CRAM-MD5")
    assert not Capabilities().has("STLS")


def test_apop_rfc1939_example() -> None:
    # RFC 1939 §7 example: digest of "<1896.697170952@dbc.mtview.ca.us>tanstaaf".
    greeting = "POP3 server ready <1896.697170952@dbc.mtview.ca.us>"
    stamp = apop_timestamp(greeting)
    assert stamp == "<1896.697170952@dbc.mtview.ca.us>"
    assert apop_digest(stamp, "tanstaaf") == "c4c9334bac560ecc979e58001b3e22fb"
    assert apop_digest(stamp, "x") == hashlib.md5((stamp + "x").encode()).hexdigest()


@pytest.mark.parametrize(
    ("greeting", "message"),
    [
        ("ready", "Required APOP timestamp not found in greeting"),
        ("ready <1896.697170952@", "Timestamp syntax error in greeting"),
        ("ready <no-at-sign>", "Invalid APOP timestamp."),
        ("ready <a b@c>", "Invalid APOP timestamp."),
        ("ready <@c>", "Invalid APOP timestamp."),
    ],
)
def test_apop_bad_timestamps(greeting: str, message: str) -> None:
    with pytest.raises(AuthError) as info:
        apop_timestamp(greeting)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "cls"),
    [
        ("[IN-USE] Mailbox is locked by another POP3 session", ServerLockBusy),
        ("unable to lock maildrop", ServerLockBusy),
        ("LOCK failed", ServerLockBusy),
        ("please wait", ServerLockBusy),
        ("[LOGIN-DELAY] 900", ServerLockBusy),
        ("Service temporarily unavailable", ServerBusy),
        ("service unavailable, try later", ServerBusy),
        ("Service not available", AuthError),
        ("[AUTH] Authentication failed.", AuthError),
        ("", AuthError),
    ],
)
def test_err_classes_during_login(text: str, cls: type[Exception]) -> None:
    err = classify_auth_err(text, "joe@pop.example")
    assert type(err) is cls
    if cls is AuthError:
        assert str(err) == "Authorization failure on joe@pop.example"


@pytest.mark.parametrize(
    ("verb", "args", "shown"),
    [
        ("PASS", ["hunter2"], "PASS *"),
        ("PASS", ["with spaces too"], "PASS *"),
        ("APOP", ["joe", "c4c9334bac560ecc979e58001b3e22fb"], "APOP joe *"),
        ("RPOP", ["hunter2"], "RPOP *"),
        ("AUTH", ["PLAIN", "AGpvZQBzZWNyZXQ="], "AUTH PLAIN *"),
        ("AUTH", ["CRAM-MD5"], "AUTH CRAM-MD5"),
        ("USER", ["joe"], "USER joe"),
        ("RETR", ["1"], "RETR 1"),
    ],
)
def test_transcript_redaction(verb: str, args: list[str], shown: str) -> None:
    assert redact(verb, args) == shown
