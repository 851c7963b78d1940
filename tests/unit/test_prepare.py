"""Header processing and envelope discovery of prepare_message (spec §6.6, §6.2)."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from pyfetchmail.config.model import BadHeader, NameMapping, Query, RunControl
from pyfetchmail.mail.headers import PRODUCT, split_fields
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.mail.prepare import (
    BAD_HEADER_REASON,
    NO_POSTMASTER_REASON,
    PreparedMessage,
    destination_domain,
    envelope_sender,
    prepare_message,
)
from tests.builders import SAMPLE_MESSAGE, sample_query, sample_trace

WHEN = datetime(2026, 11, 21, 7, 33, 27, tzinfo=UTC)
INFO = sample_trace(WHEN)
RUN = RunControl(postmaster="alice")

# Message 1 of samples/pop3-server-view.txt, as the POP3 layer hands it over.
MSG1 = SAMPLE_MESSAGE + b".dot line\r\n"
# What fetchmail 6.4.37 sent in DATA (samples/smtp-listener-view.txt), unstuffed.
MSG1_DELIVERED = (
    b"Received: from 127.0.0.1 [127.0.0.1]\r\n"
    b"\tby vm with POP3 (fetchmail-6.4.37)\r\n"
    b"\tfor <alice@localhost> (single-drop); Sat, 21 Nov 2026 07:33:27 +0000 (UTC)\r\n"
    + MSG1.split(b"\r\n", 1)[1].replace(b"To: joe\r\n", b"To: joe@127.0.0.1\r\n")
)
_query = sample_query


def _prep(
    data: bytes, query: Query | None = None, run: RunControl = RUN, **kw: object
) -> PreparedMessage:
    raw = SpooledMessage.from_bytes(data)
    return prepare_message(raw, query or _query(), run, INFO, **kw)  # type: ignore[arg-type]


def _out(p: PreparedMessage) -> bytes:
    return p.message.read_all().replace(PRODUCT.encode(), b"fetchmail-6.4.37")


def test_sample_message_byte_exact() -> None:
    p = _prep(MSG1)
    assert p.refused is None
    assert _out(p) == MSG1_DELIVERED
    assert p.envelope.sender == "sender@remote.example"
    assert p.envelope.recipients == ("alice",)
    assert p.message.announced_size == len(MSG1)


def test_return_path_kept_for_mda() -> None:
    p = _prep(MSG1, _query(mda="/bin/cat"))
    # spec §6.4: Return-Path stays the first line, our Received follows it.
    assert _out(p).startswith(b"Return-Path: <sender@remote.example>\r\nReceived: from 127")


def test_received_goes_before_first_received_field_only() -> None:
    data = b"X-Top: 1\r\nX-Received: no\r\nReceived: yes\r\n\r\nb\r\n"
    out = _out(_prep(data))
    assert out.startswith(b"X-Top: 1\r\nX-Received: no\r\nReceived: from 127.0.0.1")
    assert out.index(b"Received: yes") > out.index(b"(single-drop)")
    top = _out(_prep(b"Subject: s\r\n\r\nb\r\n"))
    assert top.startswith(b"Received: from 127.0.0.1 [127.0.0.1]\r\n")


def test_invisible_adds_no_received() -> None:
    p = _prep(b"Subject: s\r\n\r\nb\r\n", run=replace(RUN, invisible=True))
    assert p.message.read_all() == b"Subject: s\r\n\r\nb\r\n"


def test_tracepolls_and_folder() -> None:
    info = replace(INFO, folder="Lists", folder_explicit=True)
    q = _query(server={"tracepolls": True})
    out = prepare_message(
        SpooledMessage.from_bytes(b"S: 1\r\n\r\n"), q, RUN, info
    ).message.read_all()
    assert b"polling 127.0.0.1 account joe folder Lists)" in out


def test_dropstatus_and_empty_status() -> None:
    data = b"Status: RO\r\nX-Mozilla-Status:  \r\nStatus:\r\nS: x\r\n\r\nb"
    assert b"Status: RO\r\nS: x" in _out(_prep(data))
    assert b"Status" not in _out(_prep(data, _query(dropstatus=True)))


def test_dropdelivered_single_drop() -> None:
    out = _out(_prep(MSG1, _query(dropdelivered=True)))
    assert b"Delivered-To" not in out


def test_norewrite() -> None:
    assert b"To: joe\r\n" in _out(_prep(MSG1, _query(rewrite=False)))


def test_mbox_from_lines_dropped() -> None:
    data = b"From joe Mon Jan  1 00:00:00 2024\r\n>From x\r\nSubject: s\r\n\r\nFrom body\r\n"
    out = _out(_prep(data))
    assert b"From joe" not in out.split(b"\r\n\r\n")[0]
    assert out.endswith(b"\r\n\r\nFrom body\r\n")


def test_bad_header_reject_and_accept() -> None:
    data = b"Subject: s\r\nthis is not a header\r\n\r\nbody\r\n"
    assert _prep(data).refused == BAD_HEADER_REASON
    q = _query(server={"badheader": BadHeader.ACCEPT})
    p = _prep(data, q)
    assert p.refused is None
    assert b"this is not a header\r\n" in _out(p)


def test_nul_bytes_removed_with_warning() -> None:
    p = _prep(b"Subject: a\0b\r\n\r\nbody\0\r\n")
    out = _out(p)
    assert b"Subject: ab\r\n" in out
    assert b"X-Fetchmail-Warning: message has embedded NULs\r\n\r\n" in out
    assert out.endswith(b"body\0\r\n")  # the body is passed through untouched
    assert "message has embedded NULs" in p.warnings


def test_mimedecode_headers() -> None:
    data = b"Subject: second =?ISO-8859-1?Q?caf=E9?=\r\n\r\ncaf=E9\r\n"
    assert b"Subject: second caf\xe9\r\n" in _out(_prep(data, _query(mimedecode=True)))
    assert b"=?ISO-8859-1?Q?caf=E9?=" in _out(_prep(data))


def test_forcecr_header_and_body_across_chunks() -> None:
    body = b"a\n" * 40000 + b"b\r\nc\n"
    p = _prep(b"Subject: s\n\n" + body, _query(forcecr=True))
    out = _out(p)
    assert b"\n" not in out.replace(b"\r\n", b"")
    assert out.endswith(b"\r\n\r\n" + b"a\r\n" * 40000 + b"b\r\nc\r\n")


def test_headerless_message_synthesised() -> None:
    p = _prep(b"\r\njust a body\r\n")
    out = _out(p)
    assert b"From: FETCHMAIL-DAEMON\r\nTo: alice@vm\r\n" in out
    assert b"Subject: Headerless mail from joe's mailbox on 127.0.0.1\r\n\r\njust a body\r\n" in out


def test_x_imap_retained() -> None:
    assert _prep(b"X-IMAP: 1 2\r\n\r\n").retained
    assert not _prep(MSG1).retained


@pytest.mark.parametrize(
    ("header", "sender"),
    [
        (b"Return-Path: <rp@x>\r\nFrom: f@x\r\n", "rp@x"),
        (b"Return-Path: <>\r\nFrom: f@x\r\n", ""),
        (b"Sender: bare\r\nFrom: f@x\r\n", "f@x"),  # Sender needs @ or !
        (b"Sender: s@x\r\nFrom: f@x\r\n", "s@x"),
        (b"From: f@x\r\nResent-From: rf@x\r\n", "rf@x"),
        (b"Reply-To: r@x\r\nApparently-From: a@x\r\n", "r@x"),
        (b"From: localonly\r\n", "localonly@pop.test"),
        (b"Subject: none\r\n", "joe@pop.test"),
        (b"From: <@route:f@x>\r\n", "f@x"),
    ],
)
def test_envelope_sender(header: bytes, sender: str) -> None:
    assert envelope_sender(split_fields(header), "joe", "pop.test") == sender


def test_envelope_sender_fallbacks() -> None:
    assert envelope_sender([], "joe", "10.0.0.1") == "joe@[10.0.0.1]"
    assert envelope_sender([], "joe@isp", "pop.test") == "joe@isp"


def test_destination_domain() -> None:
    assert destination_domain(_query()) == "localhost"
    assert destination_domain(_query(smtphunt=("mx.local/2525",))) == "mx.local"
    assert destination_domain(_query(smtphunt=("/run/lmtp",))) == "localhost"
    assert destination_domain(_query(smtpaddress="corp.test")) == "corp.test"
    assert destination_domain(_query(mda="x", smtphunt=("mx",))) == "localhost"


MULTI = {
    "localnames": (NameMapping("joe", "joe"), NameMapping("bob", "robert", True)),
    "server": {"envelope": "Delivered-To", "aka": ("pop.test",)},
}


def test_multidrop_recipients_and_received() -> None:
    data = b"Delivered-To: joe@pop.test\r\nTo: joe@pop.test\r\n\r\nb\r\n"
    p = _prep(data, _query(**MULTI))
    assert p.envelope.recipients == ("joe",)
    assert b"for <joe@localhost> (multi-drop); " in _out(p)
    two = _prep(b"To: joe@pop.test, bob@pop.test\r\n\r\nb\r\n", _query(**MULTI))
    assert two.envelope.recipients == ("joe", "robert")
    assert b"\r\n\tSat, 21 Nov 2026" in _out(two)


def test_multidrop_no_match_goes_to_postmaster() -> None:
    p = _prep(b"To: who@else.test\r\n\r\nb\r\n", _query(**MULTI))
    assert p.envelope.recipients == ("alice",)
    out = _out(p)
    assert b"for <alice@localhost> (multi-drop); " in out  # as fetchmail 6.4.37 writes it
    # One address at a foreign domain: fetchmail 6.4.37 names it (checked against the binary).
    assert (
        b"X-Fetchmail-Warning: recipient address who@else.test didn't match any local name"
        b"\r\n\r\n" in out
    )
    none = _prep(b"Subject: x\r\n\r\n", _query(**MULTI))
    assert b"X-Fetchmail-Warning: no recipient addresses matched declared local names" in _out(none)


def test_multidrop_no_postmaster_refuses() -> None:
    p = _prep(b"To: who@else.test\r\n\r\nb\r\n", _query(**MULTI), run=RunControl(postmaster=""))
    assert p.refused == NO_POSTMASTER_REASON


def test_multidrop_duplicate_suppression() -> None:
    data = b"To: joe@pop.test\r\nMessage-ID: <1@x>\r\n\r\nb\r\n"
    first = _prep(data, _query(**MULTI))
    again = _prep(data, _query(**MULTI), previous_digest=first.header_digest)
    assert first.refused is None
    assert again.refused is not None
    assert "duplicate" in again.refused
    enveloped = b"Delivered-To: joe@pop.test\r\n" + data
    e1 = _prep(enveloped, _query(**MULTI))
    assert _prep(enveloped, _query(**MULTI), previous_digest=e1.header_digest).refused is None


def test_multidrop_dropdelivered_keeps_envelope_header() -> None:
    kw = dict(MULTI, dropdelivered=True)
    data = b"Delivered-To: joe@pop.test\r\nDelivered-To: x@y\r\nTo: a\r\n\r\n"
    out = _out(_prep(data, _query(**kw)))
    assert b"Delivered-To: joe@pop.test\r\n" in out
    assert b"x@y" not in out


def test_large_body_is_streamed_not_loaded() -> None:
    body_line = b"x" * 998 + b"\r\n"
    raw = SpooledMessage(max_memory=1 << 20)
    raw.write(b"Subject: big\r\n\r\n")
    for _ in range(30 * 1024):  # 30 MiB
        raw.write(body_line)
    assert not raw.in_memory
    tracemalloc.start()
    try:
        p = prepare_message(raw, _query(), RUN, INFO)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    assert not p.message.in_memory
    assert p.message.size == raw.size + len(p.message.header_bytes()) - len(b"Subject: big\r\n\r\n")


QP_SINGLE = (
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 soft=\r\nbreak\r\n"
)


def test_mimedecode_single_part_body() -> None:
    out = _out(_prep(QP_SINGLE, _query(mimedecode=True)))
    assert out.endswith(b"Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9 softbreak\r\n")
    assert _out(_prep(QP_SINGLE)).endswith(b"caf=E9 soft=\r\nbreak\r\n")
    no_mime = QP_SINGLE.replace(b"MIME-Version: 1.0\r\n", b"")
    assert _out(_prep(no_mime, _query(mimedecode=True))).endswith(b"caf=E9 soft=\r\nbreak\r\n")


def test_mimedecode_multipart_parts() -> None:
    data = (
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="BB"\r\n\r\n'
        b"preamble =E9\r\n"
        b"--BB\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"a=3Db soft=\r\n--BB\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        b"\r\nraw=3D\r\n--BB--\r\nepilogue =E9\r\n"
    )
    out = _out(_prep(data, _query(mimedecode=True)))
    body = out.split(b"\r\n\r\n", 1)[1]
    assert body == (
        b"preamble =E9\r\n"
        b"--BB\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        b"a=b soft\r\n--BB\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        b"\r\nraw=3D\r\n--BB--\r\nepilogue =E9\r\n"
    )


def test_header_only_message_without_final_newline() -> None:
    p = _prep(b"Subject: x\r\nTo: y@z", _query(**MULTI))
    out = _out(p)
    assert out.endswith(
        b"To: y@z\r\nX-Fetchmail-Warning: recipient address y@z didn't match any local name\r\n"
    )
