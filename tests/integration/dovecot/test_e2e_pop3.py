"""End to end over POP3: the installed ``pyfetchmail`` against the private Dovecot.

Every test runs the console script in a subprocess with a private HOME, an rc
file of mode 0600, its own ``--idfile``/``--pidfile``, and STLS verified
against the test CA (STARTTLS is mandatory by default, spec §5.6). Delivery
goes to the aiosmtpd sink. What is checked is what a user sees: exit status
(spec §3), the bytes that arrived, what is left on the server (spec §6.8),
and the ``.fetchids`` file (spec §4.3).
"""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.fakes.fake_pop3 import FakePop3Server
from tests.integration.e2e_helpers import (
    E2E,
    crlf,
    pop3_rc,
    received_top,
    sample,
    server_uids,
    strip_received,
    without_return_path,
)

pytestmark = [pytest.mark.dovecot, pytest.mark.timeout(90)]

_RECEIVED = re.compile(
    rb"Received: from 127\.0\.0\.1( \[127\.0\.0\.1\])?\r\n"
    rb"\tby \S+ with POP3 \(pyfetchmail-[0-9][^)]*\)\r\n"
    rb"\tfor <joe@127\.0\.0\.1> \(single-drop\); "
    rb"[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(\S+\)\r\n\Z"
)


@pytest.fixture
def e2e(tmp_path: Path) -> E2E:
    return E2E(tmp_path / "home")


def _fill(user: Any, *sizes: int) -> list[bytes]:
    raws = [sample(n, size=size) for n, size in enumerate(sizes, 1)]
    for raw in raws:
        user.deliver(raw)
    return raws


def test_stls_to_smtp_exact_bytes_then_nomail(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raws = _fill(mailuser, 0, 0, 3000)
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port))

    first = e2e.pyfetchmail()
    assert first.returncode == 0, first
    got = smtp_sink.received
    assert len(got) == 3
    for raw, msg in zip(raws, got, strict=True):
        top, rest = received_top(msg.data)
        assert _RECEIVED.match(top), top
        # Exact bytes: the stored message served as CRLF, minus Return-Path
        # (spec §6.6 step 11: removed for SMTP delivery), plus our header.
        assert rest == crlf(without_return_path(raw))
        assert b"Return-Path" not in msg.data
        n = raws.index(raw) + 1
        assert msg.mail_from == f"sender{n}@remote.example"
        assert msg.rcpt_tos == ["joe@127.0.0.1"]
    assert mailuser.messages() == []
    assert f"3 messages for {mailuser.name} at 127.0.0.1" in first.output
    assert first.output.count(" flushed") == 3

    second = e2e.pyfetchmail()
    assert second.returncode == 1, second
    assert f"No mail for {mailuser.name} at 127.0.0.1" in second.output
    assert len(smtp_sink.received) == 3


def test_received_header_omits_address_with_no_dns(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    # spec §6.6: "[<IP>] omitted when the address is unknown (e.g. no dns)",
    # verified with fetchmail 6.4.37: "Received: from 127.0.0.1\r\n\tby ...".
    _fill(mailuser, 0)
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port))
    assert e2e.pyfetchmail().returncode == 0
    assert smtp_sink.received[0].data.startswith(b"Received: from 127.0.0.1\r\n\tby ")


def test_keep_records_uids_and_fetchall_refetches(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raws = _fill(mailuser, 0, 0)
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="keep"))
    uids = server_uids(dovecot, mailuser)

    first = e2e.pyfetchmail()
    assert first.returncode == 0, first
    assert len(smtp_sink.received) == 2
    assert len(mailuser.messages()) == 2
    assert first.output.count(" not flushed") == 2
    # fetchmail's .fetchids format: "<remote>@<queryname> <UID>" (spec §4.3).
    lines = e2e.idfile_lines()
    assert sorted(lines) == sorted(f"{mailuser.name}@127.0.0.1 {uid}" for uid in uids)
    assert e2e.idfile.stat().st_mode & 0o077 == 0

    second = e2e.pyfetchmail()
    assert second.returncode == 1, second
    assert len(smtp_sink.received) == 2
    assert sorted(e2e.idfile_lines()) == sorted(lines)

    # A new message is fetched, the old ones are not.
    new = sample(9)
    mailuser.deliver(new)
    third = e2e.pyfetchmail()
    assert third.returncode == 0, third
    assert len(smtp_sink.received) == 3
    assert strip_received(smtp_sink.received[2].data) == crlf(without_return_path(new))
    assert len(e2e.idfile_lines()) == 3

    # fetchall (rc keyword) fetches all three again, still keeping them.
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="keep fetchall"))
    fourth = e2e.pyfetchmail()
    assert fourth.returncode == 0, fourth
    assert len(smtp_sink.received) == 6
    assert len(mailuser.messages()) == 3
    assert [strip_received(m.data) for m in smtp_sink.received[3:5]] == [
        crlf(without_return_path(raw)) for raw in raws
    ]


