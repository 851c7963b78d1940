"""Decision tables of pyfetchmail.engine.policy (spec §6.8, §6.3, §6.11), isync style."""

from __future__ import annotations

import pytest

from pyfetchmail.engine.policy import (
    Action,
    Fate,
    Flags,
    Selection,
    bounce_reason,
    classify,
    disposition,
    is_new_imap,
    is_new_pop3,
)

D, S, K = Action.DELETE, Action.MARK_SEEN, Action.KEEP

# fate, keep, flush, limitflush, softbounce -> action   (§6.8 steps 4-5)
DISPOSITION = [
    # processed and not keep -> delete
    (Fate.DELIVERED, False, False, False, True, D),
    (Fate.DELIVERED, True, False, False, True, S),
    (Fate.DELIVERED, True, True, False, True, S),  # flush does not override keep for new mail
    # refused: kept with softbounce (not even marked seen, §6.11), else processed
    (Fate.REFUSED, False, False, False, True, K),
    (Fate.REFUSED, True, False, False, True, K),
    (Fate.REFUSED, False, False, False, False, D),
    (Fate.REFUSED, True, False, False, False, S),
    # transient and retained: never touched
    (Fate.TRANSIENT, False, True, True, False, K),
    (Fate.TRANSIENT, True, False, False, True, K),
    (Fate.RETAINED, False, True, True, False, K),
    # old: only flush deletes
    (Fate.OLD, False, False, False, True, K),
    (Fate.OLD, False, True, False, True, D),
    (Fate.OLD, True, True, False, True, D),
    # oversized: only limitflush deletes
    (Fate.OVERSIZED, False, False, False, True, K),
    (Fate.OVERSIZED, False, True, False, True, K),
    (Fate.OVERSIZED, False, False, True, True, D),
    # pending (delivered earlier, deletion not durable): delete now unless keep
    (Fate.PENDING, False, False, False, True, D),
    (Fate.PENDING, True, False, False, True, S),
]


@pytest.mark.parametrize(
    ("fate", "keep", "flush", "limitflush", "softbounce", "action"), DISPOSITION
)
def test_disposition_table(
    fate: Fate, keep: bool, flush: bool, limitflush: bool, softbounce: bool, action: Action
) -> None:
    flags = Flags(keep=keep, flush=flush, limitflush=limitflush, softbounce=softbounce)
    assert disposition(fate, flags) is action


@pytest.mark.parametrize("fate", list(Fate))
def test_nothing_is_deleted_when_the_protocol_cannot(fate: Fate) -> None:
    flags = Flags(flush=True, limitflush=True, softbounce=False, can_delete=False)
    assert disposition(fate, flags) is Action.KEEP


# new, pending, size, fetchall, limit -> selection
CLASSIFY = [
    (True, False, 100, False, 0, Selection.NEW),
    (False, False, 100, False, 0, Selection.OLD),
    (False, False, 100, True, 0, Selection.NEW),  # fetchall: old is fetched too
    (True, True, 100, False, 0, Selection.PENDING),  # pending wins over everything
    (False, True, 100, True, 50, Selection.PENDING),
    (True, False, 101, False, 100, Selection.OVERSIZED),
    (True, False, 100, False, 100, Selection.NEW),  # limit is "larger than"
    (True, False, None, False, 100, Selection.NEW),  # unknown size is not oversized
    (False, False, 500, False, 100, Selection.OLD),  # old before oversized
    (False, False, 500, True, 100, Selection.OVERSIZED),
]


@pytest.mark.parametrize(("new", "pending", "size", "fetchall", "limit", "selection"), CLASSIFY)
def test_classify_table(
    new: bool, pending: bool, size: int | None, fetchall: bool, limit: int, selection: Selection
) -> None:
    flags = Flags(fetchall=fetchall, limit=limit)
    assert classify(new=new, pending=pending, size=size, flags=flags) is selection


def test_pop3_newness() -> None:
    seen = {"a", "b"}
    assert not is_new_pop3("a", seen, fetchall=False)
    assert is_new_pop3("c", seen, fetchall=False)
    assert is_new_pop3("a", seen, fetchall=True)
    assert is_new_pop3(None, seen, fetchall=False)  # no UIDL: everything is new


# uid, \Seen, known, fetchall, uid_mode, baseline -> new
IMAP_NEW = [
    ("5", False, set(), False, False, True, True),
    ("5", True, set(), False, False, True, False),  # fetchmail: \Seen is old
    ("5", False, {"5"}, False, False, True, False),  # we delivered it (crash before \Seen)
    ("5", True, {"5"}, True, False, True, True),  # fetchall
    ("5", True, set(), False, True, True, True),  # UID mode: \Seen by another client still new
    ("5", False, {"5"}, False, True, True, False),
    ("5", True, set(), False, True, False, False),  # UID mode without baseline: \Seen decides
    ("5", False, set(), False, True, False, True),
    (None, False, set(), False, True, True, True),  # no UID: \Seen decides
    (None, True, set(), False, True, True, False),
]


@pytest.mark.parametrize(
    ("uid", "flag", "known", "fetchall", "uid_mode", "baseline", "new"), IMAP_NEW
)
def test_imap_newness(
    uid: str | None,
    flag: bool,
    known: set[str],
    fetchall: bool,
    uid_mode: bool,
    baseline: bool,
    new: bool,
) -> None:
    got = is_new_imap(uid, flag, known, fetchall=fetchall, uid_mode=uid_mode, baseline=baseline)
    assert got is new


# code, spam, spambounce, already -> bounces?   (§6.3)
BOUNCE = [
    (550, False, False, False, "General SMTP/ESMTP error."),
    (552, False, False, False, "This message was too large (SMTP error 552)."),
    (553, False, False, False, None),  # likely forged sender: never bounced
    (554, True, False, False, None),  # antispam without spambounce
    (554, True, True, False, "spam filter or virus scanner rejected message"),
    (550, False, False, True, None),  # bounced once already: never again
    (554, True, True, True, None),
]


@pytest.mark.parametrize(("code", "spam", "spambounce", "already", "reason"), BOUNCE)
def test_bounce_table(
    code: int, spam: bool, spambounce: bool, already: bool, reason: str | None
) -> None:
    assert bounce_reason(code, spam=spam, spambounce=spambounce, already_bounced=already) == reason
