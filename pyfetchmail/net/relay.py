"""A loopback TCP endpoint bridged to a ``plugin`` command (for IMAP).

Why: imapclient's only way to talk to a program is ``IMAPClient(command,
stream=True)`` (imaplib's ``IMAP4_stream``): a shell, pipes, no read
timeout and no STARTTLS.  Its public API cannot take a socket either.  So
for IMAP the plugin runs as for POP3 (:func:`pyfetchmail.net.connect.open_plugin`:
``%h``/``%p`` substituted, no shell, stdin/stdout on a socketpair) and
:class:`PluginRelay` offers it on ``127.0.0.1:<ephemeral port>``; imapclient
connects there with its usual timeouts, and TLS (``ssl`` or STARTTLS) runs
end to end through the relay, verified against the real server name.

Invariants:

- Only a connection made by *this process* is relayed: the accepted peer's
  socket must be one of our own file descriptors (checked through
  ``/proc/net/tcp`` and ``/proc/self/fd``; Linux only).  Anything else that
  races to the port is closed, so no other local user reaches a
  pre-authenticated plugin session.
- One connection only; the listener is closed once it is accepted, or after
  *timeout* seconds without it.
- When one side finishes, the other gets a half-close and at most *timeout*
  seconds to finish too; then both sockets are closed and the plugin is
  reaped (killed if it lingers).  The relay thread never raises.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
import sys
import threading
import time

from pyfetchmail.errors import SocketError
from pyfetchmail.net.connect import open_plugin

__all__ = ["PluginRelay"]

log = logging.getLogger(__name__)

_LOOPBACK = "127.0.0.1"
_CHUNK = 65536


def _proc_tcp_key(port: int) -> str:
    # /proc/net/tcp prints the address as the native-endian integer of the
    # network-order bytes, and the port in host order.
    (raw,) = struct.unpack("=I", socket.inet_aton(_LOOPBACK))
    return f"{raw:08X}:{port:04X}"


def _is_own_connection(peer_port: int, listen_port: int) -> bool:
    """True if the TCP socket 127.0.0.1:*peer_port* → our listener is one of our fds."""
    local, remote = _proc_tcp_key(peer_port), _proc_tcp_key(listen_port)
    inode = None
    try:
        with open("/proc/net/tcp", encoding="ascii") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 9 and fields[1] == local and fields[2] == remote:
                    inode = fields[9]
                    break
        if inode is None:
            return False
        wanted = f"socket:[{inode}]"
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{name}") == wanted:
                    return True
    except OSError:
        return False
    return False


class PluginRelay:
    """Run *command* and relay one loopback TCP connection to it.

    :param command: the ``plugin`` string (``%h``, ``%p`` substituted).
    :param host: the server name for ``%h``.
    :param service: the service or port for ``%p``.
    :param timeout: seconds to wait for our connection, for a stalled write,
        and for the second side to finish after the first.
    """

    def __init__(self, command: str, host: str, service: str | int, timeout: float) -> None:
        if not sys.platform.startswith("linux"):
            raise SocketError(f"{host}: plugin connections for IMAP need Linux.")
        self.timeout = timeout
        self._plugin = open_plugin(command, host, service, timeout)
        try:
            self._listener = socket.create_server((_LOOPBACK, 0), backlog=1)
        except OSError as exc:
            self._plugin.close()
            raise SocketError(f"{host}: cannot set up the plugin relay: {exc}") from None
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._run, name=f"plugin relay {host}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop relaying now (used when the client never connected or gave up)."""
        for sock in (self._listener, self._plugin):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(timeout=self.timeout + 10)

    def _run(self) -> None:
        conn = None
        try:
            conn = self._accept()
            if conn is not None:
                self._pump(conn, self._plugin)
        except Exception:  # the thread must never die with a traceback
            log.debug("plugin relay failed", exc_info=True)
        finally:
            if conn is not None:
                conn.close()
            with contextlib.suppress(OSError):
                self._listener.close()
            self._plugin.close()  # reaps the plugin (killed after 5 s)

    def _accept(self) -> socket.socket | None:
        listen_port = self.address[1]
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            self._listener.settimeout(left)
            try:
                conn, peer = self._listener.accept()
            except OSError:  # timeout, or closed by close()
                return None
            if _is_own_connection(peer[1], listen_port):
                self._listener.close()
                conn.settimeout(self.timeout)
                return conn
            log.warning("plugin relay: refused a connection from another process")
            conn.close()
        return None

    def _pump(self, conn: socket.socket, plugin: socket.socket) -> None:
        other = {conn: plugin, plugin: conn}
        reading = [conn, plugin]
        deadline: float | None = None
        while reading:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return
            ready, _, _ = select.select(reading, [], [], wait)
            for src in ready:
                try:
                    data = src.recv(_CHUNK)
                    if data:
                        other[src].sendall(data)
                        continue
                except OSError:
                    pass
                # End of one direction: pass the half-close on (the peer sees EOF).
                reading.remove(src)
                with contextlib.suppress(OSError):
                    other[src].shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + self.timeout
