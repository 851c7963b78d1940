"""``interface``/``monitor`` in the installed ``pyfetchmail`` daemon with Dovecot (spec §7.2).

The cases without a server are in fakes/test_daemon_iface.py.
"""

from __future__ import annotations

import socket
import sys
import time
from typing import Any

import pytest

from tests.integration.e2e_helpers import pop3_rc, sample
from tests.integration.fakes import test_daemon_iface as _fake_iface
from tests.integration.fakes.test_daemon_iface import Daemon, wait_for

daemon = _fake_iface.daemon  # the fixture, shared with fakes/test_daemon_iface.py

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux interfaces"),
]


def _make_loopback_traffic() -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname(), timeout=5) as client,
    ):
        conn, _ = server.accept()
        with conn:
            client.sendall(b"x")
            conn.settimeout(5)
            conn.recv(1)


@pytest.mark.dovecot
def test_monitored_daemon_polls_dovecot_after_traffic(
    daemon: Daemon, dovecot: Any, mailuser: Any, smtp_sink: Any
) -> None:
    mailuser.deliver(sample(1))
    daemon.write_rc(
        pop3_rc(
            dovecot,
            mailuser,
            smtp_port=smtp_sink.port,
            server_opts="interface lo/127.0.0.1 monitor lo",
        )
    )
    daemon.start("-d", "1", "-N", "-v")
    assert wait_for(lambda: len(smtp_sink.received) == 1), daemon.output
    mailuser.deliver(sample(2))  # on disk only: no loopback traffic
    # The settle delay (3 s) passes before the counter is noted; traffic made
    # after that makes the next cycle poll.
    assert wait_for(lambda: "sleeping at" in daemon.output, 15), daemon.output
    deadline = time.monotonic() + 30
    while len(smtp_sink.received) < 2 and time.monotonic() < deadline:
        _make_loopback_traffic()
        time.sleep(0.5)
    assert len(smtp_sink.received) == 2, daemon.output
    assert wait_for(lambda: mailuser.messages() == []), daemon.output  # the poll ended
    daemon.stop()
    assert daemon.output.count("poll completed") >= 2
    assert "IP address excluded" not in daemon.output
