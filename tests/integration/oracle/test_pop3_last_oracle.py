"""RFC 1725 ``LAST`` end to end, pyfetchmail and the fetchmail oracle against the scripted server.

The other cases are in fakes/test_pop3_last.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fake_pop3 import FakePop3Server
from tests.integration.e2e_helpers import E2E
from tests.integration.fakes.test_pop3_last import _mailbox, _rc

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize(
    ("opts", "delivered", "left"),
    [
        ("keep", 1, 3),  # only message 3 is new; nothing deleted
        ("", 1, 2),  # message 3 delivered and deleted; 1-2 (old) stay
        ("keep fetchall", 3, 3),
    ],
)
def test_e2e_last_decides_new_mail(
    tmp_path: Path, smtp_sink: Any, opts: str, delivered: int, left: int
) -> None:
    outcome: dict[str, tuple[int, int, int]] = {}
    runs: list[str] = []
    for prog in ("pyfetchmail", "fetchmail"):
        env = E2E(tmp_path / prog)
        with FakePop3Server(mailbox=_mailbox(), uidl_err=True, last=2) as srv:
            _rc(env, srv.port, smtp_sink.port, opts)
            before = len(smtp_sink.received)
            done = getattr(env, prog)()
            runs.append(str(done))
            outcome[prog] = (done.returncode, len(smtp_sink.received) - before, len(srv.mailbox))
            if prog == "pyfetchmail" and "fetchall" not in opts:
                assert "3 messages (2 seen) for joe at 127.0.0.1" in done.stdout, done
                got = smtp_sink.received[-1]
                assert b"Subject: e2e message 3" in got.data, done
    assert outcome["pyfetchmail"] == (0, delivered, left), "\n".join(runs)
    assert outcome["fetchmail"] == outcome["pyfetchmail"], "\n".join(runs)
