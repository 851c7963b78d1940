"""The engine's context seams: the stop event, credentials asked at each connect,
and the one mapping from per-session counters to poll statistics."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from pyfetchmail.auth.credentials import Credentials, FixedSecret, as_credentials
from pyfetchmail.engine.poll import PollStats, poll_query
from pyfetchmail.engine.stats import Counters, OversizedMessage
from pyfetchmail.exitcodes import ExitCode
from pyfetchmail.protocols.base import MailSource
from tests.fakes.memory import FakeDelivery, FakeServer, FakeSource, Rig, make_query


def test_counters_freeze_into_poll_stats_field_by_field() -> None:
    names = {f.name for f in dataclasses.fields(Counters)}
    assert names <= {f.name for f in dataclasses.fields(PollStats)}
    big = OversizedMessage("INBOX", 3, "u3", 10_000, flushed=False)
    c = Counters(messages=5, new=4, fetched=3, delivered=2, refused=1, transient=1, deleted=2)
    c.oversized.append(big)
    c.uncommitted.update({"a", "b"})
    c.left.add("c")
    c.fetchlimit_reached, c.fetchlimit_left, c.split_pending = True, 7, True
    stats = c.freeze()
    assert stats == PollStats(
        messages=5, new=4, fetched=3, delivered=2, refused=1, transient=1, deleted=2,
        oversized=(big,), fetchlimit_reached=True, fetchlimit_left=7, split_pending=True,
        uncommitted=frozenset({"a", "b"}), present=None, left=frozenset({"c"}),
    )  # fmt: skip
    c.present = {"x"}
    assert c.freeze().present == frozenset({"x"})
    c.left.add("later")
    assert stats.left == frozenset({"c"})  # a frozen copy, not a view


def test_stop_event_ends_the_poll_after_the_message_in_flight(tmp_path: Path) -> None:
    server = FakeServer.with_messages(5)
    stop = threading.Event()

    class StopAfterFirst(FakeDelivery):
        def deliver(self, message, envelope):  # type: ignore[no-untyped-def]
            result = super().deliver(message, envelope)
            stop.set()  # as another thread would, while message 1 is being delivered
            return result

    r = Rig(server, StopAfterFirst(), str(tmp_path / "ids"))
    ctx = dataclasses.replace(r.context(), stop=stop)
    assert poll_query(make_query(), ctx) == ExitCode.SUCCESS
    assert len(r.delivery.accepted) == 1
    # The delivered message was deleted (QUIT committed); the rest wait for the next poll.
    assert server.remaining() == ["uid-2", "uid-3", "uid-4", "uid-5"]
    stop.clear()
    assert Rig(server, FakeDelivery(), str(tmp_path / "ids")).poll(make_query()) == 0
    assert server.remaining() == []


def test_credentials_are_asked_at_each_connect(tmp_path: Path) -> None:
    asked: list[int] = []

    class Counting:
        def secret(self) -> str | None:
            asked.append(1)
            return f"token-{len(asked)}"

    seen: list[str | None] = []
    server = FakeServer.with_messages(1)

    def factory(query: object, credentials: Credentials, ctx: object) -> MailSource:
        seen.append(credentials.secret())
        return FakeSource(server)

    r = Rig(server, FakeDelivery(), str(tmp_path / "ids"))
    ctx = dataclasses.replace(r.context(), credentials=Counting(), source_factory=factory)
    poll_query(make_query(), ctx)
    poll_query(make_query(), ctx)
    assert seen == ["token-1", "token-2"]


def test_plain_strings_are_fixed_secrets() -> None:
    assert as_credentials("pw").secret() == "pw"
    assert as_credentials(None).secret() is None
    fixed = FixedSecret("pw")
    assert as_credentials(fixed) is fixed
    assert "pw" not in repr(fixed)
