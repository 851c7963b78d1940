"""``interface`` and ``monitor`` (spec §1.5, §1.8, §7.2): the checks and the run-loop gate.

Interface checks run against the real ``lo`` (127.0.0.1/8 on every Linux);
monitor decisions use an injected counter reader, plus one check that real
loopback traffic moves ``lo``'s counter.
"""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path

import pytest

from pyfetchmail.config.model import Query, Server, User
from pyfetchmail.config.validate import check_interface
from pyfetchmail.errors import ConfigError
from pyfetchmail.exitcodes import ExitCode
from pyfetchmail.net.iface import (
    MONITOR_SETTLE_SECONDS,
    InterfaceSpec,
    MonitorState,
    PollGate,
    interface_ok,
    live_counter,
    parse_interface,
    read_ifinfo,
    traffic_counter,
)
from pyfetchmail.service.cycle import CycleRunner

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux interfaces"),
]


# -- interface -------------------------------------------------------------------------


def test_parse_masks_the_address() -> None:
    assert parse_interface("ppp0/10.1.2.3/255.255.0.0") == InterfaceSpec(
        "ppp0", 0x0A010000, 0xFFFF0000
    )
    assert parse_interface("lo/127.0.0.1") == InterfaceSpec("lo", 0x7F000001, 0xFFFFFFFF)


@pytest.mark.parametrize("spec", ["lo", "lo/", "lo/300.1.1.1", "lo/127.0.0.1/255.x"])
def test_parse_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match="IP interface"):
        parse_interface(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ppp0", "missing IP interface address"),
        ("ppp0/1.2.3.x", "invalid IP interface address"),
        ("ppp0/1.2.3.4/255.0.0.x", "invalid IP interface mask"),
    ],
)
def test_rc_validation_messages(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_interface(spec)


def test_read_loopback() -> None:
    info = read_ifinfo("lo")
    assert info is not None
    assert info.up
    assert info.address == 0x7F000001
    assert read_ifinfo("nosuch0") is None
    assert read_ifinfo("x" * 20) is None  # longer than IFNAMSIZ


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("lo/127.0.0.1/255.0.0.0", (True, "")),
        ("lo/127.0.0.1", (True, "")),
        ("lo/127.200.1.1/255.0.0.0", (True, "")),  # least specific address: 127/8
        ("lo/0.0.0.0/0.0.0.0", (True, "")),
        ("lo/10.0.0.1", (False, "IP address excluded")),
        ("lo/127.0.0.2", (False, "IP address excluded")),
        ("nosuch0/10.0.0.1", (False, "down")),
        ("garbage", (False, "down")),
    ],
)
def test_interface_ok_on_loopback(spec: str, expected: tuple[bool, str]) -> None:
    assert interface_ok(spec) == expected


# -- monitor ---------------------------------------------------------------------------


class Counters:
    """An injectable packet-counter reader."""

    def __init__(self, **values: int) -> None:
        self.values: dict[str, int] = dict(values)

    def __call__(self, name: str) -> int | None:
        return self.values.get(name)


def test_monitor_decision() -> None:
    counters = Counters(ppp0=100)
    state = MonitorState(read=counters)
    assert state.should_poll("ppp0", woken=False) == (True, "")  # nothing noted yet
    state.note("ppp0")
    assert state.should_poll("ppp0", woken=False) == (False, "inactive")
    assert state.should_poll("ppp0", woken=True) == (True, "")  # a wake-up signal
    counters.values["ppp0"] = 101
    assert state.should_poll("ppp0", woken=False) == (True, "")
    del counters.values["ppp0"]
    assert state.should_poll("ppp0", woken=False) == (False, "down")
    assert state.should_poll("ppp0", woken=True) == (False, "down")


def test_loopback_traffic_moves_the_counter() -> None:
    state = MonitorState()
    state.note("lo")
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname(), timeout=5) as client,
    ):
        conn, _ = server.accept()
        with conn:
            client.sendall(b"x")
            conn.settimeout(5)
            assert conn.recv(1) == b"x"
    assert state.should_poll("lo", woken=False) == (True, "")
    assert traffic_counter("nosuch0") is None


