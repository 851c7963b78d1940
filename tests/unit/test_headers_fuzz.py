"""Property tests: header handling never crashes and keeps the body intact."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from pyfetchmail.config.model import BadHeader, NameMapping, Query, RunControl, Server, User
from pyfetchmail.mail.headers import (
    all_addresses,
    decode_encoded_words,
    rewrite_address_list,
    split_fields,
)
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.mail.mimedecode import DecodePlan, decode_body
from pyfetchmail.mail.prepare import TraceInfo, prepare_message

HEADERISH = st.binary(max_size=300) | st.text(
    alphabet=st.sampled_from(list('ab@<>(),;:"\\ \t\r\n!=?QB.x-')), max_size=120
).map(lambda t: t.encode())

INFO = TraceInfo(
    "h", None, "IMAP", "me", "h", "u", "INBOX", False, datetime(2026, 1, 1, tzinfo=UTC)
)


@given(HEADERISH)
def test_address_helpers_never_crash(value: bytes) -> None:
    rewritten = rewrite_address_list(value, "d.example")
    assert len(rewritten) >= len(value)
    for addr in all_addresses(value):
        assert isinstance(addr, str)
    decode_encoded_words(value)
    split_fields(value)


@given(st.text(alphabet=st.sampled_from(list('ab <>,"()')), max_size=60))
def test_rewrite_only_adds_domains(value: str) -> None:
    out = rewrite_address_list(value.encode(), "d")
    assert out.replace(b"@d", b"") == value.encode()


@settings(max_examples=200)
@given(
    header=HEADERISH,
    body=st.binary(max_size=200),
    multidrop=st.booleans(),
    flags=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_prepare_never_crashes_and_keeps_the_body(
    header: bytes, body: bytes, multidrop: bool, flags: list[bool]
) -> None:
    names = (
        (NameMapping("a", "a"), NameMapping("b", "b")) if multidrop else (NameMapping("a", "a"),)
    )
    user = User(
        "u", localnames=names, forcecr=False, mimedecode=flags[0], dropstatus=flags[1],
        dropdelivered=flags[2], rewrite=flags[3], mda="x" if flags[4] else None,
    )  # fmt: skip
    q = Query(Server("h", badheader=BadHeader.ACCEPT), user)
    raw = header.replace(b"\r\n\r\n", b"\r\n").replace(b"\n\n", b"\n") + b"\r\n\r\n" + body
    p = prepare_message(SpooledMessage.from_bytes(raw), q, RunControl(postmaster="pm"), INFO)
    if p.refused is None and not flags[0]:
        assert p.message.read_all().endswith(b"\r\n\r\n" + body) or not header.strip()


@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_qp_decoding_never_crashes_and_is_chunking_independent(data: bytes, size: int) -> None:
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    for plan in (DecodePlan(True), DecodePlan(False, b"B")):
        assert b"".join(decode_body(chunks, plan)) == b"".join(decode_body([data], plan))


@given(st.binary(max_size=300))
def test_split_fields_loses_nothing_before_the_blank_line(block: bytes) -> None:
    joined = b"".join(split_fields(block))
    assert block.startswith(joined)
    rest = block[len(joined) :]
    assert rest == b"" or rest.startswith((b"\r\n", b"\n"))
