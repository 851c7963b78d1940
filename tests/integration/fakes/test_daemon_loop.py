"""The run loop in-process: cycles, wake-ups, termination, hooks, statuses.

``daemon.run`` runs in the main thread with an injected poll function (the
seam for tests); signals are sent to this very process, from inside the poll
function or from a timer thread, so every path is deterministic and fast.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from pyfetchmail.auth.credentials import Credentials, FixedSecret
from pyfetchmail.config.model import Config, Query, RunControl, Server, User
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.errors import AuthError
from pyfetchmail.service.cycle import MAX_TIMEOUTS, CycleRunner
from pyfetchmail.service.daemon import run


@dataclass(frozen=True)
class Ident:
    netrc: str
    pidfile: str
    idfile: str


@dataclass(frozen=True)
class Loaded:
    config: Config
    identity: Any
    rcfile: str = "-"
    rcfile_exists: bool = False
    warnings: tuple[str, ...] = ()


@dataclass
class Poller:
    """Records polls; *script* maps the poll number (1-based) to an action."""

    pidfile: str
    statuses: dict[int, int] = field(default_factory=dict)
    script: dict[int, Callable[[], None]] = field(default_factory=dict)
    calls: list[tuple[str, str | None, str]] = field(default_factory=list)

    def __call__(self, query: Query, credentials: Credentials) -> int:
        n = len(self.calls) + 1
        self.calls.append((query.label, credentials.secret(), Path(self.pidfile).read_text()))
        if n in self.script:
            self.script[n]()
        return self.statuses.get(n, 1)


def _self(signum: int) -> Callable[[], None]:
    return lambda: os.kill(os.getpid(), signum)


def _loaded(tmp_path: Path, *users: User, run_ctl: RunControl | None = None) -> Loaded:
    pidfile = str(tmp_path / ".fetchmail.pid")
    queries = tuple(Query(Server(f"host{i}"), u) for i, u in enumerate(users))
    run_ctl = run_ctl or RunControl()
    run_ctl = replace(run_ctl, pidfile=pidfile, idfile=str(tmp_path / ".fetchids"))
    return Loaded(
        Config(run=run_ctl, queries=queries),
        Ident(str(tmp_path / ".netrc"), pidfile, str(tmp_path / ".fetchids")),
    )


@pytest.fixture(autouse=True)
def _reset_logging() -> Any:
    yield
    root = logging.getLogger("pyfetchmail")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.NOTSET)


def test_single_run_polls_in_order_with_foreground_lock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = _loaded(tmp_path, User("a", password="pa"), User("b", password="pb"))
    poller = Poller(loaded.identity.pidfile, statuses={1: 2, 2: 1})
    status = run(loaded, CommandLineOptions(), poll=poller)
    pid = os.getpid()
    assert poller.calls == [("a@host0", "pa", f"{pid}\n"), ("b@host1", "pb", f"{pid}\n")]
    assert status == 1  # no success: the last query's status
    assert not os.path.exists(loaded.identity.pidfile)
    messages = [r.getMessage() for r in caplog.records]
    assert "Query status=2 (SOCKET)" in messages
    assert "Query status=1 (NOMAIL)" not in messages  # only at -vv


def test_any_success_makes_the_run_succeed(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, User("a", password="x"), User("b", password="y"))
    assert (
        run(
            loaded,
            CommandLineOptions(),
            poll=Poller(loaded.identity.pidfile, statuses={1: 0, 2: 3}),
        )
        == 0
    )


def test_nomail_status_is_logged_at_vv(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pyfetchmail")
    loaded = _loaded(tmp_path, User("a", password="x"))
    run(loaded, CommandLineOptions(verbose=2), poll=Poller(loaded.identity.pidfile))
    assert "Query status=1 (NOMAIL)" in [r.getMessage() for r in caplog.records]


def test_missing_password_fails_before_the_lock(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, User("a"))
    poller = Poller(loaded.identity.pidfile)
    with pytest.raises(AuthError, match="can't find a password for a@host0"):
        run(loaded, CommandLineOptions(), poll=poller, interactive=False)
    assert poller.calls == []
    assert not os.path.exists(loaded.identity.pidfile)


@pytest.mark.timeout(20)
def test_daemon_sigterm_mid_poll(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loaded = _loaded(tmp_path, User("a", password="x"))
    poller = Poller(loaded.identity.pidfile, statuses={1: 0})
    poller.script = {1: _self(signal.SIGUSR1), 2: _self(signal.SIGTERM)}
    opts = CommandLineOptions(daemon=3600, nodetach=True)
    status = run(loaded, opts, poll=poller)
    assert len(poller.calls) == 2
    assert poller.calls[0][2] == f"{os.getpid()}\n3600\n"  # daemon lock: PID + interval
    assert status == 0  # the last completed cycle
    messages = [r.getMessage() for r in caplog.records]
    assert "starting pyfetchmail 0.1.0 daemon" in messages[0]
    assert "terminated with signal 15" in messages
    assert not os.path.exists(loaded.identity.pidfile)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.timeout(20)
def test_wake_up_from_outside_while_sleeping(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = _loaded(tmp_path, User("a", password="x"))
    poller = Poller(loaded.identity.pidfile)
    timer = threading.Timer(0.3, _self(signal.SIGUSR1))
    poller.script = {1: timer.start, 2: _self(signal.SIGINT)}
    status = run(loaded, CommandLineOptions(daemon=3600, nodetach=True), poll=poller)
    assert len(poller.calls) == 2
    assert status == 1
    messages = [r.getMessage() for r in caplog.records]
    assert "awakened by signal 10" in messages
    assert "terminated with signal 2" in messages


@pytest.mark.timeout(20)
def test_stop_signal_while_sleeping(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loaded = _loaded(tmp_path, User("a", password="x"))
    poller = Poller(loaded.identity.pidfile, statuses={1: 0})
    timer = threading.Timer(0.3, _self(signal.SIGTERM))
    poller.script = {1: timer.start}
    assert run(loaded, CommandLineOptions(daemon=3600, nodetach=True), poll=poller) == 0
    assert len(poller.calls) == 1
    assert "terminated with signal 15" in [r.getMessage() for r in caplog.records]
    assert not os.path.exists(loaded.identity.pidfile)


def test_entry_interval_polls_every_nth_cycle(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, User("a", password="x"), User("b", password="y"))
    every3 = Query(Server("slow", interval=3), User("c", password="z"))
    config = Config(loaded.config.run, (*loaded.config.queries, every3))
    loaded = Loaded(config, loaded.identity)
    poller = Poller(loaded.identity.pidfile)
    # Each poll of "a" wakes the daemon at once; stop after 4 cycles.
    cycles = 0

    def wake_or_stop() -> None:
        nonlocal cycles
        cycles += 1
        os.kill(os.getpid(), signal.SIGTERM if cycles == 5 else signal.SIGUSR1)

    class ScriptedPoller(Poller):
        def __call__(self, query: Query, password: str | None) -> int:
            if query.user.remote == "a":
                wake_or_stop()
            return super().__call__(query, password)

    poller = ScriptedPoller(loaded.identity.pidfile)
    run(loaded, CommandLineOptions(daemon=3600, nodetach=True), poll=poller)
    polled = [label for label, _, _ in poller.calls]
    assert polled.count("c@slow") == 2  # cycles 1 and 4
    assert polled.count("a@host0") == 4  # the 5th poll of "a" was interrupted


def test_preconnect_failure_skips_the_poll(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "post-ran"
    loaded = _loaded(
        tmp_path,
        User("a", password="x", preconnect="exit 3"),
        User("b", password="y", postconnect=f"touch {marker}; exit 1"),
        User("c", password="z", preconnect="kill -TERM $$"),
    )
    poller = Poller(loaded.identity.pidfile, statuses={1: 0})
    status = run(loaded, CommandLineOptions(), poll=poller)
    assert [c[0] for c in poller.calls] == ["b@host1"]
    assert marker.exists()
    messages = [r.getMessage() for r in caplog.records]
    assert "pre-connection command failed with status 3" in messages
    assert "post-connection command failed with status 1" in messages
    assert "pre-connection command terminated with signal 15" in messages
    assert messages.count("Query status=5 (SYNTAX)") == 3
    assert status == 5


def test_engine_exception_is_isolated_to_its_query(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = _loaded(tmp_path, User("a", password="x"), User("b", password="y"))

    def poll(query: Query, password: str | None) -> int:
        if query.user.remote == "a":
            raise KeyError("bug")
        return 0

    assert run(loaded, CommandLineOptions(), poll=poll) == 0
    assert "Query status=23" in [r.getMessage() for r in caplog.records]


def test_refused_while_a_foreground_instance_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = _loaded(tmp_path, User("a", password="x"))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        Path(loaded.identity.pidfile).write_text(f"{other.pid}\n")
        poller = Poller(loaded.identity.pidfile)
        assert run(loaded, CommandLineOptions(), poll=poller) == 8
        assert poller.calls == []
        assert (
            f"another foreground pyfetchmail is running at {other.pid}." in capsys.readouterr().err
        )
        assert Path(loaded.identity.pidfile).read_text() == f"{other.pid}\n"
    finally:
        other.kill()
        other.wait(timeout=10)


# -- per-query bookkeeping: authentication notices, wedging ---------------------


def _runner(statuses: list[int], **kw: Any) -> tuple[Any, list[str]]:
    sent: list[str] = []
    it = iter(statuses)
    runner = CycleRunner(
        queries=(Query(Server("pop.example"), User("joe", password="x")),),
        credentials=(FixedSecret("x"),),
        poll=lambda _q, _p: next(it),
        notify=lambda _q, notice: sent.append(notice.subject),
        **kw,
    )
    return runner, sent


def test_auth_failure_notice_after_three_then_ok_notice() -> None:
    runner, sent = _runner([3, 3, 3, 3, 1, 3], daemon=True)
    for _ in range(3):
        runner.cycle()
    assert sent == ["fetchmail authentication failed on joe@pop.example"]
    runner.cycle()  # a 4th failure: no second notice
    runner.cycle()  # success
    assert sent[1:] == ["fetchmail authentication OK on joe@pop.example"]
    runner.cycle()
    assert len(sent) == 2  # once authenticated, it takes 10 failures


def test_after_a_success_it_takes_ten_failures() -> None:
    runner, sent = _runner([0, *([3] * 10)], daemon=True)
    for _ in range(10):
        runner.cycle()
    assert sent == []
    runner.cycle()
    assert sent == ["fetchmail authentication failed on joe@pop.example"]


def test_no_auth_notices_outside_daemon_mode() -> None:
    runner, sent = _runner([3] * 5, daemon=False)
    for _ in range(5):
        runner.cycle()
    assert sent == []


def test_repeated_timeouts_wedge_the_query_until_woken(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pyfetchmail")
    runner, sent = _runner([2] * (MAX_TIMEOUTS + 1), daemon=True, timed_out=lambda _q, _s: True)
    for _ in range(MAX_TIMEOUTS):
        runner.cycle()
    assert sent == ["fetchmail sees repeated timeouts"]
    assert runner.all_wedged
    assert runner.cycle() == 1  # nothing polled
    assert "poll of pop.example skipped (failed authentication or too many timeouts)" in (
        caplog.text
    )
    runner.unwedge()
    assert runner.cycle() == 2
