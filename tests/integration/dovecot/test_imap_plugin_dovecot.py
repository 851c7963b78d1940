"""``plugin`` for IMAP against the private Dovecot (spec §1.5, §7.6).

See also fakes/test_imap_plugin.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.dovecot.test_e2e_imap import imap_rc
from tests.integration.e2e_helpers import E2E, sample
from tests.integration.fakes.test_imap_plugin import relay_command

pytestmark = pytest.mark.timeout(90)


@pytest.mark.dovecot
@pytest.mark.parametrize("ssl", [False, True], ids=["starttls", "imaps"])
def test_console_script_fetches_through_plugin(
    tmp_path: Path, dovecot: Any, mailuser: Any, smtp_sink: Any, ssl: bool
) -> None:
    mailuser.deliver(sample(1))
    trace = tmp_path / "trace"
    e2e = E2E(tmp_path / "home")
    plugin = f'plugin "{relay_command(trace)}"'
    e2e.write_rc(imap_rc(dovecot, mailuser, smtp_port=smtp_sink.port, server_opts=plugin, ssl=ssl))
    run = e2e.pyfetchmail("-v")
    assert run.returncode == 0, run
    (got,) = smtp_sink.wait_for(1)
    assert got.mail_from == "sender1@remote.example"
    assert mailuser.messages() == []
    port = dovecot.imaps_port if ssl else dovecot.imap_port
    assert trace.read_text() == f"127.0.0.1 {port}\n"
    # Through a plugin the Received header cannot name the server's address.
    assert not got.data.startswith(b"Received: from 127.0.0.1 [127.0.0.1]")


@pytest.mark.dovecot
def test_plugin_tls_is_verified_against_the_server_name(
    tmp_path: Path, dovecot: Any, mailuser: Any
) -> None:
    mailuser.deliver(sample(1))
    e2e = E2E(tmp_path / "home")
    rc = imap_rc(
        dovecot, mailuser, smtp_port=1, server_opts=f'plugin "{relay_command(tmp_path / "t")}"'
    )
    e2e.write_rc(rc.replace("sslcommonname localhost", "sslcommonname wrong.example"))
    run = e2e.pyfetchmail()
    assert run.returncode == 2, run  # SOCKET: certificate name mismatch, nothing sent
    assert "wrong.example" in run.output
    assert len(mailuser.messages()) == 1
