"""Interoperability with the real fetchmail 6.4.37 (``/usr/bin/fetchmail``).

A user must be able to switch between fetchmail and pyfetchmail on the same
rc file and the same ``.fetchids`` without refetching or losing mail, and a
downstream MTA must see the same bytes from both. ``--configdump`` of the
same rc must match, except the ``feature_options`` line (each program lists
its own features; man/pyfetchmail.1, DIFFERENCES FROM FETCHMAIL).

fetchmail runs as root here; it warns ("Running as root is discouraged")
and works. It always gets ``-N --idfile F --pidfile F`` (see e2e_helpers).
"""

from __future__ import annotations

import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.e2e_helpers import (
    E2E,
    FETCHMAIL,
    crlf,
    pop3_rc,
    pyfetchmail_argv,
    sample,
    without_return_path,
)

pytestmark = [pytest.mark.oracle, pytest.mark.dovecot, pytest.mark.timeout(120)]


@pytest.fixture
def e2e(tmp_path: Path) -> E2E:
    return E2E(tmp_path / "home")


def _uid_lines(env: E2E) -> list[str]:
    """idfile records, every one in fetchmail's ``user@host UID`` shape."""
    lines = env.idfile_lines()
    for line in lines:
        assert re.fullmatch(r"\S+@\S+ \S+", line), line
    return sorted(lines)


def test_shared_idfile_both_directions(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    for n in (1, 2):
        mailuser.deliver(sample(n))
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="keep"))

    first = e2e.fetchmail()
    assert first.returncode == 0, first
    assert len(smtp_sink.received) == 2
    after_fetchmail = _uid_lines(e2e)
    assert len(after_fetchmail) == 2

    # pyfetchmail reads fetchmail's idfile: nothing new.
    py_nothing = e2e.pyfetchmail()
    assert py_nothing.returncode == 1, py_nothing
    assert len(smtp_sink.received) == 2
    assert _uid_lines(e2e) == after_fetchmail

    # A new message: pyfetchmail fetches exactly that one ...
    mailuser.deliver(sample(3))
    py_new = e2e.pyfetchmail()
    assert py_new.returncode == 0, py_new
    assert len(smtp_sink.received) == 3
    assert b"Subject: e2e message 3" in smtp_sink.received[2].data
    after_py = _uid_lines(e2e)
    assert len(after_py) == 3
    assert set(after_fetchmail) < set(after_py)

    # ... and fetchmail reads pyfetchmail's idfile: nothing new either.
    fm_nothing = e2e.fetchmail("-v")
    assert fm_nothing.returncode == 1, fm_nothing
    assert len(smtp_sink.received) == 3
    assert _uid_lines(e2e) == after_py
    assert len(mailuser.messages()) == 3

    # Both agree there is no new mail in check mode too.
    assert e2e.fetchmail("-c").returncode == 1
    assert e2e.pyfetchmail("-c").returncode == 1


def test_idfile_preserves_other_accounts(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    # Lines for accounts not being polled are kept verbatim (spec §4.3), by both.
    foreign = "someone@other.example.org uid-that-is-not-ours"
    e2e.idfile.write_text(foreign + "\n")
    e2e.idfile.chmod(0o600)
    mailuser.deliver(sample(1))
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="keep"))
    assert e2e.pyfetchmail().returncode == 0
    assert foreign in e2e.idfile_lines()
    assert e2e.fetchmail().returncode == 1
    lines = e2e.idfile_lines()
    assert foreign in lines
    assert len(lines) == 2


def _normalise(data: bytes) -> bytes:
    """Replace program name/version and the date in our Received headers."""
    data = re.sub(rb"with POP3 \((?:py)?fetchmail-[^)]*\)", b"with POP3 (PROGRAM)", data)
    # mimedecode: fetchmail overwrites "quoted-printable" in place and pads
    # "8bit" with blanks to the old length; pyfetchmail writes no padding.
    data = re.sub(rb"(?m)^(Content-Transfer-Encoding: 8bit) +(?=\r?$)", rb"\1", data)
    # The date ends the Received header: after "; " or, with two or more
    # recipients (no "for" clause), on its own continuation line.
    return _RECEIVED_DATE.sub(rb"\1DATE", data)


_RECEIVED_DATE = re.compile(
    rb"(; |\r?\n\t)[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(\S+\)"
)


