"""``plugin`` for IMAP: the server reached through a command (spec §1.5, §7.6).

The command is ``tests/integration/tcp_relay.py %h %p TRACE``; pyfetchmail
bridges it to imapclient through :class:`pyfetchmail.net.relay.PluginRelay`.
STARTTLS (mandatory by default) and IMAPS run end to end through it and are
verified against the test CA under the server's name, not 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyfetchmail.errors import SocketError
from pyfetchmail.net.relay import PluginRelay

pytestmark = pytest.mark.timeout(90)

RELAY = Path(__file__).resolve().parent.parent / "tcp_relay.py"


def relay_command(trace: Path) -> str:
    return f"{sys.executable} {RELAY} %h %p {trace}"


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A loopback server that greets with ``hello`` and echoes one line."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(20)
            conn.sendall(b"hello\n")
            with contextlib.suppress(OSError):
                conn.sendall(conn.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(timeout=25)


def test_relay_serves_our_connection(echo_server: int, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    relay = PluginRelay(relay_command(trace), "127.0.0.1", echo_server, 10)
    with socket.create_connection(relay.address, timeout=10) as conn:
        assert conn.recv(100) == b"hello\n"
        conn.sendall(b"ping\n")
        assert conn.recv(100) == b"ping\n"
    relay.close()
    assert trace.read_text() == f"127.0.0.1 {echo_server}\n"


def test_relay_refuses_another_process(echo_server: int, tmp_path: Path) -> None:
    relay = PluginRelay(relay_command(tmp_path / "trace"), "127.0.0.1", echo_server, 10)
    intruder = subprocess.run(
        [
            sys.executable,
            "-c",
            "import socket, sys\n"
            f"s = socket.create_connection({relay.address!r}, timeout=10)\n"
            "sys.stdout.write(repr(s.recv(100)))\n",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert intruder.stdout == "b''", intruder  # closed at once, no greeting leaked
    with socket.create_connection(relay.address, timeout=10) as conn:
        assert conn.recv(100) == b"hello\n"
    relay.close()


def test_plugin_that_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(SocketError, match="cannot run plugin"):
        PluginRelay(str(tmp_path / "nothing-here") + " %h", "127.0.0.1", 143, 5)
