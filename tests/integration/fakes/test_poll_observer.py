"""The daemon learns about timeouts and oversized messages from the engine's stats.

- A server that accepts the connection and then stays silent makes
  ``poll_query`` report ``timed_out`` (the wedged-query rule counts these).
- Oversized messages produce fetchmail's warning mail (spec section 6.9) once,
  and again only when a new oversized message appears.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pyfetchmail.auth.credentials import FixedSecret
from pyfetchmail.config.model import MailProtocol, NameMapping, Query, RunControl, Server, User
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.engine.poll import PollContext, poll_query
from pyfetchmail.engine.stats import OversizedMessage, PollStats
from pyfetchmail.exitcodes import ExitCode
from pyfetchmail.service.daemon import PollObserver
from pyfetchmail.state.uidstore import UidStore

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback TCP server that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    listener.close()


def _poll(port: int, tmp_path: Any) -> tuple[int, list[PollStats]]:
    """Poll a plaintext POP3 query on 127.0.0.1:*port* (1 s timeout); status and stats."""
    query = Query(
        Server("127.0.0.1", protocol=MailProtocol.POP3, service=str(port), timeout=1),
        User("joe", password="pw", sslproto="", sslcertck=False),
    )
    seen: list[PollStats] = []
    ctx = PollContext(
        run=RunControl(),
        options=CommandLineOptions(),
        identity=None,
        uidstore=UidStore.load(str(tmp_path / "ids")),
        credentials=FixedSecret("pw"),
        on_stats=lambda _q, stats: seen.append(stats),
    )
    return poll_query(query, ctx), seen


def test_silent_server_is_reported_as_a_timeout(silent_server: int, tmp_path: Any) -> None:
    status, seen = _poll(silent_server, tmp_path)
    assert status == ExitCode.ERROR  # a server timeout is fetchmail's ERROR (7)
    assert [s.timed_out for s in seen] == [True]


def test_refused_connection_is_not_a_timeout(tmp_path: Any) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again: nothing listens there
    status, seen = _poll(port, tmp_path)
    assert status == ExitCode.SOCKET
    assert [s.timed_out for s in seen] == [False]


class _Result:
    def __init__(self) -> None:
        self.config = type("C", (), {"run": RunControl()})()
        self.identity = type("I", (), {"fetchmailhost": "vm.example"})()


def _big(number: int) -> OversizedMessage:
    return OversizedMessage(
        folder=None, number=number, uid=f"u{number}", size=5_000_000, flushed=False
    )


def test_oversized_warning_sent_once_then_on_new_message(smtp_sink: Any) -> None:
    query = Query(
        Server("pop.example"),
        User(
            "joe",
            localnames=(NameMapping("alice", "alice"),),
            smtphunt=(f"127.0.0.1/{smtp_sink.port}",),
            warnings=3600,
        ),
    )
    observer = PollObserver(_Result(), warn_oversized=True)  # type: ignore[arg-type]
    observer.on_stats(query, PollStats(oversized=(_big(1),)))
    assert smtp_sink.wait_for(1, 10)
    observer.on_stats(query, PollStats(oversized=(_big(1),)))  # same one, within `warnings`
    observer.on_stats(query, PollStats(oversized=(_big(1), _big(2))))  # a new one
    assert smtp_sink.wait_for(2, 10)
    assert len(smtp_sink.received) == 2
    first = smtp_sink.received[0]
    assert first.rcpt_tos == ["alice@127.0.0.1"]
    assert b"Subject: Fetchmail oversized-messages warning" in first.data
    assert b"message 1: 5000000 octets" in first.data
    assert b"message 2: 5000000 octets" in smtp_sink.received[1].data


def test_no_oversized_warning_unless_detached(smtp_sink: Any) -> None:
    query = Query(
        Server("pop.example"),
        User("joe", localnames=(NameMapping("a", "a"),), smtphunt=(f"127.0.0.1/{smtp_sink.port}",)),
    )
    observer = PollObserver(_Result(), warn_oversized=False)  # type: ignore[arg-type]
    observer.on_stats(query, PollStats(oversized=(_big(1),)))
    time.sleep(0.5)  # sending is synchronous; nothing may arrive at all
    assert smtp_sink.received == []