def _fresh_user(dovecot: Any, raws: list[bytes]) -> Any:
    user = dovecot.add_user(f"i{secrets.token_hex(5)}", secrets.token_urlsafe(12))
    for raw in raws:
        user.deliver(raw)
    return user


_TRICKY = [
    sample(1),
    sample(2, size=3000),
    # Bare local part (rewrite appends @server), a Received header already
    # present (ours goes above it), a Status header (kept by default).
    b"Return-Path: <bob@remote.example>\nReceived: from a by b; Sat, 21 Nov 2026 06:00:00 +0000\n"
    b"From: bob\nTo: joe, ann@remote.example\nSubject: tricky\nStatus: RO\n\n.\n..\nend\n",
]


@pytest.mark.parametrize("sink", ["smtp", "bsmtp", "mda"])
def test_delivered_bytes_match_fetchmail(
    tmp_path: Path, dovecot: Any, smtp_sink: Any, sink: str
) -> None:
    outputs: dict[str, list[bytes]] = {}
    for prog in ("fetchmail", "pyfetchmail"):
        env = E2E(tmp_path / prog)
        user = _fresh_user(dovecot, _TRICKY)
        out = env.home / "out"
        if sink == "smtp":
            opts, port = "", smtp_sink.port
        elif sink == "bsmtp":
            opts, port = f'bsmtp "{out}"', None
        else:
            out.mkdir()
            opts, port = f"mda \"/bin/sh -c 'cat > {out}/$$'\"", None
        env.write_rc(pop3_rc(dovecot, user, smtp_port=port, user_opts=opts))
        before = len(smtp_sink.received)
        done = getattr(env, prog)()
        assert done.returncode == 0, done
        assert user.messages() == []
        if sink == "smtp":
            outputs[prog] = [m.data for m in smtp_sink.received[before:]]
        elif sink == "bsmtp":
            outputs[prog] = [out.read_bytes()]
        else:
            files = sorted(out.iterdir(), key=lambda p: p.stat().st_mtime_ns)
            outputs[prog] = sorted(p.read_bytes() for p in files)
    ours = [_normalise(d) for d in outputs["pyfetchmail"]]
    theirs = [_normalise(d) for d in outputs["fetchmail"]]
    assert ours == theirs
    if sink == "smtp":
        # And they are the server's bytes (Return-Path removed) under the header.
        assert ours[0].endswith(crlf(without_return_path(_TRICKY[0])))


# --- --configdump ---------------------------------------------------------------

_USER_VARIANTS = [
    "",
    "keep",
    "keep fetchall",
    "limit 2000 limitflush",
    "fetchlimit 2 batchlimit 5 fetchsizelimit 30",
    "antispam 571,550",
    'mda "/usr/bin/procmail -m /tmp/procmailrc %T"',
    'bsmtp "/tmp/out.bsmtp"',
    "lmtp smtphost 127.0.0.1/24 smtpaddress localhost",
    "expunge 2 flush dropstatus dropdelivered mimedecode no rewrite stripcr",
    'preconnect "true" postconnect "echo done"',
]

_SERVER_VARIANTS = [
    "",
    "auth password uidl",
    "timeout 30 envelope X-Original-To qvirtual pre- aka pop.test localdomains example.org",
    "bad-header accept tracepolls",
]


def _feature_free(dump: str) -> str:
    return re.sub(r"(?m)^feature_options = .*$", "feature_options = ...", dump)


def _assert_same_dump(env: E2E) -> None:
    theirs = env.fetchmail("--configdump")
    ours = env.pyfetchmail("--configdump")
    assert theirs.returncode == 0, theirs
    assert ours.returncode == 0, ours
    assert _feature_free(ours.stdout) == _feature_free(theirs.stdout)


@pytest.mark.parametrize("opts", _USER_VARIANTS)
@pytest.mark.parametrize("globals_", ["", "set no softbounce\nset postmaster pm\n"])
def test_configdump_matches_fetchmail(
    e2e: E2E, dovecot: Any, mailuser: Any, opts: str, globals_: str
) -> None:
    port = None if ("smtphost" in opts or "bsmtp" in opts or "mda" in opts) else 2525
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=port, user_opts=opts, globals_=globals_))
    _assert_same_dump(e2e)


@pytest.mark.parametrize("server_opts", _SERVER_VARIANTS)
def test_configdump_server_options_match_fetchmail(
    e2e: E2E, dovecot: Any, mailuser: Any, server_opts: str
) -> None:
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=2525, server_opts=server_opts))
    _assert_same_dump(e2e)


