"""One fetched message through prepare → deliver → bounce, to a :class:`~.policy.Fate`.

:class:`MessageDelivery` is the delivery step of
:mod:`pyfetchmail.engine.session`; what happens to the message on the server
afterwards is the caller's decision (:func:`pyfetchmail.engine.policy.disposition`).
Invariants (the rules are those of :mod:`pyfetchmail.engine.poll`):

- Rule 1: only the sink's ``Outcome.ACCEPTED`` yields ``Fate.DELIVERED``
  (SMTP 250, LMTP 250 for every recipient, MDA exit 0); a temporary
  failure is ``TRANSIENT``, a permanent one or a prepare-time refusal
  ``REFUSED``.
- UW-IMAP's pseudo message ("DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL
  DATA") is ``RETAINED``, never delivered.
- A refused message is bounced at most once: the bounce is recorded in the
  sidecar (:meth:`~pyfetchmail.engine.record.FolderRecord.record_bounced`).
- The prepared copy is always closed; *msg* itself belongs to the caller.
"""

from __future__ import annotations

import logging

from pyfetchmail.config.model import Query
from pyfetchmail.delivery.base import DeliveryResult, Outcome
from pyfetchmail.engine import policy
from pyfetchmail.engine.context import DeliverySink, PollContext
from pyfetchmail.engine.policy import Fate
from pyfetchmail.engine.record import FolderRecord
from pyfetchmail.engine.stats import BounceRequest
from pyfetchmail.mail.message import SpooledMessage
from pyfetchmail.mail.prepare import PreparedMessage
from pyfetchmail.mail.trace import TraceInfo
from pyfetchmail.protocols.base import MessageRef

__all__ = ["MessageDelivery"]

log = logging.getLogger(__name__)


class MessageDelivery:
    """Prepare and deliver the messages of one session, bouncing refusals."""

    def __init__(
        self, query: Query, ctx: PollContext, sink: DeliverySink, record: FolderRecord
    ) -> None:
        self.query, self.ctx, self.sink, self.record = query, ctx, sink, record
        self._previous_digest: bytes | None = None  # multidrop duplicate check

    def deliver(
        self, ref: MessageRef, msg: SpooledMessage, origin: TraceInfo
    ) -> tuple[Fate, DeliveryResult | None]:
        """The fate of *msg* (message *ref*, from *origin*) and the sink's result, if any."""
        result: DeliveryResult | None = None
        prepared = self.ctx.prepare(msg, self.query, self.ctx, origin, self._previous_digest)
        self._previous_digest = getattr(prepared, "header_digest", None) or None
        retained = bool(getattr(prepared, "retained", False))
        if ref.number == 1 and (retained or b"X-IMAP:" in msg.header_bytes()):
            if prepared.message is not msg:
                prepared.message.close()
            return Fate.RETAINED, None  # UW-IMAP's internal pseudo message
        for warning in prepared.warnings:
            log.warning("%s", warning)
        try:
            if prepared.refused is not None:
                log.warning(
                    "message %s@%s:%d refused: %s",
                    origin.remote, origin.server_truename, ref.number, prepared.refused,
                )  # fmt: skip
                return Fate.REFUSED, None
            result = self.sink.get().deliver(prepared.message, prepared.envelope)
            fate = {  # Rule 1: only ACCEPTED is a positive acknowledgement
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
        self, ref: MessageRef, prepared: PreparedMessage, result: DeliveryResult
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
