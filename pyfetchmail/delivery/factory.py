"""Choose the delivery sink of a query (fetchmail(1): ``--bsmtp``, ``--mda``, ``--lmtp``).

Precedence: ``bsmtp`` > SMTP/LMTP to the ``smtphost`` hunt list (when no
``mda`` is set) > ``mda``.  Configuration problems found here (a quoted
``'%T'`` in the MDA string) raise :class:`ConfigError` before any message is
touched.
"""

from __future__ import annotations

from pyfetchmail.config.model import Query, RunControl
from pyfetchmail.delivery.base import Delivery
from pyfetchmail.delivery.bsmtp import BsmtpDelivery
from pyfetchmail.delivery.mda import MdaDelivery
from pyfetchmail.delivery.smtp import SmtpDelivery

__all__ = ["make_delivery"]


def make_delivery(
    query: Query, run: RunControl, fetchmailhost: str, *, server_truename: str
) -> Delivery:
    """Build the sink for *query*; *fetchmailhost* is our name for EHLO/LHLO."""
    user = query.user
    if user.bsmtp is not None:
        return BsmtpDelivery(query)
    if user.mda is None:
        return SmtpDelivery(query, run, fetchmailhost, server_truename=server_truename)
    return MdaDelivery(query, run)