def test_configdump_pop3s_multiuser_multidrop_matches_fetchmail(
    e2e: E2E, dovecot: Any, mailuser: Any
) -> None:
    e2e.write_rc(
        "defaults proto pop3 no dns\n  keep\n"
        f"poll localhost via 127.0.0.1 service {dovecot.pop3s_port}\n"
        f'  user "{mailuser.name}" password "{mailuser.password}" is joe here\n'
        f'  ssl sslcertfile "{dovecot.ca_file}" sslcommonname localhost sslproto tls1.2+\n'
        "  user other password 'p w' to alice bob=robert * here\n"
        "  smtphost 127.0.0.1/2525 localhost\n"
    )
    _assert_same_dump(e2e)


@pytest.mark.xfail(
    strict=True,
    reason="BUG: headerless mail gets 'To: <localname>@host'; fetchmail uses the invoking user",
)
def test_headerless_synthesised_header_matches_fetchmail(
    tmp_path: Path, dovecot: Any, smtp_sink: Any
) -> None:
    # fetchmail 6.4.37 (verified, run as root, `is joe here`):
    #   "From: FETCHMAIL-DAEMON\r\nTo: root@<host>\r\nSubject: Headerless mail from ..."
    # i.e. the *invoking* user (spec §6.6 "To: <user>@<fetchmailhost>"), not
    # the local recipient name pyfetchmail puts there.
    outputs = {}
    for prog in ("fetchmail", "pyfetchmail"):
        env = E2E(tmp_path / prog)
        user = _fresh_user(dovecot, [b"\nbody only\n"])
        env.write_rc(pop3_rc(dovecot, user, smtp_port=smtp_sink.port))
        before = len(smtp_sink.received)
        done = getattr(env, prog)()
        assert done.returncode == 0, done
        data = smtp_sink.received[before].data
        outputs[prog] = _normalise(data).replace(user.name.encode(), b"USER")
    assert outputs["pyfetchmail"] == outputs["fetchmail"]


# --- exit statuses ----------------------------------------------------------------

_DEAD_PORT = 9  # discard: nothing listens there on the test machine


_REPLY_CASES = {
    # case: (stage, reply, no softbounce)
    "550-rcpt": ("RCPT", "550 5.1.1 unknown", False),
    "550-rcpt-nosoft": ("RCPT", "550 5.1.1 unknown", True),
    "451-rcpt": ("RCPT", "451 4.3.0 later", True),
    "550-mail": ("MAIL", "550 5.7.1 sender refused", False),
    "550-mail-nosoft": ("MAIL", "550 5.7.1 sender refused", True),
    "451-mail": ("MAIL", "451 4.3.0 later", True),
    "552-data-nosoft": ("DATA", "552 5.3.4 too big", True),
    "553-data-nosoft": ("DATA", "553 5.1.8 bad sender", True),
    "530-data-nosoft": ("DATA", "530 5.7.0 must issue STARTTLS", True),
    "554-data": ("DATA", "554 5.7.1 no", False),
}


def _exit_case(case: str, dovecot: Any, user: Any, sink: Any, env: E2E) -> list[str]:
    """Prepare *user*/*sink*/*env* for *case*; return the extra command-line arguments."""
    rc = pop3_rc(dovecot, user, smtp_port=sink.port)
    args: list[str] = []
    if case != "empty":
        user.deliver(sample(1, size=3000))
        user.deliver(sample(2))
    if case == "check":
        args = ["-c"]
    elif case == "wrong-password":
        rc = rc.replace(user.password, "definitely-wrong")
    elif case == "no-password":
        rc = rc.replace(f' password "{user.password}"', "")
    elif case == "dead-listener":
        rc = pop3_rc(dovecot, user, smtp_port=_DEAD_PORT)
    elif case == "fetchlimit":
        rc = pop3_rc(dovecot, user, smtp_port=sink.port, user_opts="fetchlimit 1")
    elif case == "all-oversized":
        rc = pop3_rc(dovecot, user, smtp_port=sink.port, user_opts="limit 100")
    elif case == "some-oversized":
        rc = pop3_rc(dovecot, user, smtp_port=sink.port, user_opts="limit 1000")
    elif case == "451":
        sink.policy = lambda stage, arg: "451 4.3.0 later" if stage == "DATA" else None
    elif case in _REPLY_CASES:
        stage, reply, nosoft = _REPLY_CASES[case]
        sink.policy = lambda st, arg: reply if st == stage else None
        if nosoft:
            rc = "set no softbounce\n" + rc
    elif case == "mda-fails":
        rc = pop3_rc(dovecot, user, user_opts='mda "/bin/false"')
    elif case == "bad-commonname":
        rc = rc.replace("sslcommonname localhost", "sslcommonname wrong.example")
    elif case == "syntax-error":
        rc += "  frobnicate yes\n"
    elif case == "mda-quoted-T":
        rc = pop3_rc(dovecot, user, user_opts="mda \"/bin/cat '%T'\"")
    env.write_rc(rc)
    if case == "rc-mode-0644":
        env.rc.chmod(0o644)
    return args