def test_check_mode_fetches_nothing_and_writes_no_state(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="keep"))
    empty = e2e.pyfetchmail("-c")
    assert empty.returncode == 1, empty

    _fill(mailuser, 0, 0)
    waiting = e2e.pyfetchmail("-c")
    assert waiting.returncode == 0, waiting
    assert smtp_sink.received == []
    assert smtp_sink.transactions == []
    assert len(mailuser.messages()) == 2
    assert not e2e.idfile.exists()
    assert not e2e.pidfile.exists()
    # Dovecot marks a message seen on RETR; -c must not have read any.
    assert all("S" not in flags for flags in mailuser.flags())

    # After a keep run has recorded both UIDs, -c sees no new mail.
    assert e2e.pyfetchmail().returncode == 0
    before = e2e.idfile.read_bytes()
    again = e2e.pyfetchmail("-c")
    assert again.returncode == 1, again
    assert e2e.idfile.read_bytes() == before


def test_limit_skips_big_messages_and_limitflush_deletes_them(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raws = _fill(mailuser, 0, 5000, 0)
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="limit 2000"))
    first = e2e.pyfetchmail()
    assert first.returncode == 0, first
    assert [strip_received(m.data) for m in smtp_sink.received] == [
        crlf(without_return_path(raws[0])),
        crlf(without_return_path(raws[2])),
    ]
    assert mailuser.messages() == [raws[1]]
    assert "oversized" in first.output

    again = e2e.pyfetchmail()
    assert again.returncode == 1, again
    assert mailuser.messages() == [raws[1]]

    e2e.write_rc(
        pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="limit 2000 limitflush")
    )
    flushed = e2e.pyfetchmail()
    assert flushed.returncode in (0, 1), flushed
    assert mailuser.messages() == []
    assert len(smtp_sink.received) == 2


def test_fetchlimit_stops_with_maxfetch(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raws = _fill(mailuser, 0, 0, 0, 0)
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="fetchlimit 2"))
    first = e2e.pyfetchmail()
    assert first.returncode == 13, first
    assert len(smtp_sink.received) == 2
    assert mailuser.messages() == raws[2:]
    assert "fetchlimit 2 reached; 2 message" in first.output
    assert "Query status=13 (MAXFETCH)" in first.output

    # Exactly fetchlimit messages and none left is a plain success
    # (verified with fetchmail 6.4.37: exit 0, no "reached" line).
    second = e2e.pyfetchmail()
    assert second.returncode == 0, second
    assert "reached" not in second.output
    assert mailuser.messages() == []
    assert len(smtp_sink.received) == 4


def test_fetchlimit_line_matches_fetchmail_wording(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    # fetchmail 6.4.37 (verified, ngettext): "fetchlimit 2 reached; 2 messages
    # left on server 127.0.0.1 account NAME"; "1 message left" in the singular.
    _fill(mailuser, 0, 0, 0, 0)
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="fetchlimit 2"))
    done = e2e.pyfetchmail()
    assert (
        f"fetchlimit 2 reached; 2 messages left on server 127.0.0.1 account {mailuser.name}\n"
        in done.output
    )


# --- command-line flags equal their rc keywords ------------------------------

Outcome = tuple[int, int, int]
"""(exit status, messages delivered in the last run, messages left on the server)."""


