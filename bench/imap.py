"""IMAP benchmark: fetchmail 6.4.37 against pyfetchmail on the same boxes.

Run from the repository root (as root, after ``scripts/setup.sh``)::

    python3 bench/imap.py                          # 1000 and 10000 messages, every case
    python3 bench/imap.py --sizes 200 --programs pyfetchmail --only imap-smtp
    python3 bench/imap.py --sizes 1000 --rc-extra "expunge 0" --no-baselines

Cases, each for every program and box size: IMAP (STARTTLS, verified) →
SMTP sink, IMAPS → SMTP sink, IMAP → MDA (``cat >/dev/null``).  Both
programs read the same rc file and delete what they fetched (fetchmail's
default ``expunge 1``); the box is refilled for every run.  Beside them two
baselines of the same box, run in this process:

- ``raw UID FETCH``: imaplib logs in over the same transport, ``UID SEARCH
  ALL``, then ``UID FETCH <500 UIDs> BODY.PEEK[]`` batches, pipelined two
  batches deep, delivering nothing: the server and network floor;
- ``sink``: one smtplib connection sending the same messages to the same
  fast sink: the delivery floor;
- with ``--expunge-floor``: ``UID STORE`` + ``UID EXPUNGE`` message by
  message, the server's own cost of the default ``expunge 1``.

Messages are small and realistic (``testbed.mailgen.make_message``, 1-8 KB,
1 % of 30-60 KB with a base64 attachment) so that 10,000 of them fit a
short run.  Prints a Markdown table and writes it to
``bench/results/imap-<time>.md``.
"""

from __future__ import annotations

import argparse
import imaplib
import os
import random
import re
import shutil
import smtplib
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    MDA_COMMAND,
    Case,
    Result,
    markdown_table,
    rc_text,
    run_program,
    self_rusage_note,
    write_private,
)
from testbed.dovecot import Dovecot, MailUser  # noqa: E402
from testbed.fastsink import FastSmtpSink  # noqa: E402
from testbed.mailgen import make_message  # noqa: E402

__all__ = ["Baseline", "corpus", "main", "raw_uid_fetch", "sink_time"]

SHAPES = (
    ("imap-smtp", "imap", "smtp"),
    ("imaps-smtp", "imaps", "smtp"),
    ("imap-mda", "imap", "mda"),
)
RAW_BATCH = 500
"""UIDs per ``UID FETCH`` of the raw baseline."""


def corpus(count: int, seed: int = 1) -> list[bytes]:
    """*count* small realistic messages, deterministic in *seed*."""
    rng = random.Random(f"imap-bench:{seed}")
    out = []
    for index in range(count):
        size = rng.randint(30_000, 60_000) if rng.random() < 0.01 else rng.randint(1_000, 8_000)
        out.append(make_message(index, size, seed=seed))
    return out


@dataclass(frozen=True, slots=True)
class Baseline:
    """A floor measured in this process: name, messages, octets, seconds."""

    name: str
    messages: int
    octets: int
    wall: float


def _imap_login(dovecot: Dovecot, user: MailUser, protocol: str) -> imaplib.IMAP4:
    context = ssl.create_default_context(cafile=str(dovecot.ca_file))
    client: imaplib.IMAP4
    if protocol == "imaps":
        client = imaplib.IMAP4_SSL(
            dovecot.host, dovecot.imaps_port, ssl_context=context, timeout=60
        )
    else:
        client = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=60)
        client.starttls(context)
    client.login(user.name, user.password)
    return client


_LITERAL = re.compile(rb"\{(\d+)\}\r\n")


