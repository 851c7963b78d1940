"""Header processing compared with the real fetchmail 6.4.37 (the oracle).

``no dns`` is used, so neither side knows the server address (no ``[IP]``).

fetchmail fetches test messages from the private Dovecot over POP3 and hands
them to an MDA that records them; we run :func:`prepare_message` on the same
bytes with the same settings.  Only the Received header may differ, and only
in its product token and date.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pyfetchmail.config.model import NameMapping, Query, RunControl, Server, User
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.mail.prepare import TraceInfo, prepare_message
from testbed.dovecot import Dovecot, MailUser

pytestmark = [pytest.mark.oracle, pytest.mark.dovecot, pytest.mark.timeout(90)]

SEP = b"=====PFM-ORACLE-SEPARATOR=====\n"
MESSAGES = [
    # samples/pop3-server-view.txt message 1
    b"Return-Path: <sender@remote.example>\r\n"
    b"Received: from mx by pop.test for <joe@pop.test>; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"From: Sender <sender@remote.example>\r\nTo: joe\r\nSubject: first\r\n"
    b"Message-ID: <m1@remote.example>\r\nStatus: RO\r\nX-Mozilla-Status: 0001\r\n"
    b"Delivered-To: joe@pop.test\r\n\r\nHello one\r\n.dot line\r\n",
    # address syntax: comments, quoted names, groups, folding, UUCP, <>
    b"From: Joe (the boss) <joe>\r\n"
    b'To: "Doe, Jane" <jd>, bare, host!uucp, (just comment) x@y\r\n'
    b"Cc: team: ann, bob@z;, undisclosed-recipients:;\r\n"
    b"Reply-To: <>\r\nSender: s\r\n"
    b"Bcc: folded,\r\n\tsecond\r\nSubject: addresses\r\n\r\nbody\r\n",
    # no Received header: ours goes on top; encoded words stay without mimedecode
    b"Subject: =?ISO-8859-1?Q?caf=E9?=\r\nFrom: a@b\r\nStatus: \r\n\r\nx\r\n",
    # MIME quoted-printable body (decoded with mimedecode)
    b"MIME-Version: 1.0\r\nSubject: =?utf-8?B?w6k=?= x\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 soft=\r\nbreak a=3Db\r\n",
]


def _fetchmail_output(dovecot: Dovecot, user: MailUser, tmp: Path, rc_extra: str) -> list[bytes]:
    out = tmp / "mda.out"
    rc = tmp / "fetchmailrc"
    rc.write_text(
        f"poll 127.0.0.1 protocol pop3 port {dovecot.pop3_port} no dns\n"
        f"  user {user.name} password {user.password} is alice here\n"
        f"  sslproto '' keep fetchall {rc_extra}\n"
        f"  mda \"(cat; printf '{SEP.decode().strip()}\\n') >> {out}\"\n"
    )
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp), LC_ALL="C")
    subprocess.run(
        ["fetchmail", "-N", "-f", str(rc), "--idfile", str(tmp / "ids"),
         "--pidfile", str(tmp / "pid")],
        env=env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    data = out.read_bytes() if out.exists() else b""
    return [part for part in data.split(SEP) if part]


def _ours(raw: bytes, query: Query, fetchmailhost: str) -> bytes:
    info = TraceInfo(
        "127.0.0.1", None, "POP3", fetchmailhost, "127.0.0.1", "u", None, False,
        datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    run = RunControl(postmaster="alice")
    prepared = prepare_message(SpooledMessage.from_bytes(raw), query, run, info)
    return prepared.message.read_all().replace(b"\r\n", b"\n")


_RECEIVED = re.compile(
    rb"(Received: from [^\n]+\n\tby (\S+) with POP3 )\(\S+\)(\n\t(?:for <[^>]+> \([a-z -]+\); )?)"
    rb"(\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(\w+\))\n"
)


def _normalise(message: bytes) -> tuple[bytes, bytes]:
    """(fetchmailhost, message with product and date of the Received header masked)."""
    match = _RECEIVED.search(message)
    assert match is not None, message
    masked = match.group(1) + b"(PRODUCT)" + match.group(3) + b"DATE\n"
    message = message[: match.start()] + masked + message[match.end() :]
    # fetchmail overwrites "quoted-printable" in place and pads "8bit" with
    # spaces; we write a clean "8bit" (a deliberate, harmless difference).
    return match.group(2), re.sub(rb"(Content-Transfer-Encoding: 8bit) +\n", rb"\1\n", message)


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed")
@pytest.mark.parametrize("flags", ["", "dropstatus dropdelivered", "no rewrite", "mimedecode"])
def test_same_bytes_as_fetchmail(
    dovecot: Dovecot, mailuser: MailUser, tmp_path: Path, flags: str
) -> None:
    for raw in MESSAGES:
        mailuser.deliver(raw)
    served = [m.replace(b"\n", b"\r\n") for m in mailuser.messages()]
    theirs = _fetchmail_output(dovecot, mailuser, tmp_path, flags)
    assert len(theirs) == len(MESSAGES)
    user = User(
        mailuser.name, localnames=(NameMapping("alice", "alice"),), mda="cat",
        dropstatus="dropstatus" in flags, dropdelivered="dropdelivered" in flags,
        rewrite="no rewrite" not in flags, mimedecode="mimedecode" in flags,
    )  # fmt: skip
    query = Query(Server("127.0.0.1", dns=False), user)
    for raw, their in zip(served, theirs, strict=True):
        host, their_norm = _normalise(their)
        _, our_norm = _normalise(_ours(raw, query, host.decode()))
        assert our_norm == their_norm
    if not flags:
        # the comparison is not vacuous: rewriting really happened on both sides
        assert b'To: "Doe, Jane" <jd@127.0.0.1>, bare@127.0.0.1, host!uucp' in theirs[1]


JOE_BOB = (NameMapping("joe", "joe"), NameMapping("bob", "robert", mapped=True))
MULTIDROP_CASES = {
    "delivered-to": (
        'envelope "Delivered-To"',
        "to joe bob=robert here",
        {"envelope": "Delivered-To"},
        {"localnames": JOE_BOB},
        [
            b"Delivered-To: joe@pop.test\r\nTo: joe@pop.test, bob@pop.test\r\n"
            b"Subject: 1\r\n\r\nb\r\n",
            b"To: joe@pop.test, bob@pop.test\r\nSubject: 2\r\n\r\nb\r\n",
            b"To: stranger@pop.test\r\nSubject: 3\r\n\r\nb\r\n",
            b"To: a@else.example\r\nCc: x@else.example\r\nSubject: 4\r\n\r\nb\r\n",
            b"Resent-To: bob@pop.test\r\nTo: joe@pop.test\r\nSubject: 5\r\n\r\nb\r\n",
        ],
    ),
    "received-wildcard": (
        'qvirtual "pfx-" localdomains example.org',
        "to joe * here",
        {"qvirtual": "pfx-", "localdomains": ("example.org",)},
        {"localnames": (NameMapping("joe", "joe"),), "wildcard": True},
        [
            b"Received: from mx by pop.test for <bob@pop.test>; Mon, 1 Jan 2024\r\n"
            b"To: joe@pop.test\r\nSubject: 1\r\n\r\nb\r\n",
            b"Received: from mx by other.host for <bob@pop.test>; x\r\n"
            b"To: joe@pop.test\r\nSubject: 2\r\n\r\nb\r\n",
            b"To: pfx-joe@pop.test, zed@example.org\r\nSubject: 3\r\n\r\nb\r\n",
            b"Received: from a by pop.test with SMTP id 1\r\n\tfor <ann@pop.test>; x\r\n"
            b"Subject: 4\r\n\r\nb\r\n",
            b'To: Ann <ann>, "B" <bob@pop.test>\r\nSubject: 5\r\n\r\nb\r\n',
        ],
    ),
}


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed")
@pytest.mark.parametrize("case", sorted(MULTIDROP_CASES))
def test_multidrop_same_recipients_and_bytes_as_fetchmail(
    dovecot: Dovecot, mailuser: MailUser, tmp_path: Path, case: str
) -> None:
    server_rc, names_rc, server_kw, user_kw, messages = MULTIDROP_CASES[case]
    for raw in messages:
        mailuser.deliver(raw)
    served = [m.replace(b"\n", b"\r\n") for m in mailuser.messages()]
    out = tmp_path / "mda.out"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        'set postmaster "pm"\n'
        f"poll 127.0.0.1 protocol pop3 port {dovecot.pop3_port} no dns aka pop.test\n"
        f"  {server_rc}\n"
        f"  user {mailuser.name} password {mailuser.password} {names_rc}\n"
        "  sslproto '' keep fetchall\n"
        f"  mda \"(echo %T; cat; printf '{SEP.decode().strip()}\\n') >> {out}\"\n"
    )
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), LC_ALL="C")
    subprocess.run(
        ["fetchmail", "-N", "-f", str(rc), "--idfile", str(tmp_path / "ids"),
         "--pidfile", str(tmp_path / "pid")],
        env=env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    theirs = [p for p in out.read_bytes().split(SEP) if p]
    assert len(theirs) == len(messages)
    user = User(mailuser.name, mda="cat", **user_kw)  # type: ignore[arg-type]
    server = Server("127.0.0.1", dns=False, aka=("pop.test",), **server_kw)  # type: ignore[arg-type]
    query = Query(server, user)
    run = RunControl(postmaster="pm")
    for raw, their in zip(served, theirs, strict=True):
        their_rcpts, _, their_msg = their.partition(b"\n")
        host, their_norm = _normalise(their_msg)
        info = TraceInfo(
            "127.0.0.1", None, "POP3", host.decode(), "127.0.0.1", "u", None, False,
            datetime(2026, 1, 1, tzinfo=UTC),
        )  # fmt: skip
        prepared = prepare_message(SpooledMessage.from_bytes(raw), query, run, info)
        assert " ".join(prepared.envelope.recipients).encode() == their_rcpts, raw
        ours = prepared.message.read_all().replace(b"\r\n", b"\n")
        assert _normalise(ours)[1] == their_norm
