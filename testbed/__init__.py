"""Test infrastructure for pyfetchmail: real mail servers on loopback.

Not installed with the package; tests, ``bench/`` and the demo import it from
the repository root (``pythonpath = .`` in setup.cfg).

- :mod:`testbed.dovecot`: a private, unprivileged Dovecot 2.3 (POP3, POP3S,
  IMAP, IMAPS, LMTP) with a trustme test CA and direct Maildir access.
- :mod:`testbed.sinks`: aiosmtpd SMTP/LMTP sinks with scripted replies, and a
  fast counting SMTP sink for benchmarks.
- :mod:`testbed.postfix`: helpers for the system Postfix on 127.0.0.1:25.
- :mod:`testbed.mailgen`: deterministic realistic test messages.
- :mod:`testbed.proxy`: a loopback TCP proxy that adds latency.
- :mod:`testbed.serving`: the start/stop lifecycle and background event loop
  the servers above share.

Every server binds 127.0.0.1 only.
"""

__all__: list[str] = []
