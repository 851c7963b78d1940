"""End-to-end demo: pyfetchmail fetches from a private Dovecot and delivers locally.

Run by ``sudo bash scripts/demo.sh`` (which runs setup.sh first), or from the
repository root with ``python3 -m testbed.demo``.

Steps: start a private Dovecot with five sample messages for user ``demo``;
write a ``.fetchmailrc`` (mode 0600) that polls it over POP3 with STLS
verified against the test CA; deliver through Postfix on port 25 to user
``pfmtest`` when Postfix runs, else through procmail into a Maildir; run
``pyfetchmail -f RC --idfile F --pidfile F -v``; show what landed and that the
server box is empty; stop Dovecot. Exit status 0 only when all five messages
were delivered and removed from the server.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import os
import poplib
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed.dovecot import Dovecot
from testbed.maildir import sorted_maildir_files
from testbed.mailgen import make_message
from testbed.postfix import POSTFIX_TEST_USER, maildir_of, postfix_running

__all__ = ["main"]

COUNT = 5


def _say(text: str) -> None:
    print(f"==> {text}", flush=True)


def _subject(raw: bytes) -> str:
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
    return str(headers.get("Subject", "(no subject)"))


def _server_count(dovecot: Dovecot, user: str, password: str) -> int:
    """Messages in the box as the server sees them (POP3 STAT over verified STLS)."""
    pop = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        pop.stls(ssl.create_default_context(cafile=str(dovecot.ca_file)))
        pop.user(user)
        pop.pass_(password)
        return int(pop.stat()[0])
    finally:
        pop.quit()


def _procmailrc(work: Path, maildir: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    rc = work / "procmailrc"
    # A trailing slash on DEFAULT makes procmail deliver in Maildir format.
    rc.write_text(f"MAILDIR={maildir}/\nDEFAULT={maildir}/\nLOGFILE={work}/procmail.log\n")
    os.chmod(rc, 0o600)
    return rc


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return 0 on a full, verified delivery."""
    parser = argparse.ArgumentParser(description="pyfetchmail end-to-end demo")
    parser.add_argument("--mda", action="store_true", help="use procmail even if Postfix runs")
    parser.add_argument("--keep-files", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    program = shutil.which("pyfetchmail")
    if program is None:
        print("demo: pyfetchmail is not installed (run scripts/setup.sh)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="pfm-demo-"))
    try:
        with Dovecot() as dovecot:
            return _run(dovecot, work, program, use_postfix=not args.mda and postfix_running())
    finally:
        if args.keep_files:
            _say(f"work files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _run(dovecot: Dovecot, work: Path, program: str, *, use_postfix: bool) -> int:
    password = secrets.token_urlsafe(12)
    user = dovecot.add_user("demo", password)
    for index in range(COUNT):
        user.deliver(make_message(index, 2_500 + 700 * index, seed=2024, to="demo@localhost"))
    _say(
        f"private Dovecot on {dovecot.host}: POP3 port {dovecot.pop3_port} (STLS), "
        f"{COUNT} messages for user 'demo' ({_server_count(dovecot, 'demo', password)} on server)"
    )

    if use_postfix:
        target = maildir_of(POSTFIX_TEST_USER)
        before = {p.name for p in sorted_maildir_files(target)}
        # fetchmail appends the SMTP host name to local recipients; Postfix
        # rejects "user@127.0.0.1", so name the domain (smtpaddress).
        delivery = "  smtphost 127.0.0.1/25 smtpaddress localhost\n"
        _say(f"delivering through Postfix on 127.0.0.1:25 to user {POSTFIX_TEST_USER} ({target})")
    else:
        target = work / "Maildir"
        before = set()
        rc_proc = _procmailrc(work, target)
        delivery = f'  mda "/usr/bin/procmail -m {rc_proc}"\n'
        _say(f"Postfix not used: delivering with procmail into {target}")

    rc = work / "fetchmailrc"
    fd = os.open(rc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(
            f"poll 127.0.0.1 with proto POP3 service {dovecot.pop3_port}\n"
            f'  user "demo" there with password "{password}" is "{POSTFIX_TEST_USER}" here\n'
            f"  sslcertfile {dovecot.ca_file} sslcommonname localhost\n" + delivery
        )
    shown = rc.read_text().replace(password, "********")
    _say(f"{rc} (mode 0600):\n{shown}")

    argv = [program, "-f", str(rc), "--idfile", str(work / "fetchids")]
    argv += ["--pidfile", str(work / "pyfetchmail.pid"), "-v"]
    _say("running: " + " ".join(argv))
    try:
        status = subprocess.run(argv, stdin=subprocess.DEVNULL, timeout=120, check=False)
        exit_code = status.returncode
    except subprocess.TimeoutExpired:
        exit_code = -1
    _say(f"pyfetchmail exited with status {exit_code}")

    landed = _wait_new(target, before, COUNT if use_postfix else 0)
    _say(f"{len(landed)} new message(s) in {target}:")
    for path in landed:
        print(f"    {path.name[:48]:48}  {_subject(path.read_bytes())}")
    left = _server_count(dovecot, "demo", password)
    _say(f"server box for 'demo' now holds {left} message(s)")

    if exit_code == 0 and len(landed) >= COUNT and left == 0:
        _say("demo OK: every message was delivered locally and removed from the server")
        return 0
    print(
        f"demo FAILED: pyfetchmail exit {exit_code}, delivered {len(landed)} of {COUNT}, "
        f"{left} left on the server (Dovecot log: {dovecot.log_path})",
        file=sys.stderr,
    )
    return 1


def _wait_new(maildir: Path, before: set[str], expect: int) -> list[Path]:
    """New messages in *maildir*; Postfix delivers asynchronously, so wait for *expect*."""
    deadline = time.monotonic() + (20 if expect else 0)
    while True:
        new = [p for p in sorted_maildir_files(maildir) if p.name not in before]
        if len(new) >= expect or time.monotonic() >= deadline:
            return new
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
