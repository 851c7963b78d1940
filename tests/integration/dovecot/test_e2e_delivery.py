"""End to end: the delivery variants and the message fate rules, as a user runs them.

The installed ``pyfetchmail`` fetches over POP3 + verified STLS from the
private Dovecot and delivers by LMTP (to Dovecot's own LMTP), by an MDA
(procmail, a shell script), into a BSMTP file, or to an SMTP sink answering
scripted replies. The fate of each message on the server follows spec §6.3,
§6.8 and §6.11 (softbounce on by default); "never lose mail" is checked by
counting what is left on the server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testbed.maildir import sorted_maildir_files
from tests.fakes.fake_pop3 import FakePop3Server
from tests.integration.e2e_helpers import (
    E2E,
    DroppingSmtpServer,
    crlf,
    pop3_rc,
    received_top,
    sample,
    strip_received,
    without_return_path,
)

pytestmark = [pytest.mark.dovecot, pytest.mark.timeout(90)]

PROCMAIL = "/usr/bin/procmail"


@pytest.fixture
def e2e(tmp_path: Path) -> E2E:
    return E2E(tmp_path / "home")


def _need_procmail() -> None:
    if not Path(PROCMAIL).exists():
        pytest.skip(f"{PROCMAIL} is not installed")


# --- sinks ---------------------------------------------------------------------


def test_lmtp_to_dovecot_lands_in_the_other_users_maildir(
    e2e: E2E, dovecot: Any, mailuser: Any
) -> None:
    other = dovecot.add_user(f"{mailuser.name}x", "pw-Other-0815")
    raws = [sample(1), sample(2)]
    for raw in raws:
        mailuser.deliver(raw)
    e2e.write_rc(
        pop3_rc(
            dovecot,
            mailuser,
            local=other.name,
            user_opts=f"lmtp smtphost 127.0.0.1/{dovecot.lmtp_port} smtpaddress localhost",
        )
    )
    done = e2e.pyfetchmail()
    assert done.returncode == 0, done
    assert mailuser.messages() == []
    landed = other.messages()
    assert len(landed) == 2
    for raw, got in zip(raws, landed, strict=True):
        # Dovecot stores LF and adds its own Return-Path/Delivered-To/Received.
        assert got.endswith(without_return_path(raw).split(b"\n\n", 1)[1])
        assert b"with POP3 (pyfetchmail-" in got
        assert f"Subject: {_subject(raw)}".encode() in got


def _subject(raw: bytes) -> str:
    for line in raw.split(b"\n"):
        if line.startswith(b"Subject: "):
            return line[9:].decode()
    raise AssertionError("no subject")


def _procmailrc(path: Path, target: str) -> Path:
    path.write_text(f"SHELL=/bin/sh\nLOGFILE={path.parent}/procmail.log\n:0\n{target}\n")
    return path


def test_procmail_mda_gets_lf_only_messages(e2e: E2E, dovecot: Any, mailuser: Any) -> None:
    _need_procmail()
    box = e2e.home / "Maildir"
    rc = _procmailrc(e2e.home / "procmailrc", f"{box}/")
    raws = [sample(1), sample(2, size=2000)]
    for raw in raws:
        mailuser.deliver(raw)
    e2e.write_rc(pop3_rc(dovecot, mailuser, user_opts=f'mda "{PROCMAIL} -m {rc}"'))
    done = e2e.pyfetchmail()
    assert done.returncode == 0, done
    assert mailuser.messages() == []
    files = sorted_maildir_files(box)
    assert len(files) == 2
    for raw, path in zip(raws, files, strict=True):
        data = path.read_bytes()
        assert b"\r" not in data
        top, rest = received_top(data)
        assert b"with POP3 (pyfetchmail-" in top
        # MDA delivery keeps Return-Path (spec §6.4) and strips CRs.
        assert rest == raw


def test_mda_percent_t_and_f_expansion(e2e: E2E, dovecot: Any, mailuser: Any) -> None:
    _need_procmail()
    base = e2e.home / "boxes"
    base.mkdir()
    rc = _procmailrc(e2e.home / "procmailrc", f"{base}/$1/")
    mailuser.deliver(sample(1))
    argv_log = e2e.home / "argv.txt"
    script = e2e.home / "mda.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s|" "$@" > {argv_log}\nexec {PROCMAIL} -m {rc} "$4"\n')
    script.chmod(0o755)
    e2e.write_rc(pop3_rc(dovecot, mailuser, local="alice", user_opts=f'mda "{script} -f %F -d %T"'))
    done = e2e.pyfetchmail()
    assert done.returncode == 0, done
    assert argv_log.read_text() == "-f|sender1@remote.example|-d|alice|"
    assert len(sorted_maildir_files(base / "alice")) == 1
    assert mailuser.messages() == []


def test_bsmtp_file_content(e2e: E2E, dovecot: Any, mailuser: Any) -> None:
    raws = [sample(1), sample(2)]
    for raw in raws:
        mailuser.deliver(raw)
    out = e2e.home / "out.bsmtp"
    e2e.write_rc(pop3_rc(dovecot, mailuser, user_opts=f'bsmtp "{out}"'))
    done = e2e.pyfetchmail()
    assert done.returncode == 0, done
    assert mailuser.messages() == []
    data = out.read_bytes()
    blocks = data.split(b"\r\n.\r\n")
    assert blocks[-1] == b""
    assert len(blocks) == 3
    for n, (raw, block) in enumerate(zip(raws, blocks, strict=False), 1):
        # spec §6.5: MAIL FROM, RCPT TO (domain localhost), DATA, message, "."; CRLF;
        # no HELO/QUIT, no SIZE; Return-Path removed as for SMTP (§6.6 step 11).
        envelope = (
            f"MAIL FROM:<sender{n}@remote.example>\r\nRCPT TO:<joe@localhost>\r\nDATA\r\n"
        ).encode()
        assert block.startswith(envelope), block[:200]
        body = strip_received(block[len(envelope) :] + b"\r\n")
        # The POP3 server's dot-stuffing is present in the file (leading dots doubled).
        stuffed = crlf(without_return_path(raw)).replace(b"\r\n.", b"\r\n..")
        assert body == stuffed
    assert b"HELO" not in data
    assert b"QUIT" not in data


# --- fate rules against an SMTP sink -------------------------------------------


def test_451_at_data_keeps_message_and_next_run_delivers(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raw = sample(1)
    mailuser.deliver(raw)
    smtp_sink.reply_to_data(1, "451 4.3.0 try later")
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port))
    first = e2e.pyfetchmail()
    # fetchmail counts the message as fetched: exit 0 (verified with 6.4.37).
    assert first.returncode == 0, first
    assert "SMTP error: 451 4.3.0 try later" in first.output
    assert smtp_sink.received == []
    assert mailuser.messages() == [raw]

    second = e2e.pyfetchmail()
    assert second.returncode == 0, second
    assert [strip_received(m.data) for m in smtp_sink.received] == [crlf(without_return_path(raw))]
    assert mailuser.messages() == []


def test_550_with_default_softbounce_keeps_message(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raw = sample(1)
    mailuser.deliver(raw)
    smtp_sink.policy = lambda stage, arg: "550 5.7.1 rejected" if stage == "DATA" else None
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port))
    for _ in range(2):
        done = e2e.pyfetchmail()
        assert done.returncode == 0, done
        assert "SMTP error: 550 5.7.1 rejected" in done.output
        assert "Traceback" not in done.output
        assert mailuser.messages() == [raw]
    assert len(smtp_sink.transactions) == 2


def test_550_with_no_softbounce_deletes_and_bounces_without_crash(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    mailuser.deliver(sample(1))
    mailuser.deliver(sample(2))
    smtp_sink.reply_to_data(1, "550 5.7.1 rejected")
    e2e.write_rc(
        pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, globals_="set no softbounce\n")
    )
    done = e2e.pyfetchmail()
    # The bounce goes to localhost:25 (Postfix if it runs, else refused);
    # either way the run ends normally.
    assert done.returncode == 0, done
    assert "Traceback" not in done.output
    assert mailuser.messages() == []
    assert len(smtp_sink.received) == 1
    assert smtp_sink.received[0].mail_from == "sender2@remote.example"


def test_antispam_571_with_softbounce_keeps_without_bounce(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raw = sample(1)
    mailuser.deliver(raw)
    smtp_sink.reply_to_data(1, "571 5.7.1 spam detected")
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="antispam 571"))
    done = e2e.pyfetchmail()
    assert done.returncode == 0, done
    assert mailuser.messages() == [raw]
    # spec §6.3: antispam refusals are not bounced unless spambounce is set.
    assert "bounce" not in done.output.lower()


def test_mda_exit_75_keeps_message(e2e: E2E, dovecot: Any, mailuser: Any) -> None:
    raw = sample(1)
    mailuser.deliver(raw)
    e2e.write_rc(
        pop3_rc(dovecot, mailuser, user_opts="mda \"/bin/sh -c 'cat >/dev/null; exit 75'\"")
    )
    done = e2e.pyfetchmail()
    # fetch.py documents fetchmail's quirk (spec §6.4): a fetched message
    # counts for the exit status even when the MDA failed, so 0.
    assert done.returncode == 0, done
    assert "MDA returned nonzero status 75" in done.output
    assert "not flushed" in done.output
    assert mailuser.messages() == [raw]


# --- safety ----------------------------------------------------------------------


def test_listener_drops_mid_data_nothing_deleted_rerun_delivers(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    raws = [sample(1), sample(2, size=4000)]
    for raw in raws:
        mailuser.deliver(raw)
    with DroppingSmtpServer(drop_after=20) as dropper:
        e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=dropper.port))
        first = e2e.pyfetchmail()
        assert dropper.data_started >= 1
    assert "Traceback" not in first.output
    assert first.returncode in (0, 10), first
    assert mailuser.messages() == raws
    assert first.output.count(" flushed") == first.output.count(" not flushed")

    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port))
    second = e2e.pyfetchmail()
    assert second.returncode == 0, second
    assert [strip_received(m.data) for m in smtp_sink.received] == [
        crlf(without_return_path(raw)) for raw in raws
    ]
    assert mailuser.messages() == []


# --- the README demo ---------------------------------------------------------------

_REPO = Path(__file__).resolve().parents[3]


@pytest.mark.timeout(150)
@pytest.mark.parametrize("mode", [[], ["--mda"]], ids=["default", "procmail"])
def test_readme_demo_reports_success(tmp_path: Path, mode: list[str]) -> None:
    if not (_REPO / "scripts" / "demo.sh").exists() or not (_REPO / "testbed/demo.py").exists():
        pytest.skip("the demo is not in this tree")
    if mode:
        _need_procmail()
    env = dict(os.environ, PYTHONPATH=str(_REPO), HOME=str(tmp_path), LC_ALL="C")
    done = subprocess.run(
        [sys.executable, "-m", "testbed.demo", *mode],
        cwd=_REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = f"status={done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, report
    assert "demo OK: every message was delivered locally and removed from the server" in report
    assert "server box for 'demo' now holds 0 message(s)" in report
    assert "Traceback" not in report


# --- keep: a message that was not delivered is not marked seen (spec §6.8, §6.11) ---


@pytest.mark.parametrize(
    "reply", ["451 4.3.0 try later", "550 5.7.1 rejected"], ids=["transient", "softbounce"]
)
def test_keep_does_not_mark_undelivered_message_seen(
    e2e: E2E, dovecot: Any, mailuser: Any, smtp_sink: Any, reply: str
) -> None:
    raws = [sample(1), sample(2)]
    for raw in raws:
        mailuser.deliver(raw)
    smtp_sink.reply_to_data(1, reply)
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=smtp_sink.port, user_opts="keep"))
    first = e2e.pyfetchmail()
    assert first.returncode == 0, first
    assert len(smtp_sink.received) == 1
    assert len(e2e.idfile_lines()) == 1

    second = e2e.pyfetchmail()
    assert second.returncode == 0, second
    assert [strip_received(m.data) for m in smtp_sink.received] == [
        crlf(without_return_path(raws[1])),
        crlf(without_return_path(raws[0])),
    ]
    assert len(e2e.idfile_lines()) == 2
    assert mailuser.messages() == raws
    assert e2e.pyfetchmail().returncode == 1


def test_keep_mda_failure_is_refetched(e2e: E2E, dovecot: Any, mailuser: Any) -> None:
    raw = sample(1)
    mailuser.deliver(raw)
    flag = e2e.home / "fail-once"
    flag.write_text("x")
    box = e2e.home / "out"
    box.mkdir()
    mda = f"/bin/sh -c 'if rm {flag} 2>/dev/null; then exit 75; fi; cat > {box}/msg'"
    e2e.write_rc(pop3_rc(dovecot, mailuser, user_opts=f'keep mda "{mda}"'))
    assert e2e.pyfetchmail().returncode == 0
    assert not (box / "msg").exists()
    assert e2e.idfile_lines() == []
    again = e2e.pyfetchmail()
    assert again.returncode == 0, again
    assert strip_received((box / "msg").read_bytes()) == raw
    assert len(e2e.idfile_lines()) == 1


def test_listener_unreachable_exit_10_nothing_deleted(
    e2e: E2E, dovecot: Any, mailuser: Any
) -> None:
    raws = [sample(1), sample(2)]
    for raw in raws:
        mailuser.deliver(raw)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    e2e.write_rc(pop3_rc(dovecot, mailuser, smtp_port=dead_port))
    done = e2e.pyfetchmail()
    # spec §6.1: no listener reachable -> exit 10 (verified: fetchmail 6.4.37 too).
    assert done.returncode == 10, done
    assert f"SMTP connect to 127.0.0.1/{dead_port} failed" in done.output
    assert "Query status=10 (SMTP)" in done.output
    assert mailuser.messages() == raws


def _fake_rc(port: int, sink_port: int) -> str:
    return (
        f"poll 127.0.0.1 proto pop3 port {port} no dns\n"
        "  user joe password secret is joe here\n"
        f"  sslproto '' no sslcertck smtphost 127.0.0.1/{sink_port}\n"
    )


def test_retr_error_skips_one_message_and_keeps_it(e2e: E2E, smtp_sink: Any) -> None:
    msgs = [crlf(sample(n)) for n in (1, 2, 3)]
    with FakePop3Server(mailbox=list(msgs), retr_err={2}) as server:
        e2e.write_rc(_fake_rc(server.port, smtp_sink.port))
        first = e2e.pyfetchmail()
        assert first.returncode == 0, first
        assert [m.mail_from for m in smtp_sink.received] == [
            "sender1@remote.example",
            "sender3@remote.example",
        ]
        assert server.mailbox == [msgs[1]]
        server.retr_err = set()
        second = e2e.pyfetchmail()
        assert second.returncode == 0, second
        assert smtp_sink.received[2].mail_from == "sender2@remote.example"
        assert server.mailbox == []


def test_server_drops_during_retr_no_loss_no_duplicate(e2e: E2E, smtp_sink: Any) -> None:
    # RFC 1939 §6: without QUIT the server deletes nothing, so message 1 (already
    # delivered) is still there on the next run. fetchmail 6.4.37 delivers it
    # once and leaves it on the server for ever; pyfetchmail remembers it was
    # delivered and only deletes it.
    msgs = [crlf(sample(n)) for n in (1, 2, 3)]
    with FakePop3Server(mailbox=list(msgs), drop_during_retr=2) as server:
        e2e.write_rc(_fake_rc(server.port, smtp_sink.port))
        first = e2e.pyfetchmail()
        assert first.returncode == 2, first
        assert len(server.mailbox) == 3
        server.drop_during_retr = None
        second = e2e.pyfetchmail()
        assert second.returncode == 0, second
        assert [m.mail_from for m in smtp_sink.received] == [
            f"sender{n}@remote.example" for n in (1, 2, 3)
        ]
        assert server.mailbox == []