_EXIT_CASES = [
    "normal",
    "empty",
    "check",
    "wrong-password",
    "no-password",
    "dead-listener",
    "fetchlimit",
    "all-oversized",
    "some-oversized",
    "451",
    *_REPLY_CASES,
    "mda-fails",
    "bad-commonname",
    "syntax-error",
    "rc-mode-0644",
    "mda-quoted-T",
]


@pytest.mark.parametrize("case", _EXIT_CASES)
def test_exit_status_and_server_box_match_fetchmail(
    tmp_path: Path, dovecot: Any, smtp_sink: Any, case: str
) -> None:
    results: dict[str, tuple[int, int, int]] = {}
    runs: dict[str, str] = {}
    for prog in ("fetchmail", "pyfetchmail"):
        env = E2E(tmp_path / prog)
        user = _fresh_user(dovecot, [])
        args = _exit_case(case, dovecot, user, smtp_sink, env)
        before = len(smtp_sink.received)
        done = getattr(env, prog)(*args)
        results[prog] = (done.returncode, len(smtp_sink.received) - before, len(user.messages()))
        runs[prog] = str(done)
    # (exit status, messages delivered, messages left on the server)
    assert results["pyfetchmail"] == results["fetchmail"], (
        f"{runs['fetchmail']}\n\n{runs['pyfetchmail']}"
    )


# --- envelopes and header processing against the oracle ---------------------------

_MIXED = [
    *_TRICKY,
    b"Return-Path: <>\nDelivered-To: joe@pop.test\nDelivered-To: other@elsewhere.example\n"
    b"X-Original-To: bob@pop.test\nFrom: =?ISO-8859-1?Q?caf=E9?= <cafe@remote.example>\n"
    b"To: joe@pop.test, bob@pop.test, stranger@nowhere.example\nCc: ann\n"
    b"Subject: =?ISO-8859-1?Q?caf=E9?=\nStatus: \nX-Mozilla-Status: 0001\n"
    b"MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n"
    b"Content-Transfer-Encoding: quoted-printable\n\ncaf=E9 =3D soft=\nbreak\n",
    b"From: nobody-at-all\nTo: bob@pop.test\nSubject: only bob\n\nhi bob\n",
    b"From: x@remote.example\nTo: a@one.example, b@two.example\nSubject: two strangers\n\n2\n",
    b"From: x@remote.example\nSubject: no recipient headers\n\nnone\n",
]

_ENVELOPE_VARIANTS = {
    "single": ("", ""),
    "no-rewrite-drops": ("", "no rewrite dropstatus dropdelivered"),
    "mimedecode": ("", "mimedecode"),
    "smtpaddress": ("", "smtpaddress mail.example.org"),
    "tracepolls": ("tracepolls", ""),
    "multidrop-guess": ("aka pop.test", "to joe bob=robert here"),
    "multidrop-envelope": ("envelope Delivered-To aka pop.test", "to joe bob=robert here"),
    "multidrop-wildcard": ("envelope X-Original-To aka pop.test", "to joe * here"),
}