def raw_uid_fetch(dovecot: Dovecot, user: MailUser, protocol: str) -> Baseline:
    """Fetch every body of *user*'s INBOX in big pipelined batches; deliver nothing.

    Talks to the socket directly (imaplib's parser is not the floor): each
    batch is one ``UID FETCH``; the next batch is sent before the previous
    one is read, so the server never waits for the client.
    """
    start = time.monotonic()
    client = _imap_login(dovecot, user, protocol)
    client.select("INBOX", readonly=True)
    _typ, data = client.uid("SEARCH", "ALL")
    uids = [int(u) for u in (data[0] or b"").split()]
    sock = client.socket()
    batches = [uids[i : i + RAW_BATCH] for i in range(0, len(uids), RAW_BATCH)]
    messages = octets = 0
    buf = bytearray()

    def send(n: int) -> None:
        chunk = batches[n]
        sock.sendall(b"R%d UID FETCH %d:%d BODY.PEEK[]\r\n" % (n, chunk[0], chunk[-1]))

    if batches:
        send(0)
    for n in range(len(batches)):
        if n + 1 < len(batches):
            send(n + 1)
        tag = b"R%d " % n
        pos = 0
        while True:
            # Parse what is buffered: skip literals, stop at the tagged reply.
            match = _LITERAL.search(buf, pos)
            tagged = buf.find(b"\r\n" + tag, pos)
            if buf.startswith(tag):
                tagged = -2
            if match is not None and (tagged == -1 or match.start() < tagged):
                size = int(match.group(1))
                end = match.end() + size
                if end > len(buf):
                    more = sock.recv(1 << 20)
                    if not more:
                        raise ConnectionError("server closed the connection")
                    buf += more
                    continue
                messages += 1
                octets += size
                pos = end
                continue
            if tagged != -1:
                line_end = buf.find(b"\r\n", tagged + 2)
                if line_end != -1:
                    del buf[: line_end + 2]
                    break
            more = sock.recv(1 << 20)
            if not more:
                raise ConnectionError("server closed the connection")
            buf += more
    client.logout()
    return Baseline(f"raw UID FETCH ({protocol})", messages, octets, time.monotonic() - start)


def store_expunge_each(dovecot: Dovecot, user: MailUser) -> Baseline:
    """``UID STORE +FLAGS.SILENT (\\Seen \\Deleted)`` then ``UID EXPUNGE``, message by message.

    The server's own cost of fetchmail's default ``expunge 1`` (no fetching):
    on Dovecot's Maildir each expunge grows with the size of the box.
    """
    start = time.monotonic()
    client = _imap_login(dovecot, user, "imap")
    client.select("INBOX")
    _typ, data = client.uid("SEARCH", "ALL")
    uids = (data[0] or b"").split()
    for uid in uids:
        client.uid("STORE", uid.decode(), "+FLAGS.SILENT", r"(\Seen \Deleted)")
        client.uid("EXPUNGE", uid.decode())
    client.logout()
    return Baseline("STORE+EXPUNGE each (imap)", len(uids), 0, time.monotonic() - start)


def sink_time(messages: list[bytes]) -> Baseline:
    """Send *messages* over one smtplib connection to a fresh fast sink."""
    with FastSmtpSink() as sink:
        start = time.monotonic()
        with smtplib.SMTP(sink.host, sink.port, timeout=60) as smtp:
            for raw in messages:
                smtp.sendmail("bench@example.org", ["root@localhost"], raw)
        sink.wait_for(len(messages), timeout=60)
        return Baseline(
            "sink (smtplib → fast sink)", len(messages), sink.octets, time.monotonic() - start
        )


def write_rc(
    path: Path, *, dovecot: Dovecot, user: MailUser, case: Case, sink_port: int, extra: str = ""
) -> None:
    """The rc file both programs read (mode 0600); *extra* adds user options."""
    port = dovecot.imaps_port if case.protocol == "imaps" else dovecot.imap_port
    ssl_opt = " ssl" if case.protocol == "imaps" else ""
    options = f'{ssl_opt} sslcertfile "{dovecot.ca_file}" sslcommonname localhost {extra}'
    write_private(
        path,
        rc_text(proto="IMAP", port=port, user=user, case=case, sink_port=sink_port,
                options=options),
    )  # fmt: skip


_counter = 0


def _new_user(dovecot: Dovecot, messages: list[bytes]) -> MailUser:
    global _counter
    _counter += 1
    user = dovecot.add_user(f"ib{os.getpid()}x{_counter}", "benchpw")
    for raw in messages:
        user.deliver(raw)
    return user


