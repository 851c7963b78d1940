"""Fuzzing server replies: the only allowed outcomes are results or our errors.

A hostile IMAP server may send anything after the greeting; whatever it
sends to SELECT, the listing or the body fetch must end in a FolderListing,
messages, or a :class:`~pyfetchmail.errors.FetchmailError` — never another
exception (STYLE.md principle 5).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyfetchmail.config.model import MailProtocol, Query, Server, User
from pyfetchmail.errors import FetchmailError
from pyfetchmail.protocols.imap import ImapSource
from tests.fakes.fake_imap import DEFAULT_REPLIES, FakeImapServer

pytestmark = pytest.mark.timeout(120)

_TOKENS = [
    b"*",
    b"1",
    b"2",
    b"11",
    b"0",
    b"-1",
    b"x",
    b"FETCH",
    b"EXISTS",
    b"RECENT",
    b"SEARCH",
    b"UID",
    b"FLAGS",
    b"RFC822.SIZE",
    b"BODY[]",
    b"(",
    b")",
    b"()",
    b"NIL",
    b'"q"',
    b"{5}\r\nhello",
    b"{3}\r\n",
    b"{999999999999}",
    b"\\Seen",
    b"\\Deleted",
    b"OK",
    b"NO",
    b"BAD",
    b"BYE",
    b"[READ-ONLY]",
    b"[UIDVALIDITY",
    b"7]",
    b"{tag}",
    b"\xff",
]

_line = st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=10).map(
    lambda parts: b" ".join(parts) + b"\r\n"
)
_reply = st.lists(_line, min_size=0, max_size=5).map(
    lambda lines: b"".join(lines) + b"{tag} OK done\r\n"
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeImapServer]:
    with FakeImapServer(read_timeout=2.0) as server:
        yield server


def _query(fake: FakeImapServer) -> Query:
    server = Server("127.0.0.1", protocol=MailProtocol.IMAP, service=str(fake.port), timeout=1)
    return Query(server, User(remote="joe", sslproto="", sslcertck=False))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(command=st.sampled_from(["SELECT", "UID SEARCH", "UID FETCH"]), reply=_reply)
def test_fuzzed_replies_end_in_results_or_our_errors(
    fake: FakeImapServer, command: str, reply: bytes
) -> None:
    fake.replies = dict(DEFAULT_REPLIES)
    fake.replies[command] = reply
    session = ImapSource(_query(fake), "pw").open()
    try:
        listing = session.select(None)
        for _ref, msg in session.retrieve(listing.messages):
            msg.close()
    except FetchmailError:
        pass
    finally:
        with contextlib.suppress(FetchmailError):
            session.close(commit=False)
