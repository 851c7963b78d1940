"""BSMTP sink: record layout, append, fsync, open failure, stdout (spec §6.5)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyfetchmail.config.model import NameMapping, Query, RunControl, Server, User
from pyfetchmail.delivery.base import Envelope, Outcome
from pyfetchmail.delivery.bsmtp import BsmtpDelivery
from pyfetchmail.delivery.factory import make_delivery
from pyfetchmail.errors import BsmtpError
from pyfetchmail.mail.message import SpooledMessage

MSG = b"From: s@x\r\nSubject: b\r\n\r\n.leading dot\r\nend"


def _query(path: str, **kw: object) -> Query:
    kw.setdefault("localnames", (NameMapping("alice", "alice"),))
    return Query(Server("pop.test"), User("joe", bsmtp=path, **kw))  # type: ignore[arg-type]


def test_record_layout_and_append(tmp_path: Path) -> None:
    out = tmp_path / "out.bsmtp"
    q = _query(str(out), mda="ignored")  # bsmtp takes precedence over mda
    d = make_delivery(q, RunControl(), "vm", server_truename="pop.test")
    assert isinstance(d, BsmtpDelivery)
    r = d.deliver(SpooledMessage.from_bytes(MSG), Envelope("s@x", ("alice", "bob@y")))
    assert r.outcome is Outcome.ACCEPTED
    r2 = d.deliver(SpooledMessage.from_bytes(b"S: 2\r\n\r\nx\r\n"), Envelope("", ("alice",)))
    assert r2.outcome is Outcome.ACCEPTED
    d.close()
    assert out.read_bytes() == (
        b"MAIL FROM:<s@x>\r\nRCPT TO:<alice@localhost>\r\nRCPT TO:<bob@y>\r\nDATA\r\n"
        b"From: s@x\r\nSubject: b\r\n\r\n..leading dot\r\nend\r\n.\r\n"
        b"MAIL FROM:<>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nS: 2\r\n\r\nx\r\n.\r\n"
    )


def test_body_and_smtpaddress(tmp_path: Path) -> None:
    out = tmp_path / "o"
    d = BsmtpDelivery(_query(str(out), smtpaddress="corp.test", pass8bits=True))
    d.deliver(SpooledMessage.from_bytes(MSG), Envelope("s@x", ("alice",)))
    assert out.read_bytes().startswith(
        b"MAIL FROM:<s@x> BODY=8BITMIME\r\nRCPT TO:<alice@corp.test>\r\n"
    )


def test_open_failure_is_bsmtp_error(tmp_path: Path) -> None:
    d = BsmtpDelivery(_query(str(tmp_path / "missing-dir" / "f")))
    with pytest.raises(BsmtpError) as info:
        d.deliver(SpooledMessage.from_bytes(MSG), Envelope("s@x", ("alice",)))
    assert info.value.exit_code == 12


@pytest.mark.timeout(30)
def test_stdout(tmp_path: Path) -> None:
    code = (
        "from pyfetchmail.config.model import *\n"
        "from pyfetchmail.delivery.bsmtp import BsmtpDelivery\n"
        "from pyfetchmail.delivery.base import Envelope\n"
        "from pyfetchmail.mail.message import SpooledMessage\n"
        "q = Query(Server('p'), User('j', bsmtp='-'))\n"
        "BsmtpDelivery(q).deliver(SpooledMessage.from_bytes(b'S: x\\r\\n\\r\\nb\\r\\n'),"
        " Envelope('s@x', ('a',)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=20, check=True)
    assert (
        out.stdout == b"MAIL FROM:<s@x>\r\nRCPT TO:<a@localhost>\r\nDATA\r\nS: x\r\n\r\nb\r\n.\r\n"
    )


def test_write_failure_is_tempfail_not_partial() -> None:
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full not available")
    d = BsmtpDelivery(_query("/dev/full"))
    r = d.deliver(SpooledMessage.from_bytes(MSG), Envelope("s@x", ("alice",)))
    assert r.outcome is Outcome.TEMPFAIL
    assert "BSMTP write failed" in r.text


def test_fifo_target_is_accepted(tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = BsmtpDelivery(_query(str(fifo))).deliver(
        SpooledMessage.from_bytes(MSG), Envelope("s@x", ("alice",))
    )
    reader.join(10)
    assert r.outcome is Outcome.ACCEPTED
    assert got[0].endswith(b"end\r\n.\r\n")


@pytest.mark.timeout(30)
def test_failed_append_leaves_no_partial_record(tmp_path: Path) -> None:
    out = tmp_path / "o.bsmtp"
    out.write_bytes(b"earlier record\r\n")
    code = (
        "import resource, signal\n"
        "from pyfetchmail.config.model import *\n"
        "from pyfetchmail.delivery.bsmtp import BsmtpDelivery\n"
        "from pyfetchmail.delivery.base import Envelope\n"
        "from pyfetchmail.mail.message import SpooledMessage\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        f"q = Query(Server('p'), User('j', bsmtp={str(out)!r}))\n"
        "msg = SpooledMessage.from_bytes(b'S: x\\r\\n\\r\\n' + b'y' * 100000)\n"
        "print(BsmtpDelivery(q).deliver(msg, Envelope('s@x', ('a',))).outcome.value)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=20, check=True)
    assert done.stdout.strip() == b"tempfail"
    assert out.read_bytes() == b"earlier record\r\n"
