"""Pure decisions of the fetch engine: is a message new, fetch it, what to do after.

Nothing here performs I/O; the engine (:mod:`pyfetchmail.engine.poll`) executes.
The rules are fetchmail 6.4's (fetchmail(1): Disposal Options, RETRIEVAL
FAILURE MODES, ``--softbounce``) plus two documented improvements:

- a message this program delivered but whose deletion the server has not
  made durable (``pending``) is never delivered again; it is deleted on the
  next poll (fetchmail leaves it "deleted, but still present" forever);
- a bounce is sent at most once per message (fetchmail re-bounces a message
  kept by ``softbounce`` on every poll).

Decision rules, in the order :func:`classify` applies them:

1. ``pending`` → PENDING (delete now unless ``keep``; never fetched).
2. not ``fetchall`` and ``old`` → OLD (deleted only with ``flush``).
3. ``limit`` > 0 and the announced size > ``limit`` → OVERSIZED (not fetched,
   not marked seen; deleted only with ``limitflush``).
4. otherwise → NEW (fetch and deliver).

:func:`disposition` implements fetchmail's disposal rule (fetchmail(1),
Disposal Options): a message is deleted iff
none of (transient, retained, oversized without ``limitflush``, refused with
``softbounce``) and one of (processed and not ``keep``; old with ``flush``;
oversized with ``limitflush``).  Not deleted but processed with ``keep``
means MARK_SEEN.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "Action",
    "Fate",
    "Flags",
    "Selection",
    "bounce_reason",
    "classify",
    "disposition",
    "is_new_imap",
    "is_new_pop3",
]


class Selection(enum.Enum):
    """What the engine does with a listed message before fetching anything."""

    NEW = "new"  # fetch and deliver
    OLD = "old"  # seen before: skip (or flush)
    OVERSIZED = "oversized"  # over ``limit``: skip (or limitflush)
    PENDING = "pending"  # delivered by us, deletion not yet durable


class Fate(enum.Enum):
    """What happened to a message (fetchmail's per-message outcome)."""

    DELIVERED = "delivered"  # positively acknowledged by the sink
    REFUSED = "refused"  # permanent refusal (5xx, antispam, bad header, no recipient)
    TRANSIENT = "transient"  # 4xx, sink trouble, server error on fetch
    RETAINED = "retained"  # UW-IMAP X-IMAP pseudo message: never forwarded nor deleted
    OLD = "old"
    OVERSIZED = "oversized"
    PENDING = "pending"


class Action(enum.Enum):
    """What the engine does on the server after deciding a message's fate."""

    DELETE = "delete"  # POP3 DELE / IMAP STORE +FLAGS (\Seen \Deleted)
    MARK_SEEN = "mark_seen"  # IMAP STORE +FLAGS (\Seen); POP3 records the UID seen
    KEEP = "keep"  # leave it untouched, not marked seen


@dataclass(frozen=True, slots=True)
class Flags:
    """The user options that decide a message's disposition."""

    keep: bool = False
    flush: bool = False
    limitflush: bool = False
    softbounce: bool = True
    fetchall: bool = False
    limit: int = 0
    can_delete: bool = True  # the protocol supports deletion (POP3, IMAP)


def is_new_pop3(
    uid: str | None, seen: set[str], *, fetchall: bool, last_seen: bool | None = None
) -> bool:
    """POP3: new unless the UID is in the ``.fetchids`` seen list (or ``fetchall``).

    Without a UID (server lacks UIDL) the server's RFC 1725 ``LAST`` answer
    decides: *last_seen* is true for a message numbered up to it (old),
    false above it; ``None`` (no LAST either) means every message is new.
    """
    if fetchall:
        return True
    if uid is None:
        return not last_seen
    return uid not in seen


def is_new_imap(
    uid: str | None,
    flag_seen: bool | None,
    known: set[str],
    *,
    fetchall: bool,
    uid_mode: bool,
    baseline: bool,
) -> bool:
    """IMAP: is the message new?

    *known* are the UIDs recorded for the folder's current UIDVALIDITY.
    Default mode (fetchmail compatible): new iff not ``\\Seen`` and not
    *known*.  UID mode (``uidl`` on an IMAP query): new iff not *known*;
    but while no *baseline* exists (first pass, or UIDVALIDITY changed) fall
    back to ``\\Seen`` instead of refetching the whole folder blindly.
    """
    if fetchall:
        return True
    if uid is not None and uid in known:
        return False
    if uid_mode and baseline and uid is not None:
        return True
    return not flag_seen


def classify(*, new: bool, pending: bool, size: int | None, flags: Flags) -> Selection:
    """Decide what to do with a listed message (rules 1-4 of the module docstring)."""
    if pending:
        return Selection.PENDING
    if not new and not flags.fetchall:
        return Selection.OLD
    if flags.limit > 0 and size is not None and size > flags.limit:
        return Selection.OVERSIZED
    return Selection.NEW


def disposition(fate: Fate, flags: Flags) -> Action:
    """The server-side action for a message whose *fate* is known (fetchmail's disposal rule)."""
    if not flags.can_delete or fate in (Fate.TRANSIENT, Fate.RETAINED):
        return Action.KEEP
    if fate is Fate.REFUSED and flags.softbounce:
        # fetchmail(1) ``--softbounce``: treated like a temporary failure: left on
        # the server, not marked seen.
        return Action.KEEP
    if fate is Fate.OVERSIZED:
        return Action.DELETE if flags.limitflush else Action.KEEP
    if fate is Fate.OLD:
        return Action.DELETE if flags.flush else Action.KEEP
    # DELIVERED, REFUSED without softbounce, PENDING: processed.
    return Action.MARK_SEEN if flags.keep else Action.DELETE


def bounce_reason(
    code: int,
    *,
    spam: bool,
    spambounce: bool,
    already_bounced: bool,
) -> str | None:
    """Whether to bounce a refused message, and the reason text.

    fetchmail(1), RETRIEVAL FAILURE MODES, gives the cases.

    ``None`` means no bounce: the message was bounced before (our fix of the
    softbounce repeat-bounce), it is spam without ``spambounce``, or the
    reply is 553 (likely forged sender).
    """
    if already_bounced:
        return None
    if spam:
        if not spambounce:
            return None
        return "spam filter or virus scanner rejected message"
    if code == 552:
        return "This message was too large (SMTP error 552)."
    if code == 553:
        return None
    return "General SMTP/ESMTP error."
