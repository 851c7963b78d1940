"""The fetch engine's user-visible log lines, in fetchmail 6.4's wording.

Which lines appear depends on ``--verbose`` and ``--silent`` (fetchmail(1)).

Pure string builders, so their exact text is tested without a session.
fetchmail writes some of these lines piecewise (``reading message ...`` then
`` flushed`` after the DELE); pyfetchmail logs each one whole, once the
outcome is known: `` flushed`` only after the server confirmed the deletion.

Because a deletion may be confirmed several messages later (POP3 DELE
pipelined behind RETRs), :class:`PendingLines` holds each message's lines
until its outcome is known and releases them in message order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "PendingLines",
    "account_label",
    "count_line",
    "fetchlimit_line",
    "no_mail_line",
    "outcome_line",
    "reading_line",
    "skipping_line",
    "too_many_transient_line",
]


def account_label(remote: str, truename: str, folder: str | None) -> str:
    """``U at H`` plus `` (folder F)`` when folders were configured."""
    label = f"{remote} at {truename}"
    return f"{label} (folder {folder})" if folder else label


def count_line(count: int, seen: int, label: str, octets: int | None) -> str:
    """``N messages (S seen) for U at H (B octets).`` as fetchmail prints it.

    >>> count_line(3, 1, "joe at 127.0.0.1", None)
    '3 messages (1 seen) for joe at 127.0.0.1.'
    """
    noun = "message" if count == 1 else "messages"
    text = f"{count} {noun}"
    if seen > 0:
        text += f" ({seen} seen)"
    text += f" for {label}"
    return text + ("." if octets is None else f" ({octets} octets).")


def no_mail_line(label: str) -> str:
    return f"No mail for {label}"


def reading_line(
    remote: str, truename: str, number: int, count: int, size: int | None, suffix: str
) -> str:
    """``reading message U@H:n of N (S octets) flushed``."""
    octets = f" ({size} octets)" if size is not None else ""
    return f"reading message {remote}@{truename}:{number} of {count}{octets}{suffix}"


def skipping_line(
    remote: str, truename: str, number: int, size: int | None, *, oversized: bool, suffix: str
) -> str:
    """``skipping message U@H:n (S octets) (oversized) flushed``."""
    text = f"skipping message {remote}@{truename}:{number}"
    if size is not None and size > 0:
        text += f" ({size} octets)"
    if oversized:
        text += " (oversized)"
    return text + suffix


def fetchlimit_line(limit: int, left: int, truename: str, remote: str) -> str:
    """fetchmail 6.4.37's wording (verified; ngettext: ``1 message`` / ``2 messages``)."""
    noun = "message" if left == 1 else "messages"
    return f"fetchlimit {limit} reached; {left} {noun} left on server {truename} account {remote}"


def too_many_transient_line(count: int, label: str) -> str:
    return f"Too many mails skipped ({count} > 20) due to transient errors for {label}"


def outcome_line(
    *, remote: str, host: str, folder: str | None, uid: str | None, size: int | None,
    action: str, where: str,
) -> str:  # fmt: skip
    """One structured line per message outcome (answers getmail6 #80)."""
    return (
        f"message {remote}@{host} folder={folder or '-'} uid={uid or '-'} "
        f"size={size if size is not None else '-'}: {action}"
        + (f" (delivered to {where})" if where else "")
    )


@dataclass(slots=True)
class _Entry:
    key: object | None  # what the outcome is awaited for; None: no outcome awaited
    emit: Callable[[bool], None]
    flushed: bool | None = None


class PendingLines:
    """Per-message log output, released in message order once each outcome is known.

    :meth:`add` queues *emit* (called later with ``flushed``); with a *key*
    it waits for :meth:`resolve` of that key, without one it is ready (and
    logged at once when nothing before it is waiting).  Invariant: lines are
    emitted in the order they were added, each exactly once.
    """

    def __init__(self) -> None:
        self._queue: deque[_Entry] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, emit: Callable[[bool], None], key: object | None = None) -> None:
        """Queue *emit*; ready now (``flushed=False``) unless *key* awaits an outcome."""
        self._queue.append(_Entry(key, emit, None if key is not None else False))
        self.release()

    def resolve(self, key: object, flushed: bool) -> None:
        """Record the outcome for the oldest entry waiting on *key*, then release."""
        for entry in self._queue:
            if entry.flushed is None and entry.key == key:
                entry.flushed = flushed
                break
        self.release()

    def release(self) -> None:
        """Emit every ready entry at the head of the queue."""
        while self._queue and self._queue[0].flushed is not None:
            entry = self._queue.popleft()
            entry.emit(bool(entry.flushed))

    def abandon(self) -> None:
        """Emit everything left; outcomes never learned count as not flushed."""
        while self._queue:
            entry = self._queue.popleft()
            entry.emit(bool(entry.flushed))
