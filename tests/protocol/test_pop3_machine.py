"""The sans-I/O POP3 machine fed byte transcripts (h11 style)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyfetchmail.errors import LocalProtocolError, RemoteProtocolError
from pyfetchmail.protocols.pop3 import (
    MAX_LINE,
    ConnectionClosed,
    Continuation,
    EndOfMessage,
    Err,
    Event,
    Greeting,
    ListingLine,
    MessageChunk,
    NeedData,
    Ok,
    Pop3Connection,
    parse_stat,
)

GREETING = b"+OK fake POP3 ready <1896.697170952@pop.test>\r\n"


def _drain(conn: Pop3Connection) -> list[Event]:
    """Read events until NeedData/ConnectionClosed; merge adjacent MessageChunks."""
    events: list[Event] = []
    while True:
        ev = conn.next_event()
        if isinstance(ev, NeedData):
            return events
        if isinstance(ev, MessageChunk) and events and isinstance(events[-1], MessageChunk):
            events[-1] = MessageChunk(events[-1].data + ev.data)
        else:
            events.append(ev)
        if isinstance(ev, ConnectionClosed):
            return events


def _feed(conn: Pop3Connection, pieces: Iterable[bytes]) -> list[Event]:
    events: list[Event] = []
    for piece in pieces:
        conn.receive_data(piece)
        for ev in _drain(conn):
            if isinstance(ev, MessageChunk) and events and isinstance(events[-1], MessageChunk):
                events[-1] = MessageChunk(events[-1].data + ev.data)
            else:
                events.append(ev)
    return events


def _splits(data: bytes) -> Iterable[list[bytes]]:
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for cut in range(1, len(data)):
        yield [data[:cut], data[cut:]]


# The message body of samples/pop3-server-view.txt, message 1, as sent (stuffed).
WIRE_BODY = (
    b"From: Sender <sender@remote.example>\r\n"
    b"Subject: first\r\n"
    b"\r\n"
    b"Hello one\r\n"
    b"..dot line\r\n"
    b"...\r\n"
    b".\r\n"
)
UNSTUFFED = (
    b"From: Sender <sender@remote.example>\r\n"
    b"Subject: first\r\n"
    b"\r\n"
    b"Hello one\r\n"
    b".dot line\r\n"
    b"..\r\n"
)


def test_session_transcript_at_every_split() -> None:
    server = (
        GREETING
        + b"+OK\r\nUIDL\r\nTOP\r\nUSER\r\n.\r\n"
        + b"+OK\r\n"
        + b"+OK message follows\r\n"
        + WIRE_BODY
        + b"+OK bye\r\n"
    )
    expected: list[Event] = [
        Greeting("fake POP3 ready <1896.697170952@pop.test>"),
        Ok("CAPA", ""),
        ListingLine("CAPA", "UIDL"),
        ListingLine("CAPA", "TOP"),
        ListingLine("CAPA", "USER"),
        EndOfMessage("CAPA"),
        Ok("DELE", ""),
        Ok("RETR", "message follows"),
        MessageChunk(UNSTUFFED),
        EndOfMessage("RETR"),
        Ok("QUIT", "bye"),
    ]
    for pieces in _splits(server):
        conn = Pop3Connection()
        for verb, args in (("CAPA", ()), ("DELE", ("1",)), ("RETR", ("1",)), ("QUIT", ())):
            conn.send_command(verb, *args)
        assert _feed(conn, pieces) == expected
        assert conn.closed
        assert conn.outstanding == ()


def test_pipelined_uidl_list_retr_in_order() -> None:
    conn = Pop3Connection()
    sent = b"".join(
        [
            conn.send_command("STAT"),
            conn.send_command("UIDL"),
            conn.send_command("LIST"),
            conn.send_command("RETR", "1"),
            conn.send_command("RETR", "2"),
        ]
    )
    assert sent == b"STAT\r\nUIDL\r\nLIST\r\nRETR 1\r\nRETR 2\r\n"
    events = _feed(
        conn,
        [
            GREETING,
            b"+OK 2 30\r\n+OK\r\n1 uid-a\r\n2 uid-b\r\n.\r\n+OK\r\n1 10\r\n2 20\r\n.\r\n",
            b"+OK\r\nabc\r\n.\r\n-ERR no such message\r\n",
        ],
    )
    assert events[1:] == [
        Ok("STAT", "2 30"),
        Ok("UIDL", ""),
        ListingLine("UIDL", "1 uid-a", 1, "uid-a"),
        ListingLine("UIDL", "2 uid-b", 2, "uid-b"),
        EndOfMessage("UIDL"),
        Ok("LIST", ""),
        ListingLine("LIST", "1 10", 1, "10"),
        ListingLine("LIST", "2 20", 2, "20"),
        EndOfMessage("LIST"),
        Ok("RETR", ""),
        MessageChunk(b"abc\r\n"),
        EndOfMessage("RETR"),
        Err("RETR", "no such message"),
    ]
    assert parse_stat("2 30") == (2, 30)


@pytest.mark.parametrize(
    ("wire", "body"),
    [
        (b".\r\n", b""),
        (b"x\n.\n", b"x\n"),  # bare-LF servers
        (b".\rx\r\n.\r\n", b"\rx\r\n"),
        (b"a.\r\n.b\r\n.\r\n", b"a.\r\nb\r\n"),
        (b"\r\n\r\n.\r\n", b"\r\n\r\n"),
        (b"no final newline.\r\n.\r\n", b"no final newline.\r\n"),
    ],
)
def test_message_framing_edge_cases(wire: bytes, body: bytes) -> None:
    for pieces in _splits(GREETING + b"+OK\r\n" + wire):
        conn = Pop3Connection()
        conn.send_command("RETR", "1")
        events = _feed(conn, pieces)
        chunks = b"".join(e.data for e in events if isinstance(e, MessageChunk))
        assert chunks == body
        assert events[-1] == EndOfMessage("RETR")


def test_body_streams_before_the_line_ends() -> None:
    conn = Pop3Connection()
    conn.send_command("RETR", "1")
    conn.receive_data(GREETING + b"+OK\r\nstart of a very long line")
    assert conn.next_event() == Greeting("fake POP3 ready <1896.697170952@pop.test>")
    assert conn.next_event() == Ok("RETR", "")
    assert conn.next_event() == MessageChunk(b"start of a very long line")
    assert isinstance(conn.next_event(), NeedData)


def test_sasl_exchange() -> None:
    conn = Pop3Connection()
    conn.receive_data(GREETING)
    assert isinstance(conn.next_event(), Greeting)
    assert conn.send_command("AUTH", "CRAM-MD5") == b"AUTH CRAM-MD5\r\n"
    with pytest.raises(LocalProtocolError):
        conn.send_command("NOOP")
    conn.receive_data(b"+ PDE4OTY+\r\n")
    assert conn.next_event() == Continuation("PDE4OTY+")
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    assert conn.send_sasl_response("dGlt") == b"dGlt\r\n"
    conn.receive_data(b"+OK welcome\r\n")
    assert conn.next_event() == Ok("AUTH", "welcome")
    with pytest.raises(LocalProtocolError):
        conn.send_sasl_response("x")


def test_stls_reply_followed_by_injected_data_is_rejected() -> None:
    conn = Pop3Connection()
    conn.send_command("STLS")
    conn.receive_data(GREETING + b"+OK begin TLS\r\n+OK injected\r\n")
    assert isinstance(conn.next_event(), Greeting)
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_nothing_after_quit_or_while_stls_outstanding() -> None:
    conn = Pop3Connection()
    conn.send_command("STLS")
    with pytest.raises(LocalProtocolError):
        conn.send_command("CAPA")
    conn.receive_data(GREETING + b"+OK\r\n")
    _drain(conn)
    conn.send_command("QUIT")
    conn.receive_data(b"+OK bye\r\n")
    assert conn.next_event() == Ok("QUIT", "bye")
    with pytest.raises(LocalProtocolError):
        conn.send_command("NOOP")


def test_command_arguments_are_checked_without_echoing_them() -> None:
    conn = Pop3Connection()
    with pytest.raises(LocalProtocolError) as info:
        conn.send_command("PASS", "hunter2\r\nDELE 1")
    assert "hunter2" not in str(info.value)
    assert conn.send_command("PASS", "pass with spaces") == b"PASS pass with spaces\r\n"


@pytest.mark.parametrize(
    "reply",
    [
        b"* OK IMAP here\r\n",
        b"+OK\r\n1 uid with spaces is fine\r\nx-not-a-number uid\r\n.\r\n",
        b"+OK\r\n1 " + b"u" * 513 + b"\r\n.\r\n",
        b"+OK\r\n1 uid\x01ctl\r\n.\r\n",
        b"+OK\r\n1\r\n.\r\n",
        b"+OK\r\n" + b"9" * 40 + b" uid\r\n.\r\n",
    ],
)
def test_malformed_replies_are_remote_errors(reply: bytes) -> None:
    conn = Pop3Connection()
    conn.send_command("UIDL")
    conn.receive_data(GREETING + reply)
    with pytest.raises(RemoteProtocolError):
        _drain(conn)


def test_uid_of_512_chars_is_accepted() -> None:
    conn = Pop3Connection()
    conn.send_command("UIDL")
    uid = "u" * 512
    events = _feed(conn, [GREETING, b"+OK\r\n1 " + uid.encode() + b"\r\n.\r\n"])
    assert ListingLine("UIDL", "1 " + uid, 1, uid) in events


def test_huge_status_line_is_bounded() -> None:
    conn = Pop3Connection()
    conn.receive_data(b"+OK " + b"x" * MAX_LINE)
    with pytest.raises(RemoteProtocolError, match="longer than"):
        conn.next_event()


def test_err_greeting_and_garbage_after_last_reply() -> None:
    conn = Pop3Connection()
    conn.receive_data(b"-ERR [IN-USE] try later\r\n")
    assert conn.next_event() == Err("", "[IN-USE] try later")
    conn2 = Pop3Connection()
    conn2.receive_data(GREETING + b"spurious\r\n")
    assert isinstance(conn2.next_event(), Greeting)
    with pytest.raises(RemoteProtocolError):
        conn2.next_event()


@pytest.mark.parametrize(
    "wire", [GREETING + b"+OK\r\npartial message", GREETING + b"+OK\r\n.", GREETING + b"+O"]
)
def test_eof_mid_reply_is_connection_closed(wire: bytes) -> None:
    conn = Pop3Connection()
    conn.send_command("RETR", "1")
    conn.receive_data(wire)
    conn.receive_data(b"")
    events = _drain(conn)
    assert events[-1] == ConnectionClosed()
    assert not any(isinstance(e, EndOfMessage) for e in events)


_COMMANDS = [
    ("CAPA", ()),
    ("UIDL", ()),
    ("LIST", ()),
    ("RETR", ("1",)),
    ("STAT", ()),
    ("UIDL", ("1",)),
]


@settings(max_examples=400, deadline=None)
@given(
    data=st.lists(
        st.one_of(
            st.binary(min_size=1, max_size=40),
            st.sampled_from(
                [b"+OK\r\n", b"-ERR x\r\n", b".\r\n", b"1 a\r\n", b"..\r\n", b"\r\n", b"+ \r\n"]
            ),
        ),
        max_size=20,
    ),
    verbs=st.lists(st.sampled_from(_COMMANDS), min_size=1, max_size=4),
    eof=st.booleans(),
)
def test_fuzz_only_events_or_remote_protocol_error(
    data: list[bytes], verbs: list[tuple[str, tuple[str, ...]]], eof: bool
) -> None:
    conn = Pop3Connection()
    for verb, args in verbs:
        conn.send_command(verb, *args)
    try:
        for piece in data:
            conn.receive_data(piece)
            if conn.outstanding or piece:
                _drain(conn)
        if eof:
            conn.receive_data(b"")
            if conn.outstanding:
                assert _drain(conn)[-1:] in ([ConnectionClosed()], [])
    except RemoteProtocolError:
        pass