def test_counter_file_format(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.write_text(
        "Inter-|   Receive                            |  Transmit\n"
        " face |bytes packets errs drop fifo frame compressed multicast|bytes packets ...\n"
        "    lo:  500  7  0 0 0 0 0 0  500  7 0 0 0 0 0 0\n"
        "  ppp0: 9000 11  0 0 0 0 0 0 1200 13 0 0 0 0 0 0\n"
        "  bad0: 1\n"
    )
    assert traffic_counter("ppp0", str(dev)) == 24
    assert traffic_counter("lo", str(dev)) == 14
    assert traffic_counter("bad0", str(dev)) is None
    assert traffic_counter("p", str(dev)) is None


# -- the gate in the run loop ------------------------------------------------------------


def _query(name: str, **server: str) -> Query:
    return Query(Server(name, **server), User("joe"))  # type: ignore[arg-type]


def test_gate_logs_fetchmail_wording(caplog: pytest.LogCaptureFixture) -> None:
    gate = PollGate(monitor=MonitorState(read=Counters()), settle=0)
    caplog.set_level(logging.WARNING)  # shown even with --silent, as in fetchmail
    assert not gate.approve(_query("a.example", interface="lo/10.0.0.1"), woken=False)
    assert not gate.approve(_query("b.example", interface="nosuch0/1.2.3.4"), woken=False)
    assert not gate.approve(_query("c.example", monitor="ppp9"), woken=False)
    assert gate.approve(_query("d.example", interface="lo/127.0.0.1/255.0.0.0"), woken=False)
    assert gate.approve(_query("e.example"), woken=False)
    assert [r.getMessage() for r in caplog.records] == [
        "skipping poll of a.example, lo/10.0.0.1 IP address excluded",
        "skipping poll of b.example, nosuch0/1.2.3.4 down",
        "skipping poll of c.example, ppp9 down",
    ]


def test_gate_disabled_off_linux_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    gate = PollGate(enabled=False)
    for _ in range(2):
        assert gate.approve(_query("a.example", interface="nosuch0/1.2.3.4"), woken=False)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "only supported on Linux" in caplog.records[0].getMessage()


class Recorder:
    def __init__(self) -> None:
        self.polled: list[str] = []
        self.slept: list[float] = []

    def poll(self, query: Query, _password: str | None) -> int:
        self.polled.append(query.server.pollname)
        return int(ExitCode.SUCCESS)


def test_daemon_cycles_skip_an_inactive_link() -> None:
    counters = Counters(ppp0=5)
    rec = Recorder()
    gate = PollGate(monitor=MonitorState(read=counters), sleep=rec.slept.append)
    queries = (_query("mon.example", monitor="ppp0"), _query("plain.example"))
    runner = CycleRunner(queries, (None, None), rec.poll, daemon=True, gate=gate)

    assert runner.cycle() == ExitCode.SUCCESS
    assert rec.polled == ["mon.example", "plain.example"]
    assert rec.slept == [MONITOR_SETTLE_SECONDS]  # after the monitored poll only

    runner.cycle()  # no traffic since the poll: skipped
    assert rec.polled[2:] == ["plain.example"]

    counters.values["ppp0"] = 9  # traffic
    runner.cycle()
    assert rec.polled[3:] == ["mon.example", "plain.example"]

    runner.unwedge()  # what the daemon does on SIGUSR1: the monitor is not consulted
    runner.cycle()
    assert rec.polled[5:] == ["mon.example", "plain.example"]
    runner.cycle()  # the wake-up counts for one cycle only
    assert rec.polled[7:] == ["plain.example"]


def test_single_run_with_every_query_skipped_exits_0() -> None:
    rec = Recorder()
    gate = PollGate(monitor=MonitorState(read=Counters()), sleep=rec.slept.append)
    runner = CycleRunner((_query("a.example", interface="lo/10.0.0.1"),), (None,), rec.poll)
    runner.gate = gate
    assert runner.cycle() == ExitCode.SUCCESS
    assert rec.polled == []


def test_single_run_does_not_settle() -> None:
    rec = Recorder()
    gate = PollGate(monitor=MonitorState(read=Counters(ppp0=1)), sleep=rec.slept.append)
    runner = CycleRunner((_query("a.example", monitor="ppp0"),), (None,), rec.poll, gate=gate)
    runner.cycle()
    assert rec.polled == ["a.example"]
    assert rec.slept == []


def test_live_counter_needs_an_up_interface() -> None:
    assert live_counter("lo") is not None
    assert live_counter("nosuch0") is None