@pytest.mark.parametrize("variant", list(_ENVELOPE_VARIANTS))
def test_envelope_and_bytes_match_fetchmail(
    tmp_path: Path, dovecot: Any, smtp_sink: Any, variant: str
) -> None:
    server_opts, user_opts = _ENVELOPE_VARIANTS[variant]
    seen: dict[str, list[tuple[str, list[str], bytes]]] = {}
    runs: dict[str, str] = {}
    for prog in ("fetchmail", "pyfetchmail"):
        env = E2E(tmp_path / prog)
        user = _fresh_user(dovecot, _MIXED)
        rc = pop3_rc(
            dovecot, user, smtp_port=smtp_sink.port, server_opts=server_opts, user_opts=user_opts
        )
        if user_opts.startswith("to "):
            rc = rc.replace(" is joe here", "")
        env.write_rc(rc)
        before = len(smtp_sink.received)
        done = getattr(env, prog)()
        runs[prog] = str(done)
        assert done.returncode == 0, done
        seen[prog] = [
            (
                m.mail_from,
                sorted(m.rcpt_tos),
                # The one-rejected-address warning text is a known bug, pinned by
                # test_multidrop_single_rejected_warning_matches_fetchmail.
                _ONE_REJECTED.sub(
                    b"X-Fetchmail-Warning: no recipient addresses matched declared local names",
                    _normalise(m.data).replace(user.name.encode(), b"USER"),
                ),
            )
            for m in smtp_sink.received[before:]
        ]
    assert seen["pyfetchmail"] == seen["fetchmail"], f"{runs['fetchmail']}\n\n{runs['pyfetchmail']}"


_ONE_REJECTED = re.compile(
    rb"X-Fetchmail-Warning: recipient address \S+ didn't match any local name"
)


def _one_message_both(
    tmp_path: Path, dovecot: Any, sink: Any, raw: bytes, server_opts: str, user_opts: str
) -> dict[str, tuple[str, list[str], bytes]]:
    got = {}
    for prog in ("fetchmail", "pyfetchmail"):
        env = E2E(tmp_path / prog)
        user = _fresh_user(dovecot, [raw])
        rc = pop3_rc(
            dovecot, user, smtp_port=sink.port, server_opts=server_opts, user_opts=user_opts
        )
        if user_opts.startswith("to "):
            rc = rc.replace(" is joe here", "")
        env.write_rc(rc)
        before = len(sink.received)
        done = getattr(env, prog)()
        assert done.returncode == 0, done
        (msg,) = sink.received[before:]
        got[prog] = (msg.mail_from, sorted(msg.rcpt_tos), _normalise(msg.data))
    return got


@pytest.mark.xfail(
    strict=True,
    reason="BUG: multidrop X-Fetchmail-Warning ignores the one-rejected-address wording",
)
def test_multidrop_single_rejected_warning_matches_fetchmail(
    tmp_path: Path, dovecot: Any, smtp_sink: Any
) -> None:
    # spec §6.6 and fetchmail 6.4.37 (verified): exactly one rejected address
    # gives "recipient address X didn't match any local name".
    raw = b"From: x@remote.example\nTo: joe@remote.example\nSubject: one stranger\n\n1\n"
    got = _one_message_both(tmp_path, dovecot, smtp_sink, raw, "aka pop.test", "to joe bob here")
    assert (
        b"X-Fetchmail-Warning: recipient address joe@remote.example didn't match any local name"
        in got["fetchmail"][2]
    )
    assert got["pyfetchmail"] == got["fetchmail"]


@pytest.mark.xfail(
    strict=True, reason="BUG: Received 'for <...>' clause ignores smtpname (fetchmail uses it)"
)
def test_smtpname_in_received_for_clause_matches_fetchmail(
    tmp_path: Path, dovecot: Any, smtp_sink: Any
) -> None:
    got = _one_message_both(
        tmp_path, dovecot, smtp_sink, sample(1), "", "smtpname postbox@example.org"
    )
    assert got["fetchmail"][1] == ["postbox@example.org"]
    assert b"\tfor <postbox@example.org> (single-drop); " in got["fetchmail"][2]
    assert got["pyfetchmail"] == got["fetchmail"]


_LMTP_CASES = {
    "bob-452": {"bob@127.0.0.1": "452 4.2.2 mailbox full"},
    "bob-550": {"bob@127.0.0.1": "550 5.1.1 no such user"},
    "both-452": {"joe@127.0.0.1": "452 4.2.2 full", "bob@127.0.0.1": "452 4.2.2 full"},
    "both-550-nosoft": {"joe@127.0.0.1": "550 5.1.1 gone", "bob@127.0.0.1": "550 5.1.1 gone"},
}


