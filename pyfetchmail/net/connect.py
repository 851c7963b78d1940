"""Opening the connection to a mail server: TCP with timeouts, or a plugin command.

Invariants:

- Every socket returned has a timeout set (never blocking forever).
- Failures (unresolvable name included, as in fetchmail) raise
  :class:`~pyfetchmail.errors.SocketError` with fetchmail-like text naming
  host and service; no traceback escapes.
- Nothing here reads configuration beyond the arguments given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess

from pyfetchmail.errors import ConnectTimeout, SocketError

__all__ = ["DEFAULT_PORTS", "connect", "open_plugin", "resolve_port"]

log = logging.getLogger(__name__)

#: Fallback numbers when ``/etc/services`` lacks a name (minimal containers).
DEFAULT_PORTS: dict[str, int] = {
    "pop3": 110,
    "pop3s": 995,
    "imap": 143,
    "imap2": 143,
    "imaps": 993,
    "kpop": 1109,
    "smtp": 25,
    "smtps": 465,
    "submission": 587,
    "lmtp": 24,
    "odmr": 366,
}


def resolve_port(port_or_service: str | int) -> int:
    """Turn a port number or service name into a port number.

    Raises :class:`SocketError` for an unknown service name.
    """
    if isinstance(port_or_service, int):
        return port_or_service
    text = port_or_service.strip()
    if text.isdigit():
        return int(text)
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        pass
    if text.lower() in DEFAULT_PORTS:
        return DEFAULT_PORTS[text.lower()]
    raise SocketError(f"unknown service name {text!r}")


def connect(host: str, port_or_service: str | int, timeout: float | None) -> socket.socket:
    """Connect to *host* on *port_or_service* and return the connected socket.

    Every address from :func:`socket.getaddrinfo` is tried in order
    (``AI_ADDRCONFIG``); each attempt is bounded by *timeout*.  The socket
    gets SO_KEEPALIVE, TCP_NODELAY (commands go out in one write; Nagle
    would otherwise cost a delayed-ACK round per command) and *timeout* for
    every later read.
    """
    port = resolve_port(port_or_service)
    try:
        infos = socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG
        )
    except socket.gaierror as exc:
        # fetchmail reports this as a connection (socket) failure; exit 11 is
        # reserved for the canonical-name lookup done before connecting.
        raise SocketError(f"connection to {host} failed: {exc.strerror}") from None
    errors: list[str] = []
    timed_out = False
    for family, kind, proto, _canon, addr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            log.debug("Trying to connect to %s/%s...", addr[0], port)
            sock.connect(addr)
        except TimeoutError:
            sock.close()
            timed_out = True
            errors.append(
                f"timeout after {_seconds(timeout)} seconds waiting to connect to server {host}"
                f" [{addr[0]}/{port}]."
            )
            continue
        except OSError as exc:
            sock.close()
            errors.append(
                f"connection to {host}:{port} [{addr[0]}/{port}] failed: {exc.strerror or exc}."
            )
            continue
        _tune(sock)
        log.debug("connected to %s/%s", addr[0], port)
        return sock
    detail = " ".join(errors) if errors else "no usable address"
    if timed_out:
        raise ConnectTimeout(f"connection to {host} failed: {detail}")
    raise SocketError(f"connection to {host} failed: {detail}")


def _seconds(timeout: float | None) -> str:
    if timeout is None:
        return "?"
    return str(int(timeout)) if float(timeout).is_integer() else str(timeout)


def _tune(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PluginSocket(socket.socket):
    """Our end of the socketpair; reaps the plugin process when closed."""

    _proc: subprocess.Popen[bytes] | None = None

    def close(self) -> None:
        super().close()
        proc = self._proc
        if proc is not None:
            self._proc = None
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def open_plugin(
    command: str, host: str, service: str | int, timeout: float | None = None
) -> socket.socket:
    """Run ``plugin`` *command* and return a socket connected to its stdin/stdout.

    ``%h`` is replaced with *host* and ``%p`` with *service*; the result is
    split on white space (like fetchmail, without shell quoting) and executed
    directly (no shell).  The plugin's stderr is inherited.
    """
    argv = [part.replace("%h", host).replace("%p", str(service)) for part in command.split()]
    if not argv:
        raise SocketError(f"empty plugin command for {host}")
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=theirs.fileno(),
            stdout=theirs.fileno(),
            close_fds=True,
            start_new_session=False,
        )
    except OSError as exc:
        ours.close()
        theirs.close()
        raise SocketError(f"cannot run plugin {argv[0]!r} for {host}: {exc.strerror}") from None
    theirs.close()
    sock = _PluginSocket(fileno=os.dup(ours.fileno()))
    ours.close()
    sock._proc = proc
    sock.settimeout(timeout)
    log.debug("plugin %s started (pid %d)", argv[0], proc.pid)
    return sock