def _scenario(
    root: Path, dovecot: Any, sink: Any, tag: str, rc_opts: str, flags: list[str], setup: str
) -> tuple[Outcome, str]:
    """Run one flag scenario on a fresh box; *setup* says how to prepare it."""
    user = dovecot.add_user(f"f{tag}{secrets.token_hex(4)}", "pw-Flag-4711")
    env = E2E(root / tag)
    before = len(sink.received)
    if setup == "old":
        # Two messages already seen (recorded by a keep run), one new one.
        _fill(user, 0, 0)
        env.write_rc(pop3_rc(dovecot, user, smtp_port=sink.port, user_opts="keep"))
        assert env.pyfetchmail().returncode == 0
        user.deliver(sample(7))
        before = len(sink.received)
    else:
        _fill(user, 0, 5000, 0, 0)
    env.write_rc(pop3_rc(dovecot, user, smtp_port=sink.port, user_opts=rc_opts))
    done = env.pyfetchmail(*flags)
    return (done.returncode, len(sink.received) - before, len(user.messages())), str(done)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("rc_opts", "flags", "setup", "expected"),
    [
        pytest.param("keep", ["-k"], "new", (0, 4, 4), id="-k=keep"),
        pytest.param("keep fetchall", ["-k", "-a"], "old", (0, 3, 3), id="-a=fetchall"),
        pytest.param("keep flush", ["-k", "-F"], "old", (0, 1, 1), id="-F=flush"),
        pytest.param("limit 2000", ["-l", "2000"], "new", (0, 3, 1), id="-l=limit"),
        pytest.param("fetchlimit 3", ["-B", "3"], "new", (13, 3, 1), id="-B=fetchlimit"),
    ],
)
def test_flag_equals_rc_keyword(
    tmp_path: Path,
    dovecot: Any,
    smtp_sink: Any,
    rc_opts: str,
    flags: list[str],
    setup: str,
    expected: Outcome,
) -> None:
    by_rc, rc_run = _scenario(tmp_path, dovecot, smtp_sink, "rc", rc_opts, [], setup)
    by_flag, flag_run = _scenario(tmp_path, dovecot, smtp_sink, "cli", "", flags, setup)
    assert by_rc == expected, rc_run
    assert by_flag == by_rc, flag_run


# --- safety: credentials and TLS ------------------------------------------------


def _secret_forms(user: str, password: str) -> list[str]:
    """The password and the encodings a SASL exchange would carry it in."""
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return [password, plain, base64.b64encode(password.encode()).decode()]


@pytest.mark.parametrize("auth", ["", "auth password", "auth cram-md5"])
def test_wrong_password_exit_3_and_never_echoed(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any, auth: str
) -> None:
    mailuser.deliver(sample(1))
    wrong = SimpleNamespace(name=mailuser.name, password="Wr0ng-Pass-" + secrets.token_hex(6))
    e2e.write_rc(pop3_rc(dovecot, wrong, smtp_port=smtp_sink.port, server_opts=auth))
    done = e2e.pyfetchmail("-vv")
    assert done.returncode == 3, done
    assert f"Authorization failure on {mailuser.name}@127.0.0.1" in done.output
    assert "Query status=3 (AUTHFAIL)" in done.output
    for secret in _secret_forms(wrong.name, wrong.password):
        assert secret not in done.output
    assert len(mailuser.messages()) == 1
    assert smtp_sink.transactions == []


def test_right_password_never_echoed_at_vv(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    mailuser.deliver(sample(1))
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port))
    done = e2e.pyfetchmail("-vv")
    assert done.returncode == 0, done
    assert "POP3>" in done.output  # the transcript really is on
    for secret in _secret_forms(mailuser.name, mailuser.password):
        assert secret not in done.output


def test_no_password_and_no_tty_exit_3(e2e: E2E, dovecot: Any, mailuser: Any) -> None:
    e2e.write_rc(
        f"poll 127.0.0.1 proto pop3 port {dovecot.pop3_port} no dns\n"
        f'  user "{mailuser.name}" is joe here\n'
        f'  sslcertfile "{dovecot.ca_file}" sslcommonname localhost smtphost 127.0.0.1/9\n'
    )
    done = e2e.pyfetchmail()
    assert done.returncode == 3, done
    assert f"can't find a password for {mailuser.name}@127.0.0.1." in done.stderr