def run_case(
    dovecot: Dovecot, case: Case, messages: list[bytes], workdir: Path, extra: str = ""
) -> Result:
    """Fill a fresh box, run the program once, check the sink and the box."""
    result = Result(case)
    state = Path(tempfile.mkdtemp(prefix=f"{case.name}-", dir=workdir))
    user = _new_user(dovecot, messages)
    result.messages = len(messages)
    sink = FastSmtpSink()
    sink.start()
    try:
        rc = state / "fetchmailrc"
        write_rc(rc, dovecot=dovecot, user=user, case=case, sink_port=sink.port, extra=extra)
        run_program(result, rc, state, user=user, sink_messages=lambda: sink.messages)
    finally:
        sink.stop()
        shutil.rmtree(user.home, ignore_errors=True)
    return result


def baselines(
    dovecot: Dovecot, messages: list[bytes], *, expunge_floor: bool = False
) -> list[Baseline]:
    """The raw-fetch floors (IMAP and IMAPS), the sink floor, optionally the expunge floor."""
    out = []
    for protocol in ("imap", "imaps"):
        user = _new_user(dovecot, messages)
        try:
            out.append(raw_uid_fetch(dovecot, user, protocol))
        finally:
            shutil.rmtree(user.home, ignore_errors=True)
    out.append(sink_time(messages))
    if expunge_floor:
        user = _new_user(dovecot, messages)
        try:
            out.append(store_expunge_each(dovecot, user))
        finally:
            shutil.rmtree(user.home, ignore_errors=True)
    return out


def _baseline_table(rows: list[Baseline]) -> str:
    lines = ["| baseline | messages | MB | wall s | msg/s |", "| --- | ---: | ---: | ---: | ---: |"]
    for b in rows:
        lines.append(
            f"| {b.name} | {b.messages} | {b.octets / 1e6:.1f} | {b.wall:.2f} "
            f"| {b.messages / b.wall:.0f} |"
        )
    return "\n".join(lines)


def _report(results: list[Result], floors: list[Baseline]) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = f"IMAP benchmark, {stamp}; MDA = `{MDA_COMMAND}`; {self_rusage_note()}\n\n"
    return head + markdown_table(results) + "\n\n" + _baseline_table(floors) + "\n"


def _fill_unused(_user: MailUser) -> int:
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the matrix and print the tables; exit 0 even when a program fails a case."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated box sizes")
    parser.add_argument("--programs", default="fetchmail,pyfetchmail")
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument(
        "--expunge-floor", action="store_true", help="also time STORE+EXPUNGE per message"
    )
    parser.add_argument(
        "--rc-extra", default="", help='user options added to the rc, e.g. "expunge 0"'
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="per run, seconds")
    args = parser.parse_args(argv)
    programs = [p for p in args.programs.split(",") if p]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results: list[Result] = []
    floors: list[Baseline] = []
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    out_file = out_dir / f"imap-{time.strftime('%Y%m%d-%H%M%S')}.md"
    with Dovecot() as dovecot, tempfile.TemporaryDirectory(prefix="pfm-ibench-") as work:
        for size in sizes:
            made = time.monotonic()
            messages = corpus(size)
            octets = sum(len(m) for m in messages)
            print(
                f"corpus: {size} messages, {octets / 1e6:.1f} MB, "
                f"made in {time.monotonic() - made:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            if not args.no_baselines:
                for floor in baselines(dovecot, messages, expunge_floor=args.expunge_floor):
                    floors.append(floor)
                    print(_baseline_table([floor]).splitlines()[-1], file=sys.stderr, flush=True)
            for name, protocol, delivery in SHAPES:
                label = f"{name}-{size}" + (f" ({args.rc_extra})" if args.rc_extra else "")
                if args.only not in label:
                    continue
                for program in programs:
                    case = Case(label, program, protocol, delivery, _fill_unused,
                                timeout=args.timeout)  # fmt: skip
                    print(f"running {label} with {program} ...", file=sys.stderr, flush=True)
                    result = run_case(dovecot, case, messages, Path(work), args.rc_extra)
                    results.append(result)
                    print(markdown_table([result]).splitlines()[-1], file=sys.stderr, flush=True)

                    out_file.write_text(
                        _report(results, floors)
                    )  # partial results survive an interrupt
    text = _report(results, floors)
    print(text)
    out_file.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
