"""``plugout`` end to end with the private Dovecot (spec §6.2, §7.6); see fakes/test_plugout.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.sinks import SmtpSink
from tests.integration.e2e_helpers import E2E, pop3_rc, sample
from tests.integration.fakes.test_plugout import relay_command

pytestmark = pytest.mark.timeout(60)


@pytest.mark.dovecot
@pytest.mark.timeout(90)
def test_console_script_delivers_through_plugout(
    tmp_path: Path, dovecot: Any, mailuser: Any, smtp_sink: SmtpSink
) -> None:
    raw = sample(1)
    mailuser.deliver(raw)
    trace = tmp_path / "trace"
    e2e = E2E(tmp_path / "home")
    e2e.write_rc(
        pop3_rc(
            dovecot,
            mailuser,
            smtp_port=smtp_sink.port,
            server_opts=f'plugout "{relay_command(trace)}"',
        )
    )
    run = e2e.pyfetchmail()
    assert run.returncode == 0, run
    (got,) = smtp_sink.wait_for(1)
    assert got.mail_from == "sender1@remote.example"
    assert trace.read_text() == f"127.0.0.1 {smtp_sink.port}\n"
    assert mailuser.messages() == []
