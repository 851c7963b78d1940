"""MDA sink: real procmail into a Maildir, exit statuses, timeouts, memory (spec §6.4)."""

from __future__ import annotations

import json
import shutil
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pyfetchmail.config.model import NameMapping, Query, RunControl, Server, User
from pyfetchmail.delivery.base import Envelope, Outcome
from pyfetchmail.delivery.factory import make_delivery
from pyfetchmail.delivery.mda import MdaDelivery
from pyfetchmail.errors import ConfigError
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.mail.prepare import TraceInfo, prepare_message

pytestmark = pytest.mark.timeout(60)

RUN = RunControl(postmaster="postmaster")
INFO = TraceInfo(
    "pop.test",
    "127.0.0.1",
    "POP3",
    "vm",
    "pop.test",
    "joe",
    None,
    False,
    datetime(2026, 11, 21, 7, 33, 27, tzinfo=UTC),
)
MSG = (
    b"Return-Path: <s@remote.example>\r\nFrom: s@remote.example\r\n"
    b"Subject: m\r\n\r\nline1\r\n.dot\r\n"
)


def _query(mda: str, **kw: object) -> Query:
    kw.setdefault("localnames", (NameMapping("alice", "alice"),))
    return Query(Server("pop.test", timeout=kw.pop("timeout", 30)), User("joe", mda=mda, **kw))  # type: ignore[arg-type]


def _maildir_files(maildir: Path) -> list[Path]:
    return sorted((maildir / "new").iterdir()) if (maildir / "new").is_dir() else []


@pytest.mark.skipif(shutil.which("procmail") is None, reason="procmail not installed")
def test_procmail_delivers_into_maildir(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    rc = tmp_path / "procmailrc"
    rc.write_text(f"DEFAULT={maildir}/\nLOGFILE={tmp_path}/procmail.log\n")
    q = _query(f"procmail -m {rc}")
    p = prepare_message(SpooledMessage.from_bytes(MSG), q, RUN, INFO)
    d = make_delivery(q, RUN, "vm", server_truename="pop.test")
    assert isinstance(d, MdaDelivery)
    result = d.deliver(p.message, p.envelope)
    assert result.outcome is Outcome.ACCEPTED
    assert result.where == "MDA"
    (stored,) = _maildir_files(maildir)
    data = stored.read_bytes()
    # no Received in the message: ours goes on top; Return-Path is kept for an MDA;
    # CRs stripped, dots unstuffed
    assert data.startswith(b"Received: from pop.test [127.0.0.1]\n")
    assert b"(UTC)\nReturn-Path: <s@remote.example>\nFrom: s@remote.example\n" in data
    assert b"\tfor <alice@localhost> (single-drop); Sat, 21 Nov 2026 07:33:27 +0000 (UTC)\n" in data
    assert data.endswith(b"\n\nline1\n.dot\n")
    assert b"\r" not in data


def test_arguments_and_stdin(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = tmp_path / "mda.py"
    script.write_text(
        "import sys, json\n"
        "data = sys.stdin.buffer.read().decode('latin-1')\n"
        f"open({str(out)!r}, 'w').write(json.dumps([sys.argv[1:], data]))\n"
    )
    q = _query(f"{sys.executable} {script} -f %F -d %T x%%y %x")
    d = MdaDelivery(q, RUN)
    r = d.deliver(SpooledMessage.from_bytes(MSG), Envelope("s@remote.example", ("alice", "bob")))
    assert r.outcome is Outcome.ACCEPTED
    argv, stdin = json.loads(out.read_text())
    assert argv == ["-f", "s@remote.example", "-d", "alice", "bob", "x%%y", "%x"]
    assert stdin == MSG.replace(b"\r\n", b"\n").decode("latin-1")


def test_no_stripcr_keeps_crlf(tmp_path: Path) -> None:
    out = tmp_path / "out"
    d = MdaDelivery(_query(f"cat > {out}", stripcr=False), RUN)
    assert (
        d.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("x",))).outcome
        is Outcome.ACCEPTED
    )
    assert out.read_bytes() == MSG


