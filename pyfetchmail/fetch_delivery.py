"""One fetched message through prepare → deliver → bounce, to a :class:`~pyfetchmail.policy.Fate`.

:class:`MessageDelivery` is the delivery step of
:mod:`pyfetchmail.fetch_session`; what happens to the message on the server
afterwards is the caller's decision (:func:`pyfetchmail.policy.disposition`).
Invariants (the rules are those of :mod:`pyfetchmail.fetch`):

- Rule 1: only the sink's ``Outcome.ACCEPTED`` yields ``Fate.DELIVERED``
  (SMTP 250, LMTP 250 for every recipient, MDA exit 0); a temporary
  failure is ``TRANSIENT``, a permanent one or a prepare-time refusal
  ``REFUSED``.
- UW-IMAP's pseudo message (spec §5.2 step 12) is ``RETAINED``, never
  delivered.
- A refused message is bounced at most once: the bounce is recorded in the
  sidecar (:meth:`~pyfetchmail.fetch_state.FolderRecord.record_bounced`).
- The prepared copy is always closed; *msg* itself belongs to the caller.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pyfetchmail import policy
from pyfetchmail.delivery.base import DeliveryResult, Outcome
from pyfetchmail.fetch_state import FolderRecord
from pyfetchmail.fetch_types import BounceRequest, DeliverySink, MessageOrigin, PreparedLike
from pyfetchmail.message import SpooledMessage
from pyfetchmail.policy import Fate
from pyfetchmail.protocols.base import FolderListing, MailSession, MessageRef

if TYPE_CHECKING:
    from pyfetchmail.config.model import Query
    from pyfetchmail.fetch import PollContext

__all__ = ["MessageDelivery"]

log = logging.getLogger(__name__)


class MessageDelivery:
    """Prepare and deliver the messages of one session, bouncing refusals."""

    def __init__(
        self,
        session: MailSession,
        query: Query,
        ctx: PollContext,
        *,
        truename: str,
        sink: DeliverySink,
        record: FolderRecord,
    ) -> None:
        self.session, self.query, self.ctx = session, query, ctx
        self.truename, self.sink, self.record = truename, sink, record
        self.remote = query.user.remote
        self.imap = session.protocol_name.upper() == "IMAP"
        self._previous_digest: bytes | None = None  # multidrop duplicate check

    def deliver(
        self, ref: MessageRef, msg: SpooledMessage, listing: FolderListing
    ) -> tuple[Fate, DeliveryResult | None]:
        """The fate of *msg* (message *ref* of *listing*) and the sink's result, if any."""
        result: DeliveryResult | None = None
        prepared = self.ctx.prepare(
            msg, self.query, self.ctx, self._origin(listing), self._previous_digest
        )
        self._previous_digest = getattr(prepared, "header_digest", None) or None
        retained = bool(getattr(prepared, "retained", False))
        if ref.number == 1 and (retained or b"X-IMAP:" in msg.header_bytes()):
            if prepared.message is not msg:
                prepared.message.close()
            return Fate.RETAINED, None  # §5.2 step 12: UW-IMAP's internal pseudo message
        for warning in prepared.warnings:
            log.warning("%s", warning)
        try:
            if prepared.refused is not None:
                log.warning(
                    "message %s@%s:%d refused: %s",
                    self.remote, self.truename, ref.number, prepared.refused,
                )  # fmt: skip
                return Fate.REFUSED, None
            result = self.sink.get().deliver(prepared.message, prepared.envelope)
            fate = {
                Outcome.ACCEPTED: Fate.DELIVERED,
                Outcome.TEMPFAIL: Fate.TRANSIENT,
                Outcome.PERMFAIL: Fate.REFUSED,
            }[result.outcome]
            self._maybe_bounce(ref, prepared, result)
            return fate, result
        finally:
            if prepared.message is not msg:
                prepared.message.close()

    def _maybe_bounce(
        self, ref: MessageRef, prepared: PreparedLike, result: DeliveryResult
    ) -> None:
        if result.outcome is Outcome.PERMFAIL:
            code = result.code
        else:
            bad = [r for r in result.rejected_recipients if r.code >= 500]
            if result.outcome is not Outcome.ACCEPTED or not bad:
                return
            code = bad[0].code
        already = ref.uid is not None and self.record.was_bounced(ref.uid)
        reason = policy.bounce_reason(
            code, spam=result.spam, spambounce=self.ctx.run.spambounce, already_bounced=already
        )
        if reason is None:
            return
        self.ctx.bounce(
            BounceRequest(
                self.query,
                prepared.message,
                prepared.envelope,
                result,
                reason,
                self.ctx.fetchmailhost,
            ),
            self.ctx,
        )
        if ref.uid is not None:
            self.record.record_bounced(ref.uid)

    def _origin(self, listing: FolderListing) -> MessageOrigin:
        return MessageOrigin(
            server_truename=self.truename,
            # §5.1: with ``no dns`` fetchmail knows no server address (Received: omits it).
            server_address=self.session.peer_address if self.query.server.dns else None,
            protocol_name=self.session.protocol_name,
            fetchmailhost=self.ctx.fetchmailhost,
            pollname=self.query.server.pollname,
            remote=self.remote,
            folder=listing.folder if self.imap else None,
            folder_explicit=bool(self.query.user.mailboxes),
            invoking_user=getattr(self.ctx.identity, "user", None),
        )
