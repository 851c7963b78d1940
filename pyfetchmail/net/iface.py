"""The ``interface`` and ``monitor`` poll gates (spec sections 1.5, 1.8, 7.2).

Responsibility: decide, before each poll, whether a query may be polled:

- ``interface iface/ip[/mask]``: the interface must exist, be up and have an
  IPv4 local address (or, on a point-to-point link, a peer address) inside
  ``ip/mask``; the mask defaults to 255.255.255.255 and, as in fetchmail, is
  applied to both sides ("least specific address").  Read with
  ``fcntl.ioctl`` (SIOCGIFFLAGS, SIOCGIFADDR, SIOCGIFDSTADDR); no external
  command is run.
- ``monitor iface``: skip the poll when the interface's packet counter
  (received + transmitted packets, ``/proc/net/dev``) has not changed since
  it was last noted, unless the daemon was woken by a signal.  The counter is
  noted after each poll of a query monitoring that interface (for every
  query monitoring it, as fetchmail does), after a short settle delay, so the
  poll's own traffic does not count as activity.

fetchmail's messages, shown even with ``--silent``:
``skipping poll of P, iface/ip down`` / ``... IP address excluded`` /
``skipping poll of P, iface inactive``.  A monitored interface that is
missing, down or without an IPv4 address is skipped silently by fetchmail;
we say ``skipping poll of P, iface down``.

Invariants: nothing here raises for a missing or strange interface (that is
a "skip", never a traceback); on systems other than Linux both options are
ignored with one warning.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyfetchmail.config.model import Query

__all__ = [
    "MONITOR_SETTLE_SECONDS",
    "IfInfo",
    "InterfaceSpec",
    "MonitorState",
    "PollGate",
    "interface_ok",
    "live_counter",
    "parse_interface",
    "read_ifinfo",
    "supported",
    "traffic_counter",
]

log = logging.getLogger(__name__)

#: fetchmail sleeps this long after polling a monitored server so that the
#: link's own after-traffic settles before the counter is noted.
MONITOR_SETTLE_SECONDS = 3.0

# <linux/sockios.h>, <net/if.h>
_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_SIOCGIFDSTADDR = 0x8917
_IFF_UP = 0x1
_IFF_POINTOPOINT = 0x10
_IFNAMSIZ = 16
_PROC_NET_DEV = "/proc/net/dev"

#: Reads the packet counter of an interface; ``None`` if it does not exist.
CounterReader = Callable[[str], "int | None"]


def supported() -> bool:
    """True where ``interface``/``monitor`` can be evaluated (Linux)."""
    return sys.platform.startswith("linux")


@dataclass(frozen=True, slots=True)
class InterfaceSpec:
    """A parsed ``interface`` value; *address* is already masked."""

    name: str
    address: int
    mask: int

    def matches(self, addr: int | None) -> bool:
        return addr is not None and addr & self.mask == self.address


def _aton(text: str) -> int:
    return int.from_bytes(socket.inet_aton(text), "big")


def parse_interface(spec: str) -> InterfaceSpec:
    """Parse ``iface/ip[/mask]`` (ValueError if malformed; the rc validator reports it).

    >>> parse_interface("ppp0/10.1.0.0/255.255.0.0")
    InterfaceSpec(name='ppp0', address=167837696, mask=4294901760)
    """
    name, slash, rest = spec.partition("/")
    if not slash:
        raise ValueError("missing IP interface address")
    address, has_mask, mask_text = rest.partition("/")
    try:
        ip = _aton(address)
        mask = _aton(mask_text) if has_mask else 0xFFFFFFFF
    except OSError:
        raise ValueError("invalid IP interface address or mask") from None
    return InterfaceSpec(name, ip & mask, mask)


@dataclass(frozen=True, slots=True)
class IfInfo:
    """What the kernel says about one interface."""

    up: bool
    address: int | None
    peer: int | None


def _ioctl(sock: socket.socket, request: int, name: bytes) -> bytes:
    # struct ifreq: 16-byte name, then a 24-byte union (sockaddr / flags).
    return fcntl.ioctl(sock.fileno(), request, struct.pack("16s24x", name))


def _sockaddr_in(reply: bytes) -> int:
    # sockaddr_in inside the union: family(2) port(2) addr(4)
    return int.from_bytes(reply[20:24], "big")


def read_ifinfo(name: str) -> IfInfo | None:
    """Flags and IPv4 addresses of interface *name*; ``None`` if it does not exist."""
    raw = name.encode("ascii", "replace")
    if not raw or len(raw) >= _IFNAMSIZ or b"\0" in raw:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            flags = struct.unpack_from("h", _ioctl(sock, _SIOCGIFFLAGS, raw), 16)[0]
        except OSError:
            return None
        address = peer = None
        try:
            address = _sockaddr_in(_ioctl(sock, _SIOCGIFADDR, raw))
        except OSError as exc:
            if exc.errno != errno.EADDRNOTAVAIL:  # EADDRNOTAVAIL: no IPv4 address
                log.debug("SIOCGIFADDR %s: %s", name, exc)
        if flags & _IFF_POINTOPOINT:
            with contextlib.suppress(OSError):
                peer = _sockaddr_in(_ioctl(sock, _SIOCGIFDSTADDR, raw))
    return IfInfo(up=bool(flags & _IFF_UP), address=address, peer=peer)


def interface_ok(spec: str) -> tuple[bool, str]:
    """May we poll under ``interface`` *spec*?  ``(True, "")`` or ``(False, reason)``.

    *reason* is fetchmail's wording: ``down`` (missing, not up, no IPv4
    address, or an unparsable spec) or ``IP address excluded``.
    """
    try:
        wanted = parse_interface(spec)
    except ValueError:
        return False, "down"
    info = read_ifinfo(wanted.name)
    if info is None or not info.up or info.address is None:
        return False, "down"
    if wanted.matches(info.address) or wanted.matches(info.peer):
        return True, ""
    return False, "IP address excluded"


def traffic_counter(name: str, path: str = _PROC_NET_DEV) -> int | None:
    """Received plus transmitted packets of interface *name*, or ``None``."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            lines = handle.readlines()
    except OSError:
        return None
    for line in lines[2:]:  # two header lines
        iface, colon, counters = line.partition(":")
        if not colon or iface.strip() != name:
            continue
        fields = counters.split()
        try:
            return int(fields[1]) + int(fields[9])  # rx packets, tx packets
        except (IndexError, ValueError):
            return None
    return None