@pytest.mark.parametrize(
    "hostile",
    [
        "$(touch {marker})",
        "`touch {marker}`",
        "x; touch {marker}",
        "x'; touch {marker}; echo '",
        "x\ntouch {marker}",
        'x" ; touch {marker} ; "',
    ],
)
def test_hostile_addresses_cannot_run_commands(tmp_path: Path, hostile: str) -> None:
    marker = tmp_path / "pwned"
    out = tmp_path / "args"
    value = hostile.format(marker=marker)
    d = MdaDelivery(_query(f'cat >/dev/null; for a in %F %T; do echo "$a"; done > {out}'), RUN)
    r = d.deliver(SpooledMessage.from_bytes(MSG), Envelope(value, (value,)))
    assert r.outcome is Outcome.ACCEPTED
    assert not marker.exists()
    assert out.read_text().count(value.replace("'", "_")) == 2


@pytest.mark.parametrize("command", ["procmail -d '%T'", "deliver -f '%F'", "x '%s'"])
def test_single_quoted_expansion_refused(command: str) -> None:
    with pytest.raises(ConfigError, match="single-quoted %"):
        make_delivery(_query(command), RUN, "vm", server_truename="p")


@pytest.mark.parametrize(
    ("command", "text"),
    [
        ("cat >/dev/null; exit 75", "MDA returned nonzero status 75"),
        ("kill -9 $$", "MDA died of signal 9"),
        ("exit 0", "MDA closed its input early"),
    ],
)
def test_failures_are_tempfail(command: str, text: str) -> None:
    big = SpooledMessage.from_bytes(b"S: x\r\n\r\n" + b"x" * (4 << 20))
    r = MdaDelivery(_query(command), RUN).deliver(big, Envelope("a@b", ("x",)))
    assert r.outcome is Outcome.TEMPFAIL
    assert r.text.startswith(text)
    big.close()


@pytest.mark.timeout(20)
def test_timeout_kills_the_mda() -> None:
    d = MdaDelivery(_query("cat >/dev/null; sleep 30"), RUN, timeout=0.5)
    r = d.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("x",)))
    assert r.outcome is Outcome.TEMPFAIL
    assert "timeout" in r.text


@pytest.mark.slow
def test_30mb_message_streams_with_bounded_memory(tmp_path: Path) -> None:
    raw = SpooledMessage()
    raw.write(b"Subject: big\r\n\r\n")
    line = b"z" * 998 + b"\r\n"
    for _ in range(30 * 1024):
        raw.write(line)
    out = tmp_path / "big"
    q = _query(f"cat > {out}")
    tracemalloc.start()
    try:
        p = prepare_message(raw, q, RUN, INFO)
        r = MdaDelivery(q, RUN).deliver(p.message, p.envelope)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.outcome is Outcome.ACCEPTED
    assert peak < 8 << 20
    assert out.stat().st_size == p.message.size - p.message.read_all().count(b"\r")
    p.message.close()
    raw.close()


@pytest.mark.parametrize("template", ['echo "%F" > {out}', 'echo "from: %F to: %T" > {out}'])
def test_hostile_value_inside_user_double_quotes(tmp_path: Path, template: str) -> None:
    marker = tmp_path / "pwned"
    out = tmp_path / "o"
    value = f"$(touch {marker})`touch {marker}`"
    d = MdaDelivery(_query("cat >/dev/null; " + template.format(out=out)), RUN)
    r = d.deliver(SpooledMessage.from_bytes(MSG), Envelope(value, (value,)))
    assert r.outcome is Outcome.ACCEPTED
    assert not marker.exists()
    assert value in out.read_text()


@pytest.mark.timeout(20)
def test_timeout_kills_the_whole_pipeline(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    d = MdaDelivery(
        _query(f"cat >/dev/null; sleep 30 & echo $! > {pidfile}; wait"), RUN, timeout=0.5
    )
    r = d.deliver(SpooledMessage.from_bytes(MSG), Envelope("a@b", ("x",)))
    assert r.outcome is Outcome.TEMPFAIL
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    stat = Path(f"/proc/{child}/stat")
    while time.monotonic() < deadline:
        try:
            # a zombie (state Z) is dead; only its parent's reaper is slow
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the MDA's child process survived the timeout")
