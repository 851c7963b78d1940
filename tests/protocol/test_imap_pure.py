"""Pure parts of the IMAP adapter: mechanism choice, redaction, batching."""

from __future__ import annotations

import pytest

from pyfetchmail.config.model import Auth
from pyfetchmail.errors import AuthError
from pyfetchmail.protocols.base import MessageRef
from pyfetchmail.protocols.imap import BATCH_COUNT, BATCH_OCTETS, CHUNK_THRESHOLD, fetch_batches
from pyfetchmail.protocols.imap_auth import Mechanism, choose_mechanisms
from pyfetchmail.protocols.imap_wire import redact_wire_line

M = Mechanism
BASE = ["IMAP4REV1"]


@pytest.mark.parametrize(
    ("auth", "caps", "password", "expected"),
    [
        # fetchmail's "any" order: EXTERNAL (with SASL-IR), CRAM-MD5, LOGIN.
        (Auth.ANY, ["AUTH=PLAIN"], "pw", [M.LOGIN]),
        (Auth.ANY, ["AUTH=CRAM-MD5", "AUTH=PLAIN"], "pw", [M.CRAM_MD5, M.LOGIN]),
        (
            Auth.ANY,
            ["AUTH=EXTERNAL", "SASL-IR", "AUTH=CRAM-MD5"],
            "pw",
            [M.EXTERNAL, M.CRAM_MD5, M.LOGIN],
        ),
        (Auth.ANY, ["AUTH=EXTERNAL"], "pw", [M.LOGIN]),  # no SASL-IR: skipped
        (Auth.ANY, ["AUTH=GSSAPI", "AUTH=NTLM"], "pw", [M.LOGIN]),  # not implemented
        (Auth.ANY, ["LOGINDISABLED", "AUTH=PLAIN"], "pw", [M.PLAIN]),
        (Auth.ANY, ["AUTH=PLAIN"], "pässwort", [M.PLAIN]),
        (Auth.PASSWORD, ["AUTH=CRAM-MD5"], "pw", [M.LOGIN]),
        (Auth.PASSWORD, ["AUTH=PLAIN"], "pässwort", [M.PLAIN]),
        (Auth.CRAM_MD5, [], "pw", [M.CRAM_MD5]),  # forced: sent even if not advertised
        (Auth.EXTERNAL, ["AUTH=EXTERNAL", "SASL-IR"], None, [M.EXTERNAL]),
        (Auth.SSH, [], None, []),
    ],
)
def test_choice(auth: Auth, caps: list[str], password: str | None, expected: list[M]) -> None:
    assert choose_mechanisms(auth, BASE + caps, password, host="h") == expected


@pytest.mark.parametrize(
    ("auth", "caps", "password", "message"),
    [
        (
            Auth.PASSWORD,
            ["LOGINDISABLED", "AUTH=PLAIN"],
            "pw",
            r"h: --auth password requested but server forbids it \(LOGINDISABLED\)\.",
        ),
        (Auth.EXTERNAL, [], None, "--auth external requested but server does not advertise"),
        (Auth.EXTERNAL, ["AUTH=EXTERNAL"], None, "did not advertise SASL-IR"),
        (Auth.ANY, ["LOGINDISABLED"], "pw", "run out of authentication methods"),
        (Auth.ANY, [], None, "run out of authentication methods"),
        (Auth.ANY, [], "pässwort", "non-ASCII"),
        (Auth.GSSAPI, ["AUTH=GSSAPI"], None, "not supported"),
    ],
)
def test_choice_errors(auth: Auth, caps: list[str], password: str | None, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        choose_mechanisms(auth, BASE + caps, password, host="h")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('A1 LOGIN "joe" "secret"', "A1 LOGIN *"),
        ("A2 AUTHENTICATE PLAIN AGpvZQBzZWNyZXQ=", "A2 AUTHENTICATE *"),
        ("A3 login joe secret", "A3 login *"),
        ('A4 SELECT "INBOX"', 'A4 SELECT "INBOX"'),
    ],
)
def test_redact_wire_line(line: str, expected: str) -> None:
    assert redact_wire_line(line) == expected


def _ref(n: int, size: int | None) -> MessageRef:
    return MessageRef(number=n, uid=str(n), size=size)


def test_batches_bounded_by_count_and_octets() -> None:
    refs = [_ref(n, 10) for n in range(1, 2 * BATCH_COUNT + 2)]
    sizes = [len(b) for b in fetch_batches(refs)]
    assert sizes == [BATCH_COUNT, BATCH_COUNT, 1]
    big = CHUNK_THRESHOLD  # not above the threshold: batched, but octets bound apply
    refs = [_ref(n, big) for n in range(1, 6)]
    for batch in fetch_batches(refs):
        assert sum(r.size or 0 for r in batch) <= BATCH_OCTETS


def test_large_and_unsized_messages_go_alone_in_order() -> None:
    refs = [_ref(1, 5), _ref(2, CHUNK_THRESHOLD + 1), _ref(3, 5), _ref(4, None), _ref(5, 5)]
    batches = [[r.number for r in b] for b in fetch_batches(refs)]
    assert batches == [[1], [2], [3], [4], [5]]