@pytest.mark.parametrize("case", list(_LMTP_CASES))
def test_lmtp_per_recipient_replies_match_fetchmail(
    tmp_path: Path, dovecot: Any, lmtp_sink: Any, case: str
) -> None:
    raw = (
        b"From: x@remote.example\nTo: joe@pop.test, bob@pop.test\nSubject: lmtp split\n"
        b"Message-ID: <lmtp-split@remote.example>\n\nbody\n"
    )
    lmtp_sink.lmtp_replies.update(_LMTP_CASES[case])
    results: dict[str, tuple[int, list[list[str]], int]] = {}
    runs: dict[str, str] = {}
    for prog in ("fetchmail", "pyfetchmail"):
        env = E2E(tmp_path / prog)
        user = _fresh_user(dovecot, [raw])
        env.write_rc(
            pop3_rc(
                dovecot,
                user,
                server_opts="aka pop.test envelope X-No-Such-Header",
                user_opts=f"lmtp smtphost 127.0.0.1/{lmtp_sink.port} to joe bob here",
                globals_="set no softbounce\n" if case.endswith("nosoft") else "",
            ).replace(" is joe here", "")
        )
        before = len(lmtp_sink.received)
        done = getattr(env, prog)()
        runs[prog] = str(done)
        got = [sorted(m.rcpt_tos) for m in lmtp_sink.received[before:]]
        results[prog] = (done.returncode, got, len(user.messages()))
    assert results["pyfetchmail"] == results["fetchmail"], (
        f"{runs['fetchmail']}\n\n{runs['pyfetchmail']}"
    )


def test_lmtp_all_recipients_refused_kept_with_softbounce(
    tmp_path: Path, dovecot: Any, lmtp_sink: Any
) -> None:
    """Deliberate difference: fetchmail 6.4.37 deletes a message whose every LMTP
    recipient got 5xx at end-of-data even with softbounce on (verified: "flushed",
    exit 0); pyfetchmail keeps it, as softbounce promises (spec §6.11)."""
    raw = b"From: x@remote.example\nTo: joe@pop.test, bob@pop.test\nSubject: s\n\nbody\n"
    lmtp_sink.lmtp_replies.update(
        {"joe@127.0.0.1": "550 5.1.1 gone", "bob@127.0.0.1": "550 5.1.1 gone"}
    )
    left = {}
    for prog in ("fetchmail", "pyfetchmail"):
        env = E2E(tmp_path / prog)
        user = _fresh_user(dovecot, [raw])
        env.write_rc(
            pop3_rc(
                dovecot,
                user,
                server_opts="aka pop.test envelope X-No-Such-Header",
                user_opts=f"lmtp smtphost 127.0.0.1/{lmtp_sink.port} to joe bob here",
            ).replace(" is joe here", "")
        )
        done = getattr(env, prog)()
        assert done.returncode == 0, done
        left[prog] = len(user.messages())
    assert left == {"fetchmail": 0, "pyfetchmail": 1}
    assert lmtp_sink.received == []


@pytest.mark.parametrize("fetchmailhome", [False, True], ids=["HOME", "FETCHMAILHOME"])
def test_default_rc_and_idfile_locations_shared_with_fetchmail(
    tmp_path: Path, dovecot: Any, mailuser: Any, smtp_sink: Any, fetchmailhome: bool
) -> None:
    # spec §4.1-4.3: ~/.fetchmailrc and ~/.fetchids, or with FETCHMAILHOME
    # $FETCHMAILHOME/fetchmailrc and $FETCHMAILHOME/.fetchids. Only the pid
    # file is given (root's default is /var/run/fetchmail.pid).
    home = tmp_path / "home"
    env = E2E(home)
    rcname = "fetchmailrc" if fetchmailhome else ".fetchmailrc"
    env.write_rc(
        pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="keep"), name=rcname
    )
    mailuser.deliver(sample(1))
    base = env.env()
    if not fetchmailhome:
        del base["FETCHMAILHOME"]
    pid = ["--pidfile", str(home / "pid")]

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            cwd=home,
            env=base,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=45,
            check=False,
        )

    first = run([FETCHMAIL, "-N", *pid])
    assert first.returncode == 0, first
    assert len(smtp_sink.received) == 1
    ids = home / ".fetchids"
    assert ids.exists()
    before = ids.read_text()
    ours = run([*pyfetchmail_argv(), *pid])
    assert ours.returncode == 1, ours
    assert len(smtp_sink.received) == 1
    mailuser.deliver(sample(2))
    ours = run([*pyfetchmail_argv(), *pid])
    assert ours.returncode == 0, ours
    assert len(smtp_sink.received) == 2
    assert set(before.splitlines()) < set(ids.read_text().splitlines())
    again = run([FETCHMAIL, "-N", *pid])
    assert again.returncode == 1, again
