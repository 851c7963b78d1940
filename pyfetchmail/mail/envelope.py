"""The envelope of one delivery: who the message is from and who it goes to.

It is computed from the message (:mod:`pyfetchmail.mail.prepare`) and used by
every sink (:mod:`pyfetchmail.delivery`), so it lives with the message, below
both.  Invariant: the sender ``""`` stands for the null sender ``<>``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Envelope"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """Envelope of one delivery: sender (``""`` for ``<>``) and RCPT addresses."""

    sender: str
    recipients: tuple[str, ...]
