"""``python3 tcp_relay.py HOST PORT [TRACE]``: a plugin/plugout command for tests.

Connects to HOST:PORT and relays between that connection and its own
stdin/stdout (the socketpair pyfetchmail gives a plugin), like ``nc``.  With
TRACE it appends its arguments to that file first, so a test can check the
``%h``/``%p`` substitution.  Every wait is bounded (60 s of silence ends it).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys

__all__ = ["main"]


def _close_stdout() -> None:
    # stdin and stdout are one socket: half-close it so the reader sees EOF.
    try:
        out = socket.socket(fileno=os.dup(1))
    except OSError:
        os.close(1)  # a pipe
        return
    with contextlib.suppress(OSError):
        out.shutdown(socket.SHUT_WR)
    out.close()
    os.close(1)


def main(argv: list[str]) -> int:
    host, port = argv[1], int(argv[2])
    if len(argv) > 3:
        with open(argv[3], "a", encoding="utf-8") as trace:
            trace.write(" ".join(argv[1:3]) + "\n")
    try:
        upstream = socket.create_connection((host, port), timeout=10)
    except OSError as exc:
        sys.stderr.write(f"tcp_relay: cannot connect to {host}:{port}: {exc}\n")
        return 1
    reading = {0: upstream.fileno(), upstream.fileno(): 1}
    while reading:
        ready, _, _ = select.select(list(reading), [], [], 60)
        if not ready:
            return 1
        for fd in ready:
            data = os.read(fd, 65536)
            dst = reading[fd]
            if not data:
                del reading[fd]
                if dst == 1:
                    _close_stdout()
                else:
                    upstream.shutdown(socket.SHUT_WR)
                continue
            view = memoryview(data)
            while view:
                view = view[os.write(dst, view) :]
    upstream.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
