"""The IDLE loop (pyfetchmail.service.idle) against the scripted fake server.

The cases against Dovecot are in dovecot/test_imap_idle_dovecot.py.

The engine pass is replaced by a small recorder (``process=``), so these tests
exercise the loop, the IDLE exchange and reconnects, not delivery.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from pyfetchmail.auth.credentials import Credentials, FixedSecret
from pyfetchmail.config.model import MailProtocol, Query, RunControl, Server, User
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.engine.poll import PollContext
from pyfetchmail.errors import SocketError
from pyfetchmail.protocols.base import MailSession
from pyfetchmail.protocols.imap import ImapSource
from pyfetchmail.service.idle import IdleSettings, run_idle
from pyfetchmail.state.uidstore import UidStore
from tests.fakes.fake_imap import CLOSE, FakeImapServer

pytestmark = pytest.mark.timeout(30)


def _ctx(poll_interval: int = 0) -> PollContext:
    def factory(query: Query, credentials: Credentials, ctx: PollContext) -> ImapSource:
        return ImapSource(query, credentials)

    return PollContext(
        run=RunControl(poll_interval=poll_interval),
        options=CommandLineOptions(),
        identity=None,
        uidstore=UidStore(None),
        credentials=FixedSecret(None),
        source_factory=factory,
    )


class Recorder:
    """A stand-in engine pass: fetch and delete every listed message, note the time."""

    def __init__(self) -> None:
        self.passes: list[tuple[float, list[bytes]]] = []
        self.changed = threading.Condition()

    def __call__(self, session: MailSession, query: Query, ctx: Any) -> None:
        listing = session.select(None)
        bodies = []
        for ref, msg in session.retrieve(listing.messages):
            bodies.append(msg.read_all())
            session.delete(ref)
        session.expunge()
        with self.changed:
            self.passes.append((time.monotonic(), bodies))
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)


@contextmanager
def idle_thread(query: Query, ctx: PollContext, **kw: Any) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=run_idle, args=(query, ctx), kwargs={"stop": stop, **kw})
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "run_idle did not stop"


def _with_password(ctx: PollContext, password: str) -> PollContext:
    import dataclasses

    return dataclasses.replace(ctx, credentials=FixedSecret(password))


def _fake_query(fake: FakeImapServer) -> Query:
    server = Server(fake.host, protocol=MailProtocol.IMAP, service=str(fake.port), timeout=5)
    return Query(server, User(remote="joe", sslproto="", sslcertck=False, idle=True))


def test_dropped_connection_reconnects_with_backoff() -> None:
    replies = {"IDLE": b"+ idling\r\n" + CLOSE}
    with FakeImapServer(replies=replies) as fake:
        ctx = _with_password(_ctx(), "pw")
        rec = Recorder()
        settings = IdleSettings(backoff_initial=0.2, backoff_max=0.4)
        with idle_thread(_fake_query(fake), ctx, process=rec, settings=settings):
            assert rec.wait_for(lambda: len(rec.passes) >= 3, 10)
        logins = fake.commands().count("LOGIN")
    assert logins >= 3
    # Consecutive passes are separated by the bounded backoff, not a busy loop.
    gaps = [b[0] - a[0] for a, b in zip(rec.passes, rec.passes[1:], strict=False)]
    assert all(gap >= 0.15 for gap in gaps), gaps


def test_bye_during_idle_is_a_socket_error_then_reconnect() -> None:
    replies = {"IDLE": b"+ idling\r\n* BYE server shutting down\r\n" + CLOSE}
    with FakeImapServer(replies=replies) as fake:
        ctx = _with_password(_ctx(), "pw")
        rec = Recorder()
        settings = IdleSettings(backoff_initial=0.1, backoff_max=0.1)
        with idle_thread(_fake_query(fake), ctx, process=rec, settings=settings):
            assert rec.wait_for(lambda: len(rec.passes) >= 2, 10)


def test_server_without_idle_single_pass_without_interval() -> None:
    greeting = b"* OK [CAPABILITY IMAP4rev1] no idle here\r\n"
    with FakeImapServer(greeting=greeting) as fake:
        rec = Recorder()
        stop = threading.Event()
        started = time.monotonic()
        run_idle(_fake_query(fake), _with_password(_ctx(), "pw"), stop=stop, process=rec)
        assert time.monotonic() - started < 5
        assert len(rec.passes) == 1
        assert "IDLE" not in fake.commands()
        assert "LOGOUT" in fake.commands()


def test_server_without_idle_polls_at_interval() -> None:
    greeting = b"* OK [CAPABILITY IMAP4rev1] no idle here\r\n"
    with FakeImapServer(greeting=greeting) as fake:
        rec = Recorder()
        wake = threading.Event()
        with idle_thread(
            _fake_query(fake), _with_password(_ctx(600), "pw"), process=rec, wake=wake
        ):
            assert rec.wait_for(lambda: len(rec.passes) == 1, 5)
            wake.set()  # SIGUSR1: poll now instead of in 600 s
            assert rec.wait_for(lambda: len(rec.passes) == 2, 5)


def test_stop_during_idle_sends_done_and_logs_out() -> None:
    state: dict[str, bytes] = {}

    def idle(tag: bytes, args: bytes) -> bytes:
        state["tag"] = tag
        return b"+ idling\r\n"

    def done(_tag: bytes, _args: bytes) -> bytes:
        return state["tag"] + b" OK idle done\r\n"

    replies = {"IDLE": idle, "DONE": done}
    with FakeImapServer(replies=replies) as fake:
        rec = Recorder()
        with idle_thread(_fake_query(fake), _with_password(_ctx(), "pw"), process=rec) as stop:
            assert rec.wait_for(lambda: len(rec.passes) == 1, 5)
            time.sleep(0.3)
            stopped = time.monotonic()
            stop.set()
        assert time.monotonic() - stopped < 2
        commands = fake.commands()
    assert commands[-3:] == ["IDLE", "DONE", "LOGOUT"]


def test_socket_error_from_pass_is_not_fatal() -> None:
    calls: list[int] = []

    def flaky(session: MailSession, query: Query, ctx: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise SocketError("simulated loss")

    with FakeImapServer() as fake:
        settings = IdleSettings(backoff_initial=0.05, refresh=0.2)
        with idle_thread(
            _fake_query(fake), _with_password(_ctx(), "pw"), process=flaky, settings=settings
        ):
            deadline = time.monotonic() + 5
            while len(calls) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
    assert len(calls) >= 2