def live_counter(name: str) -> int | None:
    """The packet counter of *name* if it is up with an IPv4 address, else ``None``.

    fetchmail reads a monitored interface like an ``interface`` one: a link
    that is down (or has no address yet) is not polled.
    """
    info = read_ifinfo(name)
    if info is None or not info.up or info.address is None:
        return None
    return traffic_counter(name)


@dataclass(slots=True)
class MonitorState:
    """Packet counters noted per monitored interface (fetchmail's ``monitor_io``).

    :param read: the counter reader, ``None`` meaning "down" (tests inject one).
    """

    read: CounterReader = live_counter
    noted: dict[str, int] = field(default_factory=dict)

    def should_poll(self, name: str, *, woken: bool) -> tuple[bool, str]:
        """``(True, "")``, or ``(False, "down"|"inactive")`` to skip the poll."""
        current = self.read(name)
        if current is None:
            return False, "down"
        if woken:
            return True, ""
        if self.noted.get(name) == current:
            return False, "inactive"
        return True, ""

    def note(self, name: str) -> None:
        """Remember the current counter of *name* (after a poll)."""
        current = self.read(name)
        if current is not None:
            self.noted[name] = current


@dataclass(slots=True)
class PollGate:
    """Applies ``interface`` and ``monitor`` around each poll of the run loop.

    :param monitor: the counters (with an injectable reader).
    :param settle: seconds to wait after polling a monitored server before
        noting its counter (fetchmail: 3; tests use 0).
    :param sleep: the sleep function.
    :param enabled: evaluate the options at all (default: on Linux).
    """

    monitor: MonitorState = field(default_factory=MonitorState)
    settle: float = MONITOR_SETTLE_SECONDS
    sleep: Callable[[float], None] = time.sleep
    enabled: bool = field(default_factory=supported)
    _warned: bool = False

    def approve(self, query: Query, *, woken: bool) -> bool:
        """True if *query* may be polled now; logs fetchmail's skip message otherwise."""
        server = query.server
        if not (server.interface or server.monitor):
            return True
        if not self.enabled:
            if not self._warned:
                self._warned = True
                log.warning("interface and monitor options are only supported on Linux; ignored")
            return True
        if server.interface:
            ok, reason = interface_ok(server.interface)
            if not ok:
                log.warning("skipping poll of %s, %s %s", server.pollname, server.interface, reason)
                return False
        if server.monitor:
            ok, reason = self.monitor.should_poll(server.monitor, woken=woken)
            if not ok:
                log.warning("skipping poll of %s, %s %s", server.pollname, server.monitor, reason)
                return False
        return True

    def polled(self, query: Query, *, daemon: bool) -> None:
        """After a poll: let a monitored link settle, then note its counter.

        Only in daemon mode: a single run never compares the counter again.
        """
        name = query.server.monitor
        if not (name and daemon and self.enabled):
            return
        if self.settle > 0:
            self.sleep(self.settle)
        self.monitor.note(name)
