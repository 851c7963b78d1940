"""Multidrop recipient discovery: which local users a message belongs to.

Responsibility: given the header fields of one message and the query's
server/user options, find the envelope recipients (fetchmail(1), Header
versus Envelope addresses) and map them to local names.  Pure: no I/O, no DNS, no logging.

Rules, in order:

1. Envelope header (``envelope``, default ``Received``): the field with that
   exact name (case-insensitive), after skipping ``envskip`` occurrences.
   For ``Received`` the ``by <host>`` part must name the mail server and the
   ``for <addr>`` part is the recipient; any other header is an address list.
2. Nothing found, or ``no envelope``: header guessing from
   ``Resent-To/Cc/Bcc`` when present, else ``To/Cc/Bcc/Apparently-To``.
3. Each address: the ``qvirtual`` prefix is stripped; addresses without
   ``@`` are ignored; a full-address name mapping wins; a domain in
   ``localdomains`` (equal, or a sub-domain) keeps the whole address; a
   domain naming the mail server maps the local part through the name list
   (passed through unchanged with ``*``); everything else is rejected.

Deliberate differences from fetchmail 6.4 (documented in the report):
- The mail server's names are its truename, poll name, ``via`` name and the
  ``aka`` list; an ``aka``/``localdomains`` entry also matches sub-domains
  (``.suffix`` rule).  No DNS/MX/``checkalias`` lookups are made: upstream
  deprecates DNS-based alias detection, and a lookup per address made
  delivery depend on resolver health (fetchmail kept mail on DNS errors).
- The envelope header name must match the field name exactly; fetchmail's
  prefix match made ``envelope Received`` also match ``Received-SPF:``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pyfetchmail.config.model import Server, User
from pyfetchmail.mail.headers import all_addresses, field_name, field_value

__all__ = ["RecipientMatch", "find_recipients", "is_server_alias", "map_address"]

_GUESS_RESENT = (b"resent-to", b"resent-cc", b"resent-bcc")
_GUESS_PLAIN = (b"to", b"cc", b"bcc", b"apparently-to")


@dataclass(frozen=True, slots=True)
class RecipientMatch:
    """Outcome of recipient discovery for one message.

    *recipients* are bare local names (``joe``) or, for ``localdomains``
    matches, whole addresses; duplicates removed, order kept.  *rejected*
    are the addresses at a domain that is neither the server's nor a
    ``localdomains`` one (fetchmail's "reject" list, which decides the wording
    of ``X-Fetchmail-Warning``); an unknown name at the server's own domain is
    merely unmatched, not rejected.  *envelope_found* is True
    when an envelope header (not guessing) supplied the addresses.
    """

    recipients: tuple[str, ...]
    rejected: tuple[str, ...]
    envelope_found: bool


def _domain_matches(domain: str, entries: Iterable[str]) -> bool:
    domain = domain.lower().rstrip(".")
    for entry in entries:
        entry = entry.lower().rstrip(".")
        if not entry:
            continue
        if entry.startswith("."):
            if domain.endswith(entry):
                return True
        elif domain == entry or domain.endswith("." + entry):
            return True
    return False


def is_server_alias(host: str, server: Server, truename: str) -> bool:
    """True if *host* names the mail server (truename, poll name, via or aka)."""
    host = host.strip("[]").lower().rstrip(".")
    names = {truename.lower(), server.pollname.lower()}
    if server.via:
        names.add(server.via.lower())
    return host in names or _domain_matches(host, server.aka)


def _strip_qvirtual(address: str, server: Server) -> str:
    if server.qvirtual and address.lower().startswith(server.qvirtual.lower()):
        return address[len(server.qvirtual) :]
    return address


def _is_foreign(address: str, server: Server, truename: str) -> bool:
    """True for an address whose domain is neither the server's nor a local domain."""
    address = _strip_qvirtual(address, server)
    if "@" not in address:
        return False
    domain = address.rpartition("@")[2]
    local_domain = _domain_matches(domain, server.localdomains)
    return not (local_domain or is_server_alias(domain, server, truename))


def map_address(address: str, server: Server, user: User, truename: str) -> str | None:
    """Map one envelope/header address to a local recipient, or None.

    Returns a bare local name, or the whole address for a ``localdomains``
    match.
    """
    address = _strip_qvirtual(address, server)
    if "@" not in address:
        return None
    lowered = address.lower()
    for mapping in user.localnames:
        if "@" in mapping.remote and mapping.remote.lower() == lowered:
            return mapping.local
    local, _, domain = address.rpartition("@")
    if _domain_matches(domain, server.localdomains):
        return address
    if not is_server_alias(domain, server, truename):
        return None
    for mapping in user.localnames:
        if "@" not in mapping.remote and mapping.remote.lower() == local.lower():
            return mapping.local
    return local if user.wildcard else None


_BY = re.compile(rb"\bby\s+([^\s;()<>]+)", re.IGNORECASE)
_FOR = re.compile(rb"\bfor\s+<?([^\s<>;]+)>?", re.IGNORECASE)


def _received_recipient(value: bytes, server: Server, truename: str) -> str | None:
    """The ``for <addr>`` of a Received value whose ``by`` names our server."""
    by = _BY.search(value)
    if by is None or not is_server_alias(by.group(1).decode("latin-1"), server, truename):
        return None
    found = _FOR.search(value, by.end())
    if found is None:
        return None
    addr = found.group(1).decode("latin-1")
    if addr.startswith("@") and ":" in addr:
        addr = addr.split(":", 1)[1]  # RFC 5321 §4.1.2 source route
    return addr


def _envelope_addresses(fields: Sequence[bytes], server: Server, truename: str) -> list[str]:
    if server.envelope is None:
        return []
    wanted = server.envelope.lower().encode("latin-1")
    matching = [f for f in fields if field_name(f) == wanted]
    if len(matching) <= server.envskip:
        return []
    value = field_value(matching[server.envskip])
    if wanted == b"received":
        addr = _received_recipient(value, server, truename)
        return [addr] if addr else []
    return [a for a in all_addresses(value) if a]


def _guessed_addresses(fields: Sequence[bytes]) -> list[str]:
    resent = [f for f in fields if field_name(f) in _GUESS_RESENT]
    chosen = resent or [f for f in fields if field_name(f) in _GUESS_PLAIN]
    out: list[str] = []
    for field in chosen:
        out.extend(a for a in all_addresses(field_value(field)) if a)
    return out


def find_recipients(
    fields: Sequence[bytes], server: Server, user: User, *, truename: str
) -> RecipientMatch:
    """Find the local recipients of a multidrop message from its header *fields*.

    *fields* are logical header lines as from
    :func:`pyfetchmail.mail.headers.split_fields` (after rewrite).
    """
    addresses = _envelope_addresses(fields, server, truename)
    envelope_found = bool(addresses)
    if not addresses:
        addresses = _guessed_addresses(fields)
    recipients: list[str] = []
    rejected: list[str] = []
    for address in addresses:
        local = map_address(address, server, user, truename)
        if local is None:
            if _is_foreign(address, server, truename) and address not in rejected:
                rejected.append(address)
        elif local not in recipients:
            recipients.append(local)
    return RecipientMatch(tuple(recipients), tuple(rejected), envelope_found)
