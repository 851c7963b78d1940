"""Multidrop recipient discovery (spec §6.7), table-driven."""

from __future__ import annotations

import pytest

from pyfetchmail.config.model import NameMapping, Server, User
from pyfetchmail.mail.headers import split_fields
from pyfetchmail.mail.multidrop import find_recipients, is_server_alias, map_address


def _names(*specs: str) -> tuple[NameMapping, ...]:
    out = []
    for spec in specs:
        if "=" in spec:
            remote, local = spec.split("=", 1)
            out.append(NameMapping(remote, local, mapped=True))
        else:
            out.append(NameMapping(spec, spec))
    return tuple(out)


def _match(header: bytes, server: Server, user: User, truename: str = "pop.test"):  # type: ignore[no-untyped-def]
    return find_recipients(split_fields(header), server, user, truename=truename)


def test_verified_example_delivered_to_envelope() -> None:
    # spec §6.7: to joe bob=robert here, envelope Delivered-To, no dns, aka pop.test
    server = Server("127.0.0.1", envelope="Delivered-To", dns=False, aka=("pop.test",))
    user = User("u", localnames=_names("joe", "bob=robert"))
    got = _match(
        b"Delivered-To: joe@pop.test\r\nTo: joe@pop.test, bob@pop.test\r\n",
        server,
        user,
        "127.0.0.1",
    )
    assert got.recipients == ("joe",)
    assert got.envelope_found
    guessed = _match(b"To: joe@pop.test, bob@pop.test\r\n", server, user, "127.0.0.1")
    assert guessed.recipients == ("joe", "robert")
    assert not guessed.envelope_found


def test_received_envelope_needs_by_our_server() -> None:
    server = Server("pop.test")
    user = User("u", localnames=_names("joe", "ann"))
    ours = (
        b"Received: from mx by pop.test for <ann@pop.test>; Mon, 1 Jan 2024\r\nTo: joe@pop.test\r\n"
    )
    assert _match(ours, server, user).recipients == ("ann",)
    foreign = b"Received: from mx by other.host for <ann@pop.test>; x\r\nTo: joe@pop.test\r\n"
    assert _match(foreign, server, user).recipients == ("joe",)
    no_for = b"Received: from mx by pop.test; x\r\nCc: joe@pop.test\r\n"
    assert _match(no_for, server, user).recipients == ("joe",)


def test_envskip_and_qvirtual() -> None:
    server = Server("pop.test", envelope="X-Original-To", envskip=1, qvirtual="mbox-")
    user = User("u", localnames=_names("joe", "ann"))
    header = b"X-Original-To: mbox-joe@pop.test\r\nX-Original-To: MBOX-ann@pop.test\r\n"
    assert _match(header, server, user).recipients == ("ann",)


def test_envelope_name_is_exact_not_prefix() -> None:
    server = Server("pop.test")
    user = User("u", localnames=_names("joe", "ann"))
    header = b"Received-SPF: pass by pop.test for <ann@pop.test>\r\nTo: joe@pop.test\r\n"
    assert _match(header, server, user).recipients == ("joe",)


def test_resent_headers_take_precedence_over_plain() -> None:
    server = Server("pop.test", envelope=None)
    user = User("u", localnames=_names("joe", "ann"))
    header = b"To: joe@pop.test\r\nResent-To: ann@pop.test\r\n"
    assert _match(header, server, user).recipients == ("ann",)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("joe@pop.test", "joe"),
        ("JOE@POP.TEST", "joe"),
        ("dave@pop.test", "david"),
        ("boss@corp.example", "carol"),  # full-address mapping wins
        ("x@example.com", "x@example.com"),  # localdomains: whole address
        ("x@sub.example.com", "x@sub.example.com"),
        ("x@badexample.com", None),
        ("stranger@pop.test", None),
        ("joe@mail.alias.net", "joe"),  # aka suffix rule
        ("joe@elsewhere.org", None),
        ("joe", None),  # no @: ignored
        ("joe@gw.test", "joe"),  # via name
    ],
)
def test_map_address(address: str, expected: str | None) -> None:
    server = Server("pop.test", via="gw.test", aka=("alias.net",), localdomains=("example.com",))
    user = User("u", localnames=_names("joe", "dave=david", "boss@corp.example=carol"))
    assert map_address(address, server, user, "pop.test") == expected


def test_wildcard_passes_unknown_names() -> None:
    server = Server("pop.test")
    user = User("u", localnames=_names("joe"), wildcard=True)
    assert map_address("who@pop.test", server, user, "pop.test") == "who"
    assert map_address("who@else.test", server, user, "pop.test") is None


def test_rejected_and_duplicates() -> None:
    server = Server("pop.test", envelope=None)
    user = User("u", localnames=_names("joe", "ann"))
    got = _match(b"To: joe@pop.test, x@else, joe@pop.test\r\nCc: y@pop.test\r\n", server, user)
    assert got.recipients == ("joe",)
    # Only the foreign-domain address is "rejected"; y@pop.test is merely unmatched.
    assert got.rejected == ("x@else",)


def test_server_alias() -> None:
    server = Server("poll.name", aka=(".corp.test",))
    assert is_server_alias("POLL.NAME.", server, "true.name")
    assert is_server_alias("true.name", server, "true.name")
    assert is_server_alias("a.corp.test", server, "true.name")
    assert not is_server_alias("corp.test", server, "true.name")
    assert is_server_alias("[127.0.0.1]", server, "127.0.0.1")