@pytest.mark.parametrize(
    ("capabilities", "stls_reply"),
    [
        pytest.param(["USER", "UIDL", "TOP"], "-ERR no TLS here", id="not-offered"),
        pytest.param(None, "-ERR unknown command", id="no-capa"),
        pytest.param(["USER", "UIDL", "STLS"], "-ERR TLS broken", id="offered-then-refused"),
    ],
)
def test_stls_required_but_unavailable_exit_2_no_plaintext_login(
    e2e: E2E, dovecot: Any, capabilities: list[str] | None, stls_reply: str
) -> None:
    server = FakePop3Server(
        mailbox=[crlf(sample(1))],
        users={"joe": "S3cret-Never-Sent"},
        capabilities=capabilities,
        stls_reply=stls_reply,
    )
    with server:
        e2e.write_rc(
            f"poll 127.0.0.1 proto pop3 port {server.port} no dns\n"
            '  user joe password "S3cret-Never-Sent" is joe here\n'
            f'  sslcertfile "{dovecot.ca_file}" sslcommonname localhost smtphost 127.0.0.1/9\n'
        )
        done = e2e.pyfetchmail("-v")
        commands = list(server.commands)
    assert done.returncode == 2, done
    assert "upgrade to TLS failed" in done.output
    assert "STLS" in commands
    verbs = {c.split(" ", 1)[0].upper() for c in commands}
    assert not verbs & {"USER", "PASS", "APOP", "AUTH", "RETR", "DELE"}, commands
    assert not any("S3cret-Never-Sent" in c for c in commands)
    assert "S3cret-Never-Sent" not in done.output


# --- more of what users do ------------------------------------------------------


def test_implicit_tls_pop3s(e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any) -> None:
    raw = sample(1)
    mailuser.deliver(raw)
    e2e.write_rc(
        f"poll 127.0.0.1 proto pop3 service {dovecot.pop3s_port} no dns\n"
        f'  user "{mailuser.name}" password "{mailuser.password}" is joe here\n'
        f'  ssl sslcertfile "{dovecot.ca_file}" sslcommonname localhost\n'
        f"  smtphost 127.0.0.1/{smtp_sink.port}\n"
    )
    done = e2e.pyfetchmail()
    assert done.returncode == 0, done
    assert [strip_received(m.data) for m in smtp_sink.received] == [crlf(without_return_path(raw))]
    assert mailuser.messages() == []


def test_wrong_commonname_fails_verification_exit_2(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    mailuser.deliver(sample(1))
    e2e.write_rc(
        pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port).replace(
            "sslcommonname localhost", "sslcommonname not-the-server.example"
        )
    )
    done = e2e.pyfetchmail()
    assert done.returncode == 2, done
    assert len(mailuser.messages()) == 1
    assert smtp_sink.transactions == []


def test_two_queries_exit_0_if_any_succeeded(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    # spec §3: 0 if any query succeeded, although the last one failed.
    mailuser.deliver(sample(1))
    good = pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port)
    bad = SimpleNamespace(name=mailuser.name, password="not-the-password")
    bad_rc = pop3_rc(dovecot, bad, smtp_port=smtp_sink.port).replace(
        "poll 127.0.0.1", "poll second via 127.0.0.1"
    )
    e2e.write_rc(good + bad_rc)
    done = e2e.pyfetchmail()
    assert done.returncode == 0, done
    assert len(smtp_sink.received) == 1
    assert "Query status=3 (AUTHFAIL)" in done.output
    # Only the failing one, named on the command line: its own status.
    only_bad = e2e.pyfetchmail("second")
    assert only_bad.returncode == 3, only_bad


def test_group_readable_rc_refused_exit_6(e2e: E2E, dovecot: Any, mailuser: Any) -> None:
    mailuser.deliver(sample(1))
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=9))
    e2e.rc.chmod(0o644)
    done = e2e.pyfetchmail()
    assert done.returncode == 6, done
    assert len(mailuser.messages()) == 1


def test_uids_of_messages_gone_from_server_are_dropped(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    _fill(mailuser, 0, 0)
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="keep"))
    assert e2e.pyfetchmail().returncode == 0
    assert len(e2e.idfile_lines()) == 2
    # Another client deletes the first message; the next poll forgets its UID.
    first_file = mailuser.maildir / "cur"
    victim = sorted(p for p in first_file.iterdir())[0]
    victim.unlink()
    assert e2e.pyfetchmail().returncode == 1
    assert e2e.idfile_lines() == [f"{mailuser.name}@127.0.0.1 {server_uids(dovecot, mailuser)[0]}"]


