"""The fetch engine against in-memory fakes: every rule of spec §6.8 and friends."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pyfetchmail.config.model import MailProtocol
from pyfetchmail.engine.poll import PollStats, poll_query, process_session
from pyfetchmail.engine.report import fetchlimit_line
from pyfetchmail.errors import ServerLockBusy, SmtpConnectError
from pyfetchmail.exitcodes import ExitCode
from pyfetchmail.mail.trace import TraceInfo
from pyfetchmail.state.uidstore import UidStore
from tests.fakes.memory import (
    FakeDelivery,
    FakeServer,
    FakeSession,
    FakeSource,
    Rig,
    make_message,
    make_query,
)


def rig(
    tmp_path: Path, server: FakeServer, delivery: FakeDelivery | None = None, **kw: object
) -> Rig:
    return Rig(server, delivery or FakeDelivery(), str(tmp_path / "fetchids"), **kw)  # type: ignore[arg-type]


def test_pop3_delivers_and_deletes_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    server = FakeServer.with_messages(3)
    r = rig(tmp_path, server)
    assert r.poll(make_query()) == ExitCode.SUCCESS
    assert server.remaining() == []
    assert len(r.delivery.accepted) == 3
    assert "3 messages for joe at mail.example (351 octets)." in caplog.messages
    assert "reading message joe@mail.example:1 of 3 (117 octets) flushed" in caplog.messages
    # Everything expunged: nothing left to remember, so no files (fetchmail deletes the idfile).
    assert list(tmp_path.iterdir()) == []


def test_no_mail(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    r = rig(tmp_path, FakeServer.with_messages(0))
    assert r.poll(make_query()) == ExitCode.NOMAIL
    assert "No mail for joe at mail.example" in caplog.messages


def test_pop3_keep_records_seen_and_does_not_refetch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    server = FakeServer.with_messages(3)
    r = rig(tmp_path, server)
    q = make_query(keep=True)
    assert r.poll(q) == ExitCode.SUCCESS
    assert server.remaining() == ["uid-1", "uid-2", "uid-3"]
    assert (tmp_path / "fetchids").read_text() == (
        "joe@mail.example uid-1\njoe@mail.example uid-2\njoe@mail.example uid-3\n"
    )
    assert "reading message joe@mail.example:2 of 3 (117 octets) not flushed" in caplog.messages
    server.add("INBOX", make_message(9), uid="uid-9")
    assert r.poll(q) == ExitCode.SUCCESS
    assert len(r.delivery.accepted) == 4
    assert "4 messages (3 seen) for joe at mail.example (468 octets)." in caplog.messages
    assert r.poll(q) == ExitCode.NOMAIL


def test_pop3_reads_a_fetchmail_written_idfile(tmp_path: Path) -> None:
    (tmp_path / "fetchids").write_text("JOE@Mail.Example uid-1\nothers@else.where x\n")
    server = FakeServer.with_messages(2)
    r = rig(tmp_path, server)
    assert r.poll(make_query(keep=True)) == ExitCode.SUCCESS
    assert r.delivery.accepted == [make_message(2)]
    assert (tmp_path / "fetchids").read_text() == (
        "joe@mail.example uid-1\njoe@mail.example uid-2\nothers@else.where x\n"
    )


def test_fetchall_keep_refetches(tmp_path: Path) -> None:
    server = FakeServer.with_messages(2)
    r = rig(tmp_path, server)
    q = make_query(keep=True, fetchall=True)
    r.poll(q)
    r.poll(q)
    assert len(r.delivery.accepted) == 4


def test_flush_deletes_old_messages(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    server = FakeServer.with_messages(2)
    r = rig(tmp_path, server)
    r.poll(make_query(keep=True))
    server.add("INBOX", make_message(3), uid="uid-3")
    assert r.poll(make_query(flush=True)) == ExitCode.SUCCESS
    assert server.remaining() == []
    assert len(r.delivery.accepted) == 3
    assert "skipping message joe@mail.example:1 (117 octets) flushed" in caplog.messages


def test_oversized_skipped_and_limitflush(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    server = FakeServer.with_messages(1)
    big = server.add("INBOX", make_message(2, b"x" * 500), uid="big")
    r = rig(tmp_path, server)
    assert r.poll(make_query(limit=200)) == ExitCode.SUCCESS
    assert server.remaining() == [big]
    assert (
        "skipping message joe@mail.example:2 (617 octets) (oversized) not flushed"
        in caplog.messages
    )
    assert r.poll(make_query(limit=200)) == ExitCode.NOMAIL  # still there, still skipped
    assert r.poll(make_query(limit=200, limitflush=True)) == ExitCode.NOMAIL
    assert server.remaining() == []
    assert "skipping message joe@mail.example:1 (617 octets) (oversized) flushed" in caplog.messages
    assert len(r.delivery.accepted) == 1


def test_fetchlimit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    server = FakeServer.with_messages(5)
    r = rig(tmp_path, server)
    q = make_query(fetchlimit=2)
    assert r.poll(q) == ExitCode.MAXFETCH
    assert (
        "fetchlimit 2 reached; 3 messages left on server mail.example account joe"
        in caplog.messages
    )
    assert server.remaining() == ["uid-3", "uid-4", "uid-5"]
    assert r.poll(q) == ExitCode.MAXFETCH
    assert r.poll(q) == ExitCode.SUCCESS  # the last one: limit not exceeded
    assert server.remaining() == []


def test_pop3_expunge_splits_sessions(tmp_path: Path) -> None:
    server = FakeServer.with_messages(5)
    r = rig(tmp_path, server)
    assert r.poll(make_query(expunge=2)) == ExitCode.SUCCESS
    assert server.remaining() == []
    assert server.sessions == 3
    assert server.log.count("quit") == 3


def test_fetchlimit_spans_expunge_sub_sessions(tmp_path: Path) -> None:
    server = FakeServer.with_messages(7)
    r = rig(tmp_path, server)
    assert r.poll(make_query(expunge=2, fetchlimit=5)) == ExitCode.MAXFETCH
    assert len(r.delivery.accepted) == 5
    assert server.sessions == 3
    assert server.remaining() == ["uid-6", "uid-7"]


def test_pop3_keep_does_not_split(tmp_path: Path) -> None:
    server = FakeServer.with_messages(5)
    r = rig(tmp_path, server)
    r.poll(make_query(expunge=2, keep=True))
    assert server.sessions == 1


@pytest.mark.parametrize(("expunge", "expunges"), [(None, 3), (1, 3), (2, 2), (0, 1)])
def test_imap_expunge_period(tmp_path: Path, expunge: int | None, expunges: int) -> None:
    server = FakeServer.with_messages(3, protocol="IMAP")
    r = rig(tmp_path, server)
    assert r.poll(make_query(MailProtocol.IMAP, expunge=expunge)) == ExitCode.SUCCESS
    assert server.log.count("expunge") == expunges  # expunge 0: once, at the end of the folder
    assert server.remaining() == []


def test_imap_keep_marks_seen_and_skips_seen(tmp_path: Path) -> None:
    server = FakeServer.with_messages(2, protocol="IMAP")
    server.add("INBOX", make_message(3), uid="read-elsewhere", seen=True)
    r = rig(tmp_path, server)
    q = make_query(MailProtocol.IMAP, keep=True)
    assert r.poll(q) == ExitCode.SUCCESS
    assert [m.seen for m in server.folders["INBOX"]] == [True, True, True]
    assert len(r.delivery.accepted) == 2  # fetchmail-compatible: \Seen is old
    assert r.poll(q) == ExitCode.NOMAIL


def test_imap_folders(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    server = FakeServer.with_messages(1, protocol="IMAP")
    server.add("Lists", make_message(5), uid="7")
    r = rig(tmp_path, server)
    assert r.poll(make_query(MailProtocol.IMAP, mailboxes=("INBOX", "Lists"))) == ExitCode.SUCCESS
    assert len(r.delivery.accepted) == 2
    assert "1 message for joe at mail.example (folder Lists) (117 octets)." in caplog.messages


def test_imap_uid_mode_fetches_mail_seen_by_other_clients(tmp_path: Path) -> None:
    server = FakeServer.with_messages(1, protocol="IMAP")
    server.add("INBOX", make_message(2), uid="old-read", seen=True)
    r = rig(tmp_path, server)
    q = make_query(MailProtocol.IMAP, uidl=True, keep=True)
    r.poll(q)  # baseline pass: \Seen decides, so "old-read" stays old
    assert r.delivery.accepted == [make_message(1)]
    server.add("INBOX", make_message(3), uid="phone-read", seen=True)
    assert r.poll(q) == ExitCode.SUCCESS
    assert r.delivery.accepted[-1] == make_message(3)  # fetchmail would miss it (§10.2.3)
    assert r.poll(q) == ExitCode.NOMAIL


def test_uidvalidity_change_falls_back_to_seen(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeServer.with_messages(2, protocol="IMAP")
    r = rig(tmp_path, server)
    q = make_query(MailProtocol.IMAP, uidl=True, keep=True)
    r.poll(q)
    server.uidvalidity["INBOX"] = 2000  # mailbox rebuilt: UIDs mean nothing now
    server.add("INBOX", make_message(3), uid="uid-3")
    assert r.poll(q) == ExitCode.SUCCESS
    assert r.delivery.accepted[2:] == [make_message(3)]  # no blind refetch of everything
    assert "UIDVALIDITY of folder INBOX" in caplog.text
    state = UidStore.load(r.idfile).folder_state("joe", "mail.example", "INBOX")
    assert state.uidvalidity == 2000
    assert state.delivered == {"uid-1", "uid-2", "uid-3"}


def test_softbounce_keeps_and_bounces_once(tmp_path: Path) -> None:
    server = FakeServer.with_messages(2)
    delivery = FakeDelivery(lambda d: (550, "no such user") if b"message 1" in d else (250, "ok"))
    r = rig(tmp_path, server, delivery)
    q = make_query()
    assert r.poll(q) == ExitCode.SUCCESS
    assert server.remaining() == ["uid-1"]  # kept by softbounce
    assert len(r.bounces) == 1
    assert r.bounces[0].reason == "General SMTP/ESMTP error."
    assert r.poll(q) == ExitCode.SUCCESS  # refetched (softbounce = temporary) ...
    assert len(r.bounces) == 1  # ... but never bounced again (fetchmail re-bounces)
    assert len(delivery.attempts) == 3


def test_no_softbounce_bounces_then_deletes(tmp_path: Path) -> None:
    server = FakeServer.with_messages(1)
    r = rig(tmp_path, server, FakeDelivery(lambda d: (550, "no")), softbounce=False)
    assert r.poll(make_query()) == ExitCode.SUCCESS
    assert server.remaining() == []
    assert len(r.bounces) == 1


@pytest.mark.parametrize(
    ("code", "spambounce", "bounces"), [(553, False, 0), (571, False, 0), (571, True, 1)]
)
def test_no_bounce_for_553_and_spam(
    tmp_path: Path, code: int, spambounce: bool, bounces: int
) -> None:
    delivery = FakeDelivery(lambda d: (code, "rejected"), antispam=(571,))
    r = rig(tmp_path, FakeServer.with_messages(1), delivery, spambounce=spambounce)
    r.poll(make_query())
    assert len(r.bounces) == bounces


def test_transient_failure_keeps_and_retries(tmp_path: Path) -> None:
    server = FakeServer.with_messages(2)
    replies = iter([(451, "try later"), (250, "ok"), (250, "ok")])
    r = rig(tmp_path, server, FakeDelivery(lambda d: next(replies)))
    q = make_query()
    assert r.poll(q) == ExitCode.SUCCESS  # fetchmail: fetched counts, not acknowledged
    assert server.remaining() == ["uid-1"]
    assert r.bounces == []
    r.poll(q)
    assert server.remaining() == []


def test_refused_by_preparation_is_kept_with_softbounce(tmp_path: Path) -> None:
    server = FakeServer.with_messages(2)
    r = rig(tmp_path, server, refuse=lambda d: "bad header" if b"message 2" in d else None)
    r.poll(make_query())
    assert server.remaining() == ["uid-2"]
    assert len(r.delivery.accepted) == 1


def test_many_transient_errors_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = rig(tmp_path, FakeServer.with_messages(21), FakeDelivery(lambda d: (421, "busy")))
    r.poll(make_query())
    assert (
        "Too many mails skipped (21 > 20) due to transient errors for joe at mail.example"
        in caplog.messages
    )


def test_per_message_server_error_skips_only_that_message(tmp_path: Path) -> None:
    server = FakeServer.with_messages(3, retr_errors={"uid-2"})
    r = rig(tmp_path, server)
    assert r.poll(make_query()) == ExitCode.SUCCESS
    assert server.remaining() == ["uid-2"]
    assert len(r.delivery.accepted) == 2


def test_connection_loss_keeps_what_was_recorded(tmp_path: Path) -> None:
    server = FakeServer.with_messages(3, drop_connection_at_uid="uid-3")
    r = rig(tmp_path, server)
    assert r.poll(make_query()) == ExitCode.SOCKET
    # No QUIT: RFC 1939 rolls the DELEs back, but the UIDs are recorded.
    assert server.remaining() == ["uid-1", "uid-2", "uid-3"]
    server.drop_connection_at_uid = None
    assert r.poll(make_query()) == ExitCode.SUCCESS
    assert server.remaining() == []
    assert len(r.delivery.accepted) == 3  # no duplicates


def test_listener_down_keeps_everything(tmp_path: Path) -> None:
    server = FakeServer.with_messages(2)
    r = rig(tmp_path, server, FakeDelivery(broken=SmtpConnectError("no listener")))
    assert r.poll(make_query()) == ExitCode.SMTP
    assert server.remaining() == ["uid-1", "uid-2"]


def test_check_mode_counts_without_fetching_or_writing(tmp_path: Path) -> None:
    server = FakeServer.with_messages(2)
    r = rig(tmp_path, server, check=True)
    assert r.poll(make_query()) == ExitCode.SUCCESS
    assert not any(e.startswith("retr") for e in server.log)
    assert list(tmp_path.iterdir()) == []
    r.poll(make_query(keep=True))
    assert (
        rig(tmp_path, FakeServer.with_messages(0), check=True).poll(make_query()) == ExitCode.NOMAIL
    )


def test_check_mode_imap_writes_no_state(tmp_path: Path) -> None:
    server = FakeServer.with_messages(2, protocol="IMAP")
    r = rig(tmp_path, server, check=True)
    assert r.poll(make_query(MailProtocol.IMAP, uidl=True)) == ExitCode.SUCCESS
    assert list(tmp_path.iterdir()) == []
    assert "expunge" not in server.log


def test_uw_imap_pseudo_message_is_retained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    server = FakeServer(protocol="POP3")
    server.add("INBOX", b"X-IMAP: 1234 5\r\nSubject: DON'T DELETE\r\n\r\nx\r\n", uid="pseudo")
    server.add("INBOX", make_message(2), uid="real")
    r = rig(tmp_path, server)
    r.poll(make_query())
    assert server.remaining() == ["pseudo"]
    assert r.delivery.accepted == [make_message(2)]
    assert any(m.endswith(" retained") for m in caplog.messages)


def test_delivery_opened_lazily_and_closed(tmp_path: Path) -> None:
    r = rig(tmp_path, FakeServer.with_messages(0))
    r.poll(make_query())
    assert r.delivery.closed == 0  # no mail: never connected to the listener
    r2 = rig(tmp_path, FakeServer.with_messages(1))
    r2.poll(make_query())
    assert r2.delivery.closed == 1


def test_poll_reports_oversized_messages_for_warnings(tmp_path: Path) -> None:
    server = FakeServer.with_messages(1)
    server.add("INBOX", make_message(2, b"x" * 500), uid="big")
    r = rig(tmp_path, server)
    seen: list[PollStats] = []
    ctx = r.context()
    ctx = dataclasses.replace(ctx, on_stats=lambda q, stats: seen.append(stats))
    poll_query(make_query(limit=200), ctx)
    assert len(seen) == 1
    assert seen[0].fetched == 1
    assert [(o.uid, o.size, o.flushed) for o in seen[0].oversized] == [("big", 617, False)]


def test_lockbusy_between_expunge_sub_sessions_is_retried(tmp_path: Path) -> None:
    server = FakeServer.with_messages(4)
    r = rig(tmp_path, server)
    ctx = r.context()
    source = r.source
    assert source is not None
    real_open = source.open
    opens = iter([real_open, None, None, real_open, real_open])
    naps: list[float] = []

    def flaky_open() -> FakeSession:
        step = next(opens)
        if step is None:
            raise ServerLockBusy("-ERR [IN-USE] mailbox locked")
        return step()

    source.open = flaky_open  # type: ignore[method-assign]
    ctx = dataclasses.replace(ctx, sleep=naps.append)
    assert poll_query(make_query(expunge=2), ctx) == ExitCode.SUCCESS
    assert server.remaining() == []
    assert naps == [3.0, 3.0]


def test_expunge_split_does_not_loop_on_messages_that_stay(tmp_path: Path) -> None:
    server = FakeServer.with_messages(5)
    # Messages 1 and 2 always get a 4xx: each sub-session must move on, not retry them.
    delivery = FakeDelivery(
        lambda d: (451, "later") if b"message 1" in d or b"message 2" in d else (250, "ok")
    )
    r = rig(tmp_path, server, delivery)
    assert r.poll(make_query(expunge=2)) == ExitCode.SUCCESS
    assert server.remaining() == ["uid-1", "uid-2"]
    assert len(delivery.attempts) == 5


def test_fetchlimit_line_singular() -> None:
    assert (
        fetchlimit_line(2, 1, "h", "u")
        == "fetchlimit 2 reached; 1 message left on server h account u"
    )


@pytest.mark.parametrize(("dns", "address"), [(True, "127.0.0.1"), (False, None)])
def test_origin_has_no_server_address_with_no_dns(
    tmp_path: Path, dns: bool, address: str | None
) -> None:
    origins: list[TraceInfo] = []
    r = rig(tmp_path, FakeServer.with_messages(1))
    ctx = r.context()
    real = ctx.prepare

    def spy(msg: Any, query: Any, c: Any, origin: TraceInfo, prev: bytes | None) -> Any:
        origins.append(origin)
        return real(msg, query, c, origin, prev)

    query = make_query()
    query = dataclasses.replace(query, server=dataclasses.replace(query.server, dns=dns))
    poll_query(query, dataclasses.replace(ctx, prepare=spy))
    assert [o.server_address for o in origins] == [address]
    assert origins[0].protocol_name == "POP3"
    assert origins[0].pollname == "mail.example"


def test_empty_listing_does_not_forget_kept_uids(tmp_path: Path) -> None:
    server = FakeServer.with_messages(2)
    r = rig(tmp_path, server)
    q = make_query(keep=True)
    r.poll(q)
    saved = server.folders["INBOX"]
    server.folders["INBOX"] = []  # the server glitches: an empty maildrop
    assert r.poll(q) == ExitCode.NOMAIL
    server.folders["INBOX"] = saved
    assert r.poll(q) == ExitCode.NOMAIL  # nothing refetched
    assert len(r.delivery.accepted) == 2


def test_gone_uids_are_pruned(tmp_path: Path) -> None:
    server = FakeServer.with_messages(2)
    r = rig(tmp_path, server)
    q = make_query(keep=True)
    r.poll(q)
    server.folders["INBOX"].pop(0)  # deleted by another client
    r.poll(q)
    assert (tmp_path / "fetchids").read_text() == "joe@mail.example uid-2\n"


def test_process_session_on_an_open_session_for_idle(tmp_path: Path) -> None:
    server = FakeServer.with_messages(2, protocol="IMAP")
    r = rig(tmp_path, server)
    ctx = r.context()
    session = FakeSource(server).open()
    stats = process_session(session, make_query(MailProtocol.IMAP), ctx, truename="imap.example")
    assert (stats.fetched, stats.delivered, stats.deleted) == (2, 2, 2)
    assert server.remaining() == []  # expunged inside, the session stays open
    assert not session.closed
    assert r.delivery.closed == 1  # SMTP closed before the caller IDLEs
    server.add("INBOX", make_message(3), uid="uid-3")
    assert process_session(session, make_query(MailProtocol.IMAP), ctx).delivered == 1


def test_fetchlimit_spans_imap_folders(tmp_path: Path) -> None:
    server = FakeServer.with_messages(2, protocol="IMAP")
    server.add("Other", make_message(7), uid="7")
    server.add("Other", make_message(8), uid="8")
    r = rig(tmp_path, server)
    q = make_query(MailProtocol.IMAP, mailboxes=("INBOX", "Other"), fetchlimit=3)
    assert r.poll(q) == ExitCode.MAXFETCH
    assert len(r.delivery.accepted) == 3
    assert server.remaining("Other") == ["8"]
