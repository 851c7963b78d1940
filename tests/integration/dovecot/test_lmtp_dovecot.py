"""LMTP delivery to the real Dovecot LMTP (the sink cases are in fakes/test_lmtp_delivery.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyfetchmail.config.model import NameMapping, Query, Server, User
from pyfetchmail.delivery.base import Envelope, Outcome
from pyfetchmail.delivery.factory import make_delivery
from pyfetchmail.mail.message import SpooledMessage
from testbed.dovecot import Dovecot, MailUser
from tests.integration.fakes.test_lmtp_delivery import MSG, RUN

pytestmark = pytest.mark.timeout(60)


@pytest.mark.dovecot
def test_real_dovecot_lmtp(dovecot: Dovecot, mailuser: MailUser) -> None:
    q = Query(
        Server("pop.test"),
        User(
            "joe",
            smtphunt=(f"127.0.0.1/{dovecot.lmtp_port}",),
            lmtp=True,
            smtpaddress="localhost",
            localnames=(NameMapping(mailuser.name, mailuser.name),),
        ),
    )
    d = make_delivery(q, RUN, "vm", server_truename="pop.test")
    try:
        ok = d.deliver(
            SpooledMessage.from_bytes(MSG), Envelope("s@remote.example", (mailuser.name,))
        )
        bad = d.deliver(
            SpooledMessage.from_bytes(MSG), Envelope("s@remote.example", ("nosuchuser",))
        )
    finally:
        d.close()
    assert ok.outcome is Outcome.ACCEPTED
    assert bad.outcome is not Outcome.ACCEPTED
    messages = mailuser.messages()
    assert len(messages) == 1
    assert messages[0].endswith(b"Subject: lmtp\n\nbody\n")
    assert isinstance(mailuser.maildir, Path)
