"""Benchmark: parse + merge an rc file with 1000 poll entries of 3 users each.

Targets (task "Foundation"): under 1 s and under 60 MB peak (tracemalloc).
Run: ``python bench/parse.py``.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc

from pyfetchmail.config.env import Identity
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.config.rcfile import build_config
from pyfetchmail.config.rcgrammar import parse_rc

__all__ = ["main", "make_rc"]

ENTRIES = 1000
USERS = 3
REPEAT = 5


def make_rc(entries: int = ENTRIES, users: int = USERS) -> str:
    """A realistic rc text: globals, defaults, then *entries* poll entries."""
    lines = ["set daemon 300", 'set postmaster "pm"', "defaults proto imap keep fetchlimit 50"]
    for i in range(entries):
        lines.append(f"poll mail{i}.example.com with proto pop3 port 995 uidl")
        lines.append(f"    aka alias{i}.example.com localdomains example{i}.org")
        for j in range(users):
            lines.append(
                f'    user "user{j}@example{i}.org" there with password "s3cr\\x41t{j}"'
                f" is local{j} here ssl sslcertck fetchall no keep limit 100000"
                f' smtphost localhost/2525 folder INBOX Archive mda "/usr/bin/procmail -d %T"'
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Print parse time and peak memory."""
    text = make_rc()
    ident = Identity(
        "bench",
        1000,
        "/home/bench",
        "/home/bench",
        "/home/bench/.fetchmailrc",
        "/home/bench/.fetchids",
        "/home/bench/.fetchmail.pid",
        "/home/bench/.netrc",
        "bench.example",
    )
    options = CommandLineOptions()
    parse_times, totals = [], []
    for _ in range(REPEAT):
        start = time.perf_counter()
        raw = parse_rc(text, "/home/bench/.fetchmailrc", "/home/bench")
        parsed = time.perf_counter()
        result = build_config(raw, options, ident, rcfile="/home/bench/.fetchmailrc")
        done = time.perf_counter()
        parse_times.append(parsed - start)
        totals.append(done - start)
    tracemalloc.start()
    raw = parse_rc(text, "/home/bench/.fetchmailrc", "/home/bench")
    build_config(raw, options, ident, rcfile="/home/bench/.fetchmailrc")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    queries = len(result.config.queries)
    print(f"rc size: {len(text) / 1024:.0f} KiB, {ENTRIES} entries, {queries} queries")
    print(
        f"best of {REPEAT}: parse {min(parse_times):.3f} s, total {min(totals):.3f} s; "
        f"median total {statistics.median(totals):.3f} s (target < 1 s)"
    )
    print(f"peak memory (tracemalloc): {peak / 2**20:.1f} MB (target < 60 MB)")


if __name__ == "__main__":
    main()
