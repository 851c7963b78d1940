"""Protocol → mail source mapping (protocols.sources) and poll errors before a session."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyfetchmail.config.model import MailProtocol, RunControl
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.engine.poll import PollContext, poll_query
from pyfetchmail.errors import (
    AuthError,
    DNSError,
    RemoteProtocolError,
    ServerError,
    ServerLockBusy,
    SocketError,
)
from pyfetchmail.exitcodes import ExitCode
from pyfetchmail.protocols.sources import AutoSource, UnsupportedProtocolError, open_source
from pyfetchmail.state.uidstore import UidStore
from tests.fakes.memory import FakeDelivery, FakeServer, FakeSource, Rig, make_query


def _ctx() -> PollContext:
    return PollContext(
        run=RunControl(), options=CommandLineOptions(), identity=None, uidstore=UidStore(None)
    )


@pytest.mark.parametrize(
    "proto",
    [MailProtocol.POP2, MailProtocol.KPOP, MailProtocol.SDPS, MailProtocol.ETRN, MailProtocol.ODMR],
)
def test_unsupported_protocols_are_a_protocol_error(proto: MailProtocol) -> None:
    with pytest.raises(UnsupportedProtocolError, match=f"protocol {proto.value.upper()} is not"):
        open_source(make_query(proto), None)


def test_unsupported_protocol_poll_exits_4(caplog: pytest.LogCaptureFixture) -> None:
    ctx = PollContext(
        run=RunControl(),
        options=CommandLineOptions(),
        identity=None,
        uidstore=UidStore(None),
        resolve_truename=lambda q: q.server.queryname,
    )
    assert poll_query(make_query(MailProtocol.ETRN), ctx) == ExitCode.PROTOCOL
    assert "protocol ETRN is not supported by pyfetchmail" in caplog.text


def test_sources_map_to_the_drivers() -> None:
    pop = open_source(make_query(MailProtocol.POP3), "pw")
    imap = open_source(make_query(MailProtocol.IMAP, uidl=True), "pw")
    assert type(pop).__name__ == "Pop3Source"
    assert type(imap).__name__ == "ImapSource"
    assert isinstance(open_source(make_query(MailProtocol.AUTO), "pw"), AutoSource)


@pytest.mark.parametrize(
    ("error", "falls_through"),
    [
        (RemoteProtocolError("not an IMAP greeting"), True),
        (ServerError("BAD"), True),
        (SocketError("refused"), False),
        (AuthError("bad password"), False),
        (ServerLockBusy("locked"), False),
    ],
)
def test_auto_falls_back_to_pop3_only_on_protocol_level_failures(
    error: Exception, falls_through: bool
) -> None:
    pop3 = FakeSource(FakeServer.with_messages(1))
    auto = AutoSource(lambda: FakeSource(FakeServer(), error), lambda: pop3)
    if falls_through:
        assert auto.open().protocol_name == "POP3"
    else:
        with pytest.raises(type(error)):
            auto.open()
        assert pop3.sessions == []


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SocketError("connection refused"), ExitCode.SOCKET),
        (AuthError("bad password"), ExitCode.AUTHFAIL),
        (ServerLockBusy("[IN-USE] locked"), ExitCode.LOCKBUSY),
    ],
)
def test_open_errors_become_the_query_status(
    tmp_path: Path, error: Exception, status: ExitCode
) -> None:
    r = Rig(FakeServer.with_messages(1), FakeDelivery(), str(tmp_path / "ids"))
    ctx = r.context()
    source = FakeSource(r.server, error)
    ctx = PollContext(**{**_fields(ctx), "source_factory": lambda q, p, c: source})
    assert poll_query(make_query(), ctx) == status
    assert r.server.remaining() == ["uid-1"]


def test_dns_failure_is_status_11(tmp_path: Path) -> None:
    def no_dns(query: object) -> str:
        raise DNSError("couldn't find canonical DNS name of mail.example (mail.example): boom")

    r = Rig(FakeServer.with_messages(1), FakeDelivery(), str(tmp_path / "ids"))
    ctx = PollContext(**{**_fields(r.context()), "resolve_truename": no_dns})
    assert poll_query(make_query(), ctx) == ExitCode.DNS


def _fields(ctx: PollContext) -> dict[str, object]:
    return {name: getattr(ctx, name) for name in PollContext.__dataclass_fields__}
