"""The IDLE loop (pyfetchmail.service.idle) against Dovecot.

The cases against the scripted fake server are in fakes/test_imap_idle.py.
"""

from __future__ import annotations

import imaplib
import ssl
import threading
import time
from typing import Any

import pytest

from pyfetchmail.config.model import MailProtocol, Query, Server, User
from pyfetchmail.service.idle import IdleSettings
from pyfetchmail.state.uidstore import UidStore
from testbed.dovecot import Dovecot, MailUser
from tests.integration.fakes.test_imap_idle import Recorder, _ctx, _with_password, idle_thread

pytestmark = pytest.mark.timeout(30)


MSG = b"From: a@example.org\r\nSubject: idle\r\n\r\nbody\r\n"


def _dovecot_query(dovecot: Dovecot, user: MailUser) -> Query:
    server = Server(
        "127.0.0.1", protocol=MailProtocol.IMAP, service=str(dovecot.imap_port), timeout=10
    )
    opts = {"sslcertfile": str(dovecot.ca_file), "sslcommonname": "localhost", "idle": True}
    return Query(server, User(remote=user.name, **opts))


def _append(dovecot: Dovecot, user: MailUser, raw: bytes) -> None:
    tls = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=tls, timeout=10) as imap:
        imap.login(user.name, user.password)
        imap.append("INBOX", None, None, raw)


@pytest.mark.dovecot
def test_new_mail_wakes_idle_within_a_second(dovecot: Dovecot, mailuser: MailUser) -> None:
    mailuser.deliver(MSG)
    query = _dovecot_query(dovecot, mailuser)
    ctx = _with_password(_ctx(), mailuser.password)
    rec = Recorder()
    with idle_thread(query, ctx, process=rec) as stop:
        assert rec.wait_for(lambda: len(rec.passes) == 1, 10)
        assert rec.passes[0][1] == [MSG]
        time.sleep(0.3)  # let the loop enter IDLE
        appended = time.monotonic()
        _append(dovecot, mailuser, MSG.replace(b"idle", b"second"))
        assert rec.wait_for(lambda: len(rec.passes) >= 2, 5)
        woke, bodies = rec.passes[1]
        assert bodies == [MSG.replace(b"idle", b"second")]
        assert woke - appended < 1.0
        stop.set()
    assert mailuser.messages() == []


@pytest.mark.dovecot
def test_wake_event_and_refresh_run_passes(dovecot: Dovecot, mailuser: MailUser) -> None:
    query = _dovecot_query(dovecot, mailuser)
    ctx = _with_password(_ctx(), mailuser.password)
    rec = Recorder()
    wake = threading.Event()
    settings = IdleSettings(refresh=60)
    with idle_thread(query, ctx, process=rec, wake=wake, settings=settings):
        assert rec.wait_for(lambda: len(rec.passes) == 1, 10)
        time.sleep(0.3)
        wake.set()
        assert rec.wait_for(lambda: len(rec.passes) == 2, 2)
    rec2 = Recorder()
    with idle_thread(query, ctx, process=rec2, settings=IdleSettings(refresh=0.3)):
        # RFC 2177 refresh: IDLE is ended and re-issued (with a pass) on the timer.
        assert rec2.wait_for(lambda: len(rec2.passes) >= 3, 5)


@pytest.mark.dovecot
def test_idle_with_the_real_engine_delivers_by_smtp(
    dovecot: Dovecot, mailuser: MailUser, smtp_sink: Any, tmp_path: Any
) -> None:
    import dataclasses

    from pyfetchmail.config.model import NameMapping

    mailuser.deliver(MSG)
    base = _dovecot_query(dovecot, mailuser)
    user = dataclasses.replace(
        base.user,
        localnames=(NameMapping("alice", "alice"),),
        smtphunt=(f"{smtp_sink.host}/{smtp_sink.port}",),
    )
    query = Query(base.server, user)
    ctx = dataclasses.replace(
        _with_password(_ctx(), mailuser.password),
        uidstore=UidStore(str(tmp_path / "fetchids")),
        resolve_truename=lambda q: q.server.queryname,
    )
    with idle_thread(query, ctx):
        smtp_sink.wait_for(1, 10)
        time.sleep(0.5)  # into IDLE
        _append(dovecot, mailuser, MSG.replace(b"idle", b"second"))
        smtp_sink.wait_for(2, 5)
    datas = [r.data for r in smtp_sink.received]
    assert len(datas) == 2
    assert datas[0].endswith(MSG.split(b"\r\n\r\n", 1)[1])
    assert b"Subject: second" in datas[1]
    assert mailuser.messages() == []
