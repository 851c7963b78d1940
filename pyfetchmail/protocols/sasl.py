"""Pure SASL mechanism encoders and challenge decoders (no I/O).

Mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), CRAM-MD5
(RFC 2195), EXTERNAL (RFC 4422 appendix A), XOAUTH2 (Google's format) and
OAUTHBEARER (RFC 7628).  Each encoder returns the *raw* client response;
:func:`b64` turns it into what goes on the wire, and :func:`decode_challenge`
validates what the server sent (RFC 4422 §5: a malformed challenge is a
protocol error, never something to compute on; cf. CVE-2012-3482).

Invariant: nothing here logs or raises with a secret in the text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from pyfetchmail.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "CANCEL",
    "b64",
    "cram_md5",
    "decode_challenge",
    "external",
    "login_step",
    "oauthbearer",
    "plain",
    "xoauth2",
]

#: The client's way to abort an exchange (RFC 4422 §3.5; RFC 5034 §4).
CANCEL = "*"


def b64(raw: bytes) -> str:
    """Base64-encode a client response for the wire (``"="`` for empty, RFC 5034)."""
    if not raw:
        return "="
    return base64.b64encode(raw).decode("ascii")


def decode_challenge(text: str) -> bytes:
    """Decode a server challenge; a non-base64 challenge is a RemoteProtocolError."""
    text = text.strip()
    if text in ("", "="):
        return b""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise RemoteProtocolError("server sent a malformed (non-base64) SASL challenge") from None


def _utf8(value: str, what: str) -> bytes:
    if "\0" in value:
        raise LocalProtocolError(f"{what} must not contain NUL")
    return value.encode("utf-8")


def plain(authcid: str, password: str, authzid: str = "") -> bytes:
    """RFC 4616 PLAIN: ``authzid NUL authcid NUL passwd``."""
    return b"\0".join(
        (_utf8(authzid, "authzid"), _utf8(authcid, "user name"), _utf8(password, "password"))
    )


def login_step(challenge: bytes, user: str, password: str) -> bytes:
    """LOGIN: answer ``Username:`` with *user*, anything else with *password*.

    Servers send ``Username:`` then ``Password:`` (some send empty
    challenges); the first challenge gets the user name.
    """
    if challenge.lower().startswith(b"user"):
        return _utf8(user, "user name")
    return _utf8(password, "password")


def cram_md5(challenge: bytes, user: str, password: str) -> bytes:
    """RFC 2195: ``user SP hex(HMAC-MD5(password, challenge))``."""
    if not challenge:
        raise RemoteProtocolError("server sent an empty CRAM-MD5 challenge")
    digest = hmac.new(_utf8(password, "password"), challenge, hashlib.md5).hexdigest()
    return _utf8(user, "user name") + b" " + digest.encode("ascii")


def external(authzid: str = "") -> bytes:
    """RFC 4422 EXTERNAL: the (usually empty) authorization identity."""
    return _utf8(authzid, "authzid")


def xoauth2(user: str, token: str) -> bytes:
    """Google XOAUTH2: ``user=U ^A auth=Bearer T ^A ^A``."""
    return b"user=%s\x01auth=Bearer %s\x01\x01" % (_utf8(user, "user"), _utf8(token, "token"))


def _gs2_saslname(user: str) -> str:
    # RFC 5801 §4: "=" and "," are escaped in the authzid.
    return user.replace("=", "=3D").replace(",", "=2C")


def oauthbearer(user: str, token: str, host: str | None = None, port: int | None = None) -> bytes:
    """RFC 7628 OAUTHBEARER: GS2 header ``n,a=user,`` then key/value pairs."""
    parts = [b"n,a=" + _utf8(_gs2_saslname(user), "user") + b","]
    if host:
        parts.append(b"host=" + _utf8(host, "host"))
    if port is not None:
        parts.append(b"port=%d" % port)
    parts.append(b"auth=Bearer " + _utf8(token, "token"))
    return b"\x01".join(parts) + b"\x01\x01"
