"""Pure helpers for message headers: splitting, addresses, rewrite, trace lines.

Responsibility: everything fetchmail does to a header *line* or header *value*
without knowing about queries, sinks or sockets.  No I/O, no clock (callers
pass the date), no logging.

Invariants:
- Header text is handled as bytes; where a ``str`` is needed it is the
  latin-1 decoding of those bytes, so every byte survives a round trip
  (8-bit headers are never re-encoded, RFC 6532 mail stays as it came).
- A *logical* header line is one physical line plus its folded
  continuation lines (RFC 5322 §2.2.3: a line starting with SP or TAB
  continues the previous field); we keep the original bytes, line ends and
  folding untouched unless a step deliberately rewrites the value.
- :func:`received_header` reproduces fetchmail 6.4.37's trace header byte for
  byte, except for the product token: we announce ``pyfetchmail-<version>``
  because RFC 5321 §4.4 trace information must name the software that
  actually added it.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Iterable, Sequence
from datetime import datetime

from pyfetchmail import __version__
from pyfetchmail.mail.trace import TraceInfo

__all__ = [
    "ADDRESS_HEADERS",
    "PRODUCT",
    "BodyType",
    "ReceivedMode",
    "all_addresses",
    "body_type",
    "decode_encoded_words",
    "field_name",
    "field_value",
    "first_address",
    "format_date",
    "rcpt_address",
    "received_header",
    "rewrite_address_list",
    "split_fields",
]

#: Product token written into our Received header comment.
PRODUCT = f"pyfetchmail-{__version__}"

#: Headers whose bare local parts get ``@truename`` appended by ``rewrite``.
ADDRESS_HEADERS = frozenset(
    {
        b"from",
        b"to",
        b"reply-to",
        b"return-path",
        b"cc",
        b"bcc",
        b"resent-from",
        b"resent-to",
        b"resent-cc",
        b"resent-bcc",
        b"apparently-from",
        b"apparently-to",
        b"sender",
        b"resent-sender",
    }
)

_LINES = re.compile(rb"[^\n]*\n|[^\n]+\Z")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ReceivedMode(enum.Enum):
    """Which ``for`` clause the Received header carries."""

    SINGLE = "single-drop"
    MULTI = "multi-drop"
    BY_DEFAULT = "by default"  # nobody matched: delivered to the postmaster


class BodyType(enum.Enum):
    """What the MIME headers say about the body, for ``BODY=`` (RFC 6152)."""

    UNKNOWN = "unknown"
    SEVEN_BIT = "7bit"
    EIGHT_BIT = "8bit"


# ---------------------------------------------------------------------------
# Header block structure


def split_fields(block: bytes) -> list[bytes]:
    """Split a header block into logical fields (each with its folded lines).

    The terminating empty line, if present, is *not* returned.  A leading
    continuation line with nothing to continue is returned as its own field
    (lenient, like the stdlib ``email`` parser's defect handling).

    >>> split_fields(b"A: 1\\r\\n 2\\r\\nB: 3\\r\\n\\r\\n")
    [b'A: 1\\r\\n 2\\r\\n', b'B: 3\\r\\n']
    """
    fields: list[bytes] = []
    # Lines end at LF only: a stray CR inside a field is data, not a line end.
    for line in _LINES.findall(block):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def field_name(field: bytes) -> bytes:
    """Lower-cased field name of *field* (``b""`` when it has no colon)."""
    name, sep, _ = field.partition(b":")
    if not sep:
        return b""
    return name.strip().lower()


def field_value(field: bytes) -> bytes:
    """The value of *field* after the colon, unfolded and stripped."""
    _, _, value = field.partition(b":")
    return re.sub(rb"\r?\n[ \t]", b" ", value).strip()


# ---------------------------------------------------------------------------
# Addresses (RFC 5322 §3.4, leniently)


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """Top-level mailbox segments of an address list as (text, start, end).

    Commas inside quotes, comments or angle brackets do not split; group
    syntax (``name: a, b;``) yields the members, without the display name
    and the closing ``;``.
    """
    segments: list[tuple[str, int, int]] = []
    start = 0
    depth = 0  # comment nesting
    quoted = angle = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and (quoted or depth):
            i += 2
            continue
        if quoted:
            quoted = ch != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(ch, 0)
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth = 1
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif not angle and ch == ":":
            start = i + 1  # group display name ends here
        elif not angle and ch in ",;":
            segments.append((text[start:i], start, i))
            start = i + 1
        i += 1
    segments.append((text[start:], start, n))
    return [s for s in segments if s[0].strip()]


def _strip_comments(text: str) -> str:
    """*text* with every comment replaced by spaces (length-preserving)."""
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for ch in text:
        in_comment = depth > 0
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(ch, 0)
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth = 1
            in_comment = True
        out.append(" " if in_comment else ch)
    return "".join(out)


def _addr_of(segment: str) -> str:
    """The addr-spec of one mailbox segment, source route removed."""
    angle = re.search(r"<([^<>]*)>", _strip_comments(segment))
    addr = angle.group(1) if angle else _strip_comments(segment)
    addr = addr.strip()
    if not angle:
        addr = addr.split()[0] if addr.split() else ""
    # RFC 5322 §4.4 obsolete source route "@a,@b:user@host" -> "user@host".
    if addr.startswith("@") and ":" in addr:
        addr = addr.split(":", 1)[1]
    return addr.strip()


def all_addresses(value: bytes) -> list[str]:
    """Every address in a header *value*, in order, as latin-1 text.

    ``<>`` is returned as ``""``; address lists with comments, quoted
    display names and groups are handled.
    """
    text = re.sub(r"[\r\n]", " ", value.decode("latin-1"))
    return [_addr_of(seg) for seg, _, _ in _tokens(text)]


def first_address(value: bytes) -> str | None:
    """The first address in *value* (``""`` for ``<>``), or None if there is none."""
    addresses = all_addresses(value)
    return addresses[0] if addresses else None


def _needs_domain(addr: str) -> bool:
    return bool(addr) and "@" not in addr and "!" not in addr


def _rewrite_segment(segment: str, domain: str) -> str:
    cleaned = _strip_comments(segment)
    angle = re.search(r"<([^<>]*)>", cleaned)
    if angle:
        if not _needs_domain(angle.group(1).strip()):
            return segment
        # The comment-free copy has the same length, so offsets carry over.
        close = angle.end() - 1
        raw = segment[angle.start(1) : close]
        inner = raw.rstrip()
        return (
            segment[: angle.start(1)] + inner + "@" + domain + raw[len(inner) :] + segment[close:]
        )
    match = re.search(r"\S+", cleaned)
    if match is None or not _needs_domain(match.group(0)):
        return segment
    return segment[: match.end()] + "@" + domain + segment[match.end() :]


def rewrite_address_list(value: bytes, domain: str) -> bytes:
    """Append ``@domain`` to bare local parts in an address-list *value*.

    ``<>``, addresses with ``@`` or ``!`` (UUCP) and group display names stay
    as they are; folding, comments and spacing are preserved.
    """
    text = value.decode("latin-1")
    out: list[str] = []
    pos = 0
    for segment, start, end in _tokens(text):
        out.append(text[pos:start])
        out.append(_rewrite_segment(segment, domain))
        pos = end
    out.append(text[pos:])
    return "".join(out).encode("latin-1")


# ---------------------------------------------------------------------------
# RFC 2047 encoded words (mimedecode)

_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(rb"(\?=)[ \t\r\n]+(=\?)")


def _decode_word(match: re.Match[bytes]) -> bytes:
    encoding, text = match.group(2).upper(), match.group(3)
    try:
        if encoding == b"B":
            return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
        return binascii.a2b_qp(text.replace(b"_", b" "), header=True)
    except (binascii.Error, ValueError):
        return match.group(0)


def decode_encoded_words(value: bytes) -> bytes:
    """Decode RFC 2047 encoded words to their raw bytes (charset dropped).

    This is fetchmail's ``mimedecode`` header behaviour: the result is 8-bit
    text in whatever charset the word declared.  Whitespace between two
    adjacent encoded words is removed (RFC 2047 §6.2).
    """
    if b"=?" not in value:
        return value
    joined = _BETWEEN_WORDS.sub(rb"\1\2", value)
    return _ENCODED_WORD.sub(_decode_word, joined)


# ---------------------------------------------------------------------------
# MIME body type (for BODY=8BITMIME / BODY=7BIT)


def body_type(fields: Iterable[bytes]) -> BodyType:
    """Classify the body from the MIME headers, as fetchmail's ``MimeBodyType``.

    8-bit: ``MIME-Version: 1.0`` and a CTE of ``8bit`` or
    ``quoted-printable``, or a ``multipart/*``/``message/*`` type with a
    boundary.  7-bit: CTE ``7bit`` declared.  Otherwise unknown.
    """
    version = cte = ctype = b""
    for field in fields:
        name = field_name(field)
        if name == b"mime-version":
            version = field_value(field)
        elif name == b"content-transfer-encoding":
            cte = field_value(field).lower()
        elif name == b"content-type":
            ctype = field_value(field).lower()
    if cte.startswith(b"7bit"):
        return BodyType.SEVEN_BIT
    if not version.startswith(b"1.0"):
        return BodyType.UNKNOWN
    if cte.startswith((b"8bit", b"quoted-printable")):
        return BodyType.EIGHT_BIT
    if ctype.startswith((b"multipart/", b"message/")) and b"boundary" in ctype:
        return BodyType.EIGHT_BIT
    return BodyType.UNKNOWN


# ---------------------------------------------------------------------------
# Trace header


def format_date(when: datetime) -> str:
    """RFC 5322 date with zone comment, C locale: ``Sat, 21 Nov 2026 07:33:27 +0000 (UTC)``.

    *when* must be timezone-aware; the zone abbreviation comes from its tzinfo.
    """
    offset = when.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    zone = when.tzname() or "UTC"
    return (
        f"{_DAYS[when.weekday()]}, {when.day:02d} {_MONTHS[when.month - 1]} {when.year:04d} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} "
        f"{sign}{minutes // 60:02d}{minutes % 60:02d} ({zone})"
    )


def received_header(
    info: TraceInfo,
    recipients: Sequence[str],
    mode: ReceivedMode,
    tracepolls: bool,
    *,
    product: str = PRODUCT,
) -> bytes:
    """Build our ``Received:`` header, CRLF-terminated with TAB continuations.

    *recipients* are the qualified addresses the message goes to: exactly
    one gives a ``for <addr> (single-drop|multi-drop|by default)`` clause,
    more than one gives no ``for`` clause (fetchmail's layout).  *info.date*
    must be set (timezone-aware); :func:`prepare_message` fills it in.
    """
    if info.date is None:
        raise ValueError("TraceInfo.date must be set to build a Received header")
    line1 = f"Received: from {info.server_truename}"
    if info.server_address:
        line1 += f" [{info.server_address}]"
    comment = product
    if tracepolls:
        comment += f" polling {info.pollname} account {info.remote}"
        if info.folder and info.folder_explicit:
            comment += f" folder {info.folder}"
    line2 = f"\tby {info.fetchmailhost} with {info.protocol_name} ({comment})"
    if len(recipients) == 1:
        line3 = f"\tfor <{recipients[0]}> ({mode.value}); {format_date(info.date)}"
    else:
        line3 = f"\t{format_date(info.date)}"
    return f"{line1}\r\n{line2}\r\n{line3}\r\n".encode("latin-1", "replace")


def rcpt_address(name: str, smtpname: str | None, domain: str) -> str:
    """RCPT address for a local recipient (fetchmail(1), ``--smtpaddress``)."""
    if "@" in name:
        return name
    if smtpname:
        return smtpname
    return f"{name}@{domain}"