def test_expunge_splits_sessions_and_delivers_all(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raws = _fill(mailuser, 0, 0, 0, 0, 0)
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="expunge 2"))
    done = e2e.pyfetchmail()
    assert done.returncode == 0, done
    assert [strip_received(m.data) for m in smtp_sink.received] == [
        crlf(without_return_path(raw)) for raw in raws
    ]
    assert mailuser.messages() == []


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\nbody only, the header is empty\n", id="headerless"),
        pytest.param(
            b"From: a@remote.example\nSubject: caf\xc3\xa9 8bit\nMIME-Version: 1.0\n"
            b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            b"\xc3\xa9t\xc3\xa9\n\xff\xfe raw bytes\n",
            id="8bit",
        ),
        pytest.param(
            b"From: a@remote.example\nSubject: big\n\n"
            + b"y" * 998
            + b"\n" * 3
            + b"." * 80
            + b"\n",
            id="long-lines",
        ),
        pytest.param(b"From: a@remote.example\nSubject: no final newline\n\nlast", id="no-eol"),
    ],
)
def test_unusual_messages_arrive_intact(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any, raw: bytes
) -> None:
    mailuser.deliver(raw)
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port))
    done = e2e.pyfetchmail()
    assert done.returncode == 0, done
    assert mailuser.messages() == []
    (got,) = smtp_sink.received
    assert "Traceback" not in done.output
    if raw.startswith(b"\n"):
        # spec §6.6: a synthesised header, then the text.
        _, rest = received_top(got.data)
        assert rest.startswith(b"From: FETCHMAIL-DAEMON\r\nTo: ")
        assert (
            f"Subject: Headerless mail from {mailuser.name}'s mailbox on 127.0.0.1".encode() in rest
        )
        assert rest.endswith(b"\r\n\r\nbody only, the header is empty\r\n")
    elif raw.endswith(b"last"):
        assert strip_received(got.data) in (crlf(raw), crlf(raw) + b"\r\n")
    else:
        assert strip_received(got.data) == crlf(raw)


@pytest.mark.slow
def test_large_message_exact_bytes(e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any) -> None:
    raw = sample(1, size=3 * 1024 * 1024)
    mailuser.deliver(raw)
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port))
    done = e2e.pyfetchmail()
    assert done.returncode == 0, done
    assert strip_received(smtp_sink.received[0].data) == crlf(without_return_path(raw))
    assert mailuser.messages() == []


def test_bad_header_line_refused_and_kept(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    # spec §6.6 step 4: a header line without a colon refuses the message;
    # with the default softbounce it stays on the server (verified: fetchmail
    # 6.4.37 says "incorrect header line found", exit 0, "not flushed").
    raw = b"no header at all, just text\n"
    mailuser.deliver(raw)
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port))
    done = e2e.pyfetchmail()
    assert done.returncode == 0, done
    assert "incorrect header line found - see manpage for bad-header option" in done.output
    assert smtp_sink.transactions == []
    assert mailuser.messages() == [raw]

    e2e.write_rc(
        pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, server_opts="bad-header accept")
    )
    accepted = e2e.pyfetchmail()
    assert accepted.returncode == 0, accepted
    assert len(smtp_sink.received) == 1
    assert mailuser.messages() == []


def test_password_not_in_version_report_or_logfile(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    mailuser.deliver(sample(1))
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="keep"))
    report = e2e.pyfetchmail("-V", "-v")
    assert report.returncode == 0, report
    assert mailuser.name in report.output
    assert mailuser.password not in report.output

    logfile = e2e.home / "fetchmail.log"
    logfile.write_text("")
    done = e2e.pyfetchmail("-vv", "--logfile", str(logfile))
    assert done.returncode == 0, done
    logged = logfile.read_text()
    assert "POP3>" in logged + done.output
    for secret in _secret_forms(mailuser.name, mailuser.password):
        assert secret not in logged
        assert secret not in done.output
