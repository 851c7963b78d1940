"""Builders of the inputs the message-preparation tests share.

The sample is message 1 of ``shared/reference/samples/pop3-server-view.txt``
(fetchmail 6.4.37's own session); what fetchmail made of it is in the golden
outputs beside it (``smtp-listener-view.txt``, ``bounce-message-smtp-view.txt``).

Invariant: these values are the ones behind those golden files, and tests
compare byte-exact output against them: change nothing here without the
samples.
"""

from __future__ import annotations

from datetime import datetime

from pyfetchmail.config.model import NameMapping, Query, Server, User
from pyfetchmail.mail.prepare import TraceInfo

__all__ = ["SAMPLE_MESSAGE", "sample_query", "sample_trace"]

#: Message 1 of the sample as the POP3 layer hands it over, without its last
#: (dot-stuffed) line ``.dot line``.
SAMPLE_MESSAGE = (
    b"Return-Path: <sender@remote.example>\r\n"
    b"Received: from mx by pop.test for <joe@pop.test>; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"From: Sender <sender@remote.example>\r\n"
    b"To: joe\r\n"
    b"Subject: first\r\n"
    b"Message-ID: <m1@remote.example>\r\n"
    b"Status: RO\r\n"
    b"X-Mozilla-Status: 0001\r\n"
    b"Delivered-To: joe@pop.test\r\n"
    b"\r\n"
    b"Hello one\r\n"
)


def sample_query(**user_kw: object) -> Query:
    """The sample's query: user ``joe`` at 127.0.0.1, delivered to local ``alice``.

    *user_kw* are :class:`User` fields (``localnames`` defaults to alice);
    ``server`` is a dict of :class:`Server` fields.
    """
    server_kw = user_kw.pop("server", {})
    assert isinstance(server_kw, dict)
    user_kw.setdefault("localnames", (NameMapping("alice", "alice"),))
    return Query(Server("127.0.0.1", **server_kw), User("joe", **user_kw))  # type: ignore[arg-type]


def sample_trace(date: datetime | None = None) -> TraceInfo:
    """The sample's retrieval facts: POP3 from 127.0.0.1, fetchmail host ``vm``."""
    return TraceInfo("127.0.0.1", "127.0.0.1", "POP3", "vm", "127.0.0.1", "joe", None, False, date)
