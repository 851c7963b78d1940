"""``mimedecode`` for bodies: quoted-printable text parts become 8-bit.

fetchmail(1), ``--mimedecode``; the encoding is RFC 2045 §6.7.

Responsibility: decide from the MIME headers whether (and which parts of) a
body are quoted-printable text, rewrite their ``Content-Transfer-Encoding``
to ``8bit`` and decode the body lines as they stream past.

Invariants:
- Only ``MIME-Version: 1.0`` messages are touched.  A single-part message
  qualifies with a ``text/*`` (or no) Content-Type or ``message/rfc822``;
  a ``multipart/*`` message has each direct part judged the same way
  (nested multiparts are passed through unchanged).
- Memory is bounded: the body is processed line by line; a line longer
  than :data:`_MAX_LINE` is passed through undecoded (QP lines are at most
  76 characters, RFC 2045 §6.7, so such a line is not QP anyway).
- Undecodable input is passed through as it came (lenient, like ``email``).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pyfetchmail.mail.headers import field_name, field_value

__all__ = ["DecodePlan", "decode_body", "plan_decode"]

_MAX_LINE = 64 * 1024
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DecodePlan:
    """What to decode: the whole body, or the QP text parts of a multipart body."""

    whole: bool
    boundary: bytes | None = None


def _decodable(content_type: bytes, cte: bytes) -> bool:
    if not cte.lower().startswith(b"quoted-printable"):
        return False
    ctype = content_type.lower()
    return not ctype or ctype.startswith((b"text/", b"message/rfc822"))


def _rewrite_cte(field: bytes) -> bytes:
    eol = b"\r\n" if field.endswith(b"\r\n") else b"\n"
    name = field.partition(b":")[0]
    return name + b": 8bit" + eol


def _mime_facts(fields: Iterable[bytes]) -> tuple[bytes, bytes, bytes]:
    version = ctype = cte = b""
    for field in fields:
        name = field_name(field)
        if name == b"mime-version":
            version = field_value(field)
        elif name == b"content-type":
            ctype = field_value(field)
        elif name == b"content-transfer-encoding":
            cte = field_value(field)
    return version, ctype, cte


def plan_decode(fields: list[bytes]) -> tuple[list[bytes], DecodePlan | None]:
    """Return *fields* (CTE rewritten when the whole body is decoded) and the plan."""
    version, ctype, cte = _mime_facts(fields)
    if not version.startswith(b"1.0"):
        return fields, None
    if _decodable(ctype, cte):
        rewritten = [
            _rewrite_cte(f) if field_name(f) == b"content-transfer-encoding" else f for f in fields
        ]
        return rewritten, DecodePlan(whole=True)
    if ctype.lower().startswith(b"multipart/"):
        match = _BOUNDARY.search(ctype)
        if match:
            return fields, DecodePlan(whole=False, boundary=match.group(1) or match.group(2))
    return fields, None


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Re-chunk a byte stream into lines (keepends); overlong lines come in pieces."""
    held = b""
    for chunk in chunks:
        held += chunk
        start = 0
        while True:
            end = held.find(b"\n", start)
            if end < 0:
                break
            yield held[start : end + 1]
            start = end + 1
        held = held[start:]
        while len(held) > _MAX_LINE:
            yield held[:_MAX_LINE]
            held = held[_MAX_LINE:]
    if held:
        yield held


def _qp(line: bytes) -> bytes:
    if len(line) > _MAX_LINE:
        return line
    try:
        return binascii.a2b_qp(line)
    except (binascii.Error, ValueError):
        return line


def decode_body(chunks: Iterable[bytes], plan: DecodePlan) -> Iterator[bytes]:
    """Stream the body with the planned parts QP-decoded."""
    if plan.whole:
        for line in _lines(chunks):
            yield _qp(line)
        return
    assert plan.boundary is not None
    delimiter = b"--" + plan.boundary
    state = "preamble"  # preamble | headers | body | epilogue
    part_fields: list[bytes] = []
    decoding = False
    pending = b""  # decoded text not yet sent: a soft break must not eat a delimiter's CRLF
    for line in _lines(chunks):
        stripped = line.rstrip(b"\r\n")
        if state != "epilogue" and stripped.startswith(delimiter):
            rest = stripped[len(delimiter) :].strip()
            if rest in (b"", b"--"):
                if pending and not pending.endswith(b"\n"):
                    pending += b"\r\n" if line.endswith(b"\r\n") else b"\n"
                yield pending + line
                pending = b""
                state = "epilogue" if rest == b"--" else "headers"
                part_fields, decoding = [], False
                continue
        if state == "headers":
            if stripped == b"":
                _, ctype, cte = _mime_facts(part_fields)
                decoding = _decodable(ctype, cte)
                for field in part_fields:
                    is_cte = field_name(field) == b"content-transfer-encoding"
                    yield _rewrite_cte(field) if decoding and is_cte else field
                yield line
                state = "body"
            elif line[:1] in (b" ", b"\t") and part_fields:
                part_fields[-1] += line
            else:
                part_fields.append(line)
            continue
        if state == "body" and decoding:
            yield pending
            pending = _qp(line)
        else:
            yield pending + line
            pending = b""
    yield pending
    for field in part_fields if state == "headers" else ():
        yield field
