"""POP3 benchmark: fetchmail 6.4.37 against pyfetchmail on the same boxes.

Run from the repository root (as root, after ``scripts/setup.sh``)::

    python3 bench/pop3.py                 # everything, 1000 messages
    python3 bench/pop3.py --messages 200 --no-delay --programs pyfetchmail

Cases, each for every program: POP3 (STLS) → SMTP sink, POP3 → MDA
(``cat >/dev/null``), POP3S → SMTP sink; the same three through a proxy
adding 25 ms each way; and one 100 MB message (POP3 → SMTP) for peak RSS.
Prints a Markdown table and writes it to ``bench/results/pop3-<time>.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import Case, Result, markdown_table, run_case, self_rusage_note  # noqa: E402
from testbed.dovecot import Dovecot, MailUser  # noqa: E402
from testbed.mailgen import big_message, generate  # noqa: E402

__all__ = ["build_cases", "main"]


def build_cases(
    *, messages: int, programs: list[str], delay: float, with_delay: bool, big_mb: int
) -> list[Case]:
    """The benchmark matrix (see the module docstring)."""
    corpus = list(generate(messages, seed=0))

    def fill_corpus(user: MailUser) -> int:
        for raw in corpus:
            user.deliver(raw)
        return len(corpus)

    big = big_message(big_mb * 1_000_000) if big_mb else b""

    def fill_big(user: MailUser) -> int:
        user.deliver(big)
        return 1

    shapes = [
        ("pop3-smtp", "pop3", "smtp"),
        ("pop3-mda", "pop3", "mda"),
        ("pop3s-smtp", "pop3s", "smtp"),
    ]
    delays = [0.0, delay] if with_delay else [0.0]
    cases: list[Case] = []
    for wait in delays:
        for name, protocol, delivery in shapes:
            label = f"{name}+{int(wait * 1000)}ms" if wait else name
            for program in programs:
                cases.append(Case(label, program, protocol, delivery, fill_corpus, delay=wait))
    if big_mb:
        for program in programs:
            cases.append(Case(f"big-{big_mb}MB", program, "pop3", "smtp", fill_big, timeout=600))
    return cases


def main(argv: list[str] | None = None) -> int:
    """Run the matrix and print the table; exit 0 even when a program fails a case."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument(
        "--programs", default="fetchmail,pyfetchmail", help="comma-separated program names"
    )
    parser.add_argument("--delay-ms", type=float, default=25.0, help="proxy latency each way")
    parser.add_argument("--no-delay", action="store_true", help="skip the proxied cases")
    parser.add_argument("--big-mb", type=int, default=100, help="size of the big message (0: skip)")
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    args = parser.parse_args(argv)

    cases = build_cases(
        messages=args.messages,
        programs=[p for p in args.programs.split(",") if p],
        delay=args.delay_ms / 1000,
        with_delay=not args.no_delay,
        big_mb=args.big_mb,
    )
    cases = [c for c in cases if args.only in c.name]
    results: list[Result] = []
    with Dovecot() as dovecot, tempfile.TemporaryDirectory(prefix="pfm-bench-") as work:
        for case in cases:
            print(f"running {case.name} with {case.program} ...", file=sys.stderr, flush=True)
            result = run_case(dovecot, case, Path(work))
            results.append(result)
            print(markdown_table([result]).splitlines()[-1], file=sys.stderr, flush=True)
    table = markdown_table(results)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = (
        f"POP3 benchmark, {args.messages} messages, {stamp}; "
        f"MDA = `cat >/dev/null`; {self_rusage_note()}\n\n"
    )
    print(header + table)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"pop3-{time.strftime('%Y%m%d-%H%M%S')}.md").write_text(header + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
