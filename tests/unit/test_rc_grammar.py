"""rc grammar: every keyword and synonym, and fetchmail's quirks (spec 1.2-1.5).

Expected values were checked against fetchmail 6.4.37 ``--configdump``.
"""

from __future__ import annotations

from typing import Any

import pytest

from pyfetchmail.config.model import Auth, BadHeader, MailProtocol, NameMapping
from pyfetchmail.config.rcgrammar import RcSyntaxError, parse_rc
from pyfetchmail.errors import ConfigError
from tests.data.rc.rchelp import RCFILE, load, query


def error_of(text: str) -> RcSyntaxError:
    with pytest.raises(RcSyntaxError) as info:
        parse_rc(text, RCFILE, "/home/alice")
    return info.value


# -- server options ----------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "field", "value"),
    [
        ("via real.example", "via", "real.example"),
        ("aka a.example b.example", "aka", ("a.example", "b.example")),
        ("localdomains d1 d2", "localdomains", ("d1", "d2")),
        ("local d1", "localdomains", ("d1",)),
        ("proto imap", "protocol", MailProtocol.IMAP),
        ("protocol POP3", "protocol", MailProtocol.POP3),
        ("proto sdps", "protocol", MailProtocol.SDPS),
        ("proto etrn", "protocol", MailProtocol.ETRN),
        ("service pop3s", "service", "pop3s"),
        ("service 1110", "service", "1110"),
        ("port 1110", "service", "1110"),
        ("interval 3", "interval", 3),
        ("interval -3", "interval", 0),
        ("auth cram-md5", "auth", Auth.CRAM_MD5),
        ("authenticate password", "auth", Auth.PASSWORD),
        ("preauth ntlm", "auth", Auth.NTLM),
        ("preauthenticate msn", "auth", Auth.MSN),
        ("auth kerberos5", "auth", Auth.KERBEROS_V5),
        ("auth opie", "auth", Auth.OTP),
        ("timeout 120", "timeout", 120),
        ("timeout 0", "timeout", 300),  # 0 means the default
        ("timeout -1", "timeout", 300),
        ("envelope X-Env", "envelope", "X-Env"),
        ("envelope 2 X-Env", "envskip", 2),
        ("no envelope", "envelope", None),
        ("noenvelope", "envelope_explicit", True),
        ("qvirtual mbox-", "qvirtual", "mbox-"),
        ("principal p/h", "principal", "p/h"),
        ("esmtpname smtpuser", "esmtpname", "smtpuser"),
        ("esmtppassword pw", "esmtppassword", "pw"),
        ("interface eth0/10.0.0.1", "interface", "eth0/10.0.0.1"),
        ("monitor ppp0", "monitor", "ppp0"),
        ("plugin 'ssh %h'", "plugin", "ssh %h"),
        ("plugout 'nc x 25'", "plugout", "nc x 25"),
        ("no dns", "dns", False),
        ("nodns", "dns", False),
        ("checkalias", "checkalias", True),
        ("nocheckalias", "checkalias", False),
        ("uidl", "uidl", True),
        ("nouidl", "uidl", False),
        ("tracepolls", "tracepolls", True),
        ("no tracepolls", "tracepolls", True),  # fetchmail bug kept (see -V)
        ("bad-header accept", "badheader", BadHeader.ACCEPT),
        ("bad-header reject", "badheader", BadHeader.REJECT),
    ],
)
def test_server_option(option: str, field: str, value: Any) -> None:
    assert getattr(query(f"poll x {option}\n").server, field) == value


def test_kpop_is_pop3_on_the_kpop_service() -> None:
    server = query("poll x proto kpop\n").server
    assert (server.protocol, server.service, server.auth) == (MailProtocol.POP3, "kpop", Auth.ANY)
    # an auth "password" given before kpop becomes Kerberos V5 (KRB5 build)
    assert query("poll x auth password proto kpop\n").server.auth is Auth.KERBEROS_V5


# -- user options ------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "field", "value"),
    [
        ("pass secret", "password", "secret"),
        ("password 1234", "password", "1234"),
        ("folder INBOX Other", "mailboxes", ("INBOX", "Other")),
        ("folders a", "mailboxes", ("a",)),
        ("smtphost h1 h2/2525", "smtphunt", ("h1", "h2/2525")),
        ("smtp h1", "smtphunt", ("h1",)),
        ('smtphost "h1,h2"', "smtphunt", ("h1,h2",)),  # quoted list stays one entry
        ("fetchdomains d1 d2", "fetchdomains", ("d1", "d2")),
        ("smtpaddress example.com", "smtpaddress", "example.com"),
        ("smtpname r@example.com", "smtpname", "r@example.com"),
        ("antispam 571 -1 550", "antispam", (571, -1, 550)),
        ("mda 'procmail -d %T'", "mda", "procmail -d %T"),
        ("bsmtp out.bsmtp", "bsmtp", "/home/alice/out.bsmtp"),
        ("bsmtp -", "bsmtp", "-"),
        ("lmtp smtphost /run/lmtp", "lmtp", True),
        ("pre 'echo a'", "preconnect", "echo a"),
        ("preconnect b", "preconnect", "b"),
        ("post c", "postconnect", "c"),
        ("postconnect d", "postconnect", "d"),
        ("keep", "keep", True),
        ("nokeep", "keep", False),
        ("flush", "flush", True),
        ("limitflush", "limitflush", True),
        ("fetchall", "fetchall", True),
        ("norewrite", "rewrite", False),
        ("forcecr", "forcecr", True),
        ("stripcr", "stripcr", True),
        ("no stripcr", "stripcr", False),
        ("pass8", "pass8bits", True),
        ("pass8bits", "pass8bits", True),
        ("dropstatus", "dropstatus", True),
        ("dropdelivered", "dropdelivered", True),
        ("mimedec", "mimedecode", True),
        ("nomimedecode", "mimedecode", False),
        ("idle", "idle", True),
        ("no idle", "idle", False),
        ("ssl", "ssl", True),
        ("no ssl", "ssl", False),
        ("sslkey k.pem", "sslkey", "/home/alice/k.pem"),
        ("sslcert /etc/c.pem", "sslcert", "/etc/c.pem"),
        ("sslproto tls1.2+", "sslproto", "tls1.2+"),
        ("sslproto ''", "sslproto", ""),
        ("no sslcertck", "sslcertck", False),
        ("sslcertfile ~/ca.pem", "sslcertfile", "/home/alice/~/ca.pem"),  # no ~ expansion
        ("sslcertpath certs", "sslcertpath", "/home/alice/certs"),
        ("sslcommonname cn", "sslcommonname", "cn"),
        ("sslfingerprint 'AA:BB'", "sslfingerprint", "AA:BB"),
        ("limit 100", "limit", 100),
        ("warnings 0", "warnings", 0),  # explicit zero, not the default 3600
        ("warnings -5", "warnings", 0),
        ("fetchlimit 5", "fetchlimit", 5),
        ("fetchsizelimit 0", "fetchsizelimit", 0),
        ("fastuidl 0", "fastuidl", 0),
        ("batchlimit 7", "batchlimit", 7),
        ("expunge 0", "expunge", 0),
        ("expunge 3", "expunge", 3),
        ("properties p", "properties", "p"),
    ],
)
def test_user_option(option: str, field: str, value: Any) -> None:
    assert getattr(query(f"poll x user u {option}\n").user, field) == value


def test_builtin_defaults() -> None:
    q = query("poll x\n")
    assert (q.user.remote, q.user.localnames) == ("alice", (NameMapping("alice", "alice"),))
    assert (q.user.warnings, q.user.fetchsizelimit, q.user.fastuidl) == (3600, 100, 4)
    assert (q.user.smtphunt, q.user.sslcertck, q.user.expunge) == (("localhost",), True, None)
    assert (q.server.timeout, q.server.esmtpname, q.server.envelope) == (300, "alice", "Received")
    assert q.user.password is None


# -- set ---------------------------------------------------------------------


def test_set_statements() -> None:
    run = load(
        "set daemon 60\nset logfile = '/nonexistent/l'\nset idfile ids\nset pidfile /p\n"
        "set postmaster = pm\nset no bouncemail\nset spambounce\nset no softbounce\n"
        "set properties = pr\nset syslog\nset invisible\n"
    ).run
    assert run.poll_interval == 60
    assert (run.idfile, run.pidfile, run.postmaster) == ("/home/alice/ids", "/p", "pm")
    assert (run.bouncemail, run.spambounce, run.softbounce) == (False, True, False)
    assert (run.properties, run.syslog, run.invisible) == ("pr", True, True)
    assert run.logfile is None  # does not exist: ignored with a notice


def test_set_no_showdots_turns_showdots_on() -> None:
    assert load("set no showdots\n").run.showdots is True
    assert load("set showdots\n").run.showdots is True
    assert load("set no syslog\n").run.syslog is False


def test_set_daemon_negative_is_zero() -> None:
    assert load("set daemon -5\n").run.poll_interval == 0


# -- users, names, mappings ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "remote", "names", "wildcard"),
    [
        ("user eric", "eric", ["alice"], False),
        ("user eric there", "eric", ["alice"], False),
        ("user esr here", "alice", ["esr"], False),
        ("user esr here is eric there", "eric", ["esr"], False),
        ("user eric there is esr here", "eric", ["esr"], False),
        ("user l1 l2 here", "alice", ["l1", "l2"], False),
        ("is a b", "alice", ["a", "b"], False),
        ("to a b here", "alice", ["a", "b"], False),
        ("user u is * here", "u", ["alice"], True),
        ("user u to b=c d", "u", [("b", "c"), "d"], False),
        ("user keep", "keep", ["alice"], False),
        ("user u to keep", "u", ["keep"], False),
        ("user *", "*", ["alice"], False),
    ],
)
def test_user_blocks(text: str, remote: str, names: list[Any], wildcard: bool) -> None:
    user = query(f"poll x {text}\n").user
    got = [(n.remote, n.local) if n.mapped else n.local for n in user.localnames]
    assert (user.remote, got, user.wildcard) == (remote, names, wildcard)


def test_user_blocks_share_one_server_object() -> None:
    config = load("poll x proto imap user a keep user b\npoll y user c\n")
    a, b, c = config.queries
    assert a.server is b.server
    assert a.server is not c.server
    assert [q.user.remote for q in config.queries] == ["a", "b", "c"]


def test_entry_without_user_part_makes_one_default_query() -> None:
    assert [q.user.remote for q in load("poll a\npoll b pass p keep\n").queries] == [
        "alice",
        "alice",
    ]


def test_skip_entries_are_inactive() -> None:
    q = query("skip x\n")
    assert (q.server.active, q.server.skip) == (False, True)


def test_server_is_a_synonym_of_poll() -> None:
    assert query("server x\n").server.pollname == "x"


def test_noise_and_punctuation() -> None:
    q = query("poll x with proto imap and options keep; wants fetchall, has ssl: and\n")
    assert (q.server.protocol, q.user.keep, q.user.fetchall, q.user.ssl) == (
        MailProtocol.IMAP,
        True,
        True,
        True,
    )


def test_spec_sample_rc_min() -> None:
    config = load('poll mail.example.org proto imap user "joe" pass "secret" is joe here\n')
    q = config.queries[0]
    assert (q.user.remote, q.user.password, q.user.localnames[0].local) == ("joe", "secret", "joe")


# -- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("POLL x\n", "1: syntax error at POLL"),
        ("poll x proto Pop3\n", "1: syntax error at Pop3"),
        ("poll 12345\n", "1: syntax error at 12345"),
        ("poll x # comment", "1: syntax error at #"),
        ("poll x keep \\", "1: syntax error at \\"),
        ("set daemon = 5\n", "1: syntax error at 5"),
        ("set warnings 5\n", "1: syntax error at warnings"),
        ("poll x user a nosyslog", "1: syntax error at end of input"),
        ("poll x user a nosyslog\n", "2: syntax error at end of input"),  # after the newline
        ("poll x user a keep no dns\n", "1: syntax error at dns"),
        ("poll x keep user b\n", "1: syntax error at user"),
        ("poll x via ssh\n", "1: syntax error at ssh"),
        ("poll x limit foo\n", "1: syntax error at foo"),
        ('poll "a b"c\n', "1: syntax error at c"),
        ("poll x user a b keep\n", "1: syntax error at keep"),
        ("poll x to a there\n", "1: syntax error at there"),
        ("poll x\n\n  limit\n", "4: syntax error at end of input"),
        ("poll x sslfingerprint AA:BB\n", "1: syntax error at BB"),  # ':' separates
        ('poll x\n"a\nb"\n', '2: syntax error at "a\nb"'),
        ("keep\n", "1: syntax error at keep"),
        ("poll x user a keep uidl\n", "1: server option after user options at uidl"),
        ("poll x user a keep auth password\n", "1: server option after user options at password"),
        ("poll x user a keep via 'v'\n", "1: server option after user options at 'v'"),
    ],
)
def test_error_messages(text: str, message: str) -> None:
    error = error_of(text)
    assert str(error).splitlines()[0] == f"fetchmail:{RCFILE}:{message}".splitlines()[0]
    assert isinstance(error, ConfigError)
    assert error.exit_code == 5


def test_server_option_after_user_options_then_more() -> None:
    error = error_of("poll x user a keep aka b c keep\n")
    assert error.lines == (
        f"fetchmail:{RCFILE}:1: server option after user options at keep",
        f"fetchmail:{RCFILE}:1: syntax error at keep",
    )


def test_error_names_line_column_and_token() -> None:
    error = error_of("poll x\n  user a\n  limit  foo\n")
    assert (error.location, error.token) == (f"{RCFILE}:3:10", "foo")


def test_newlines_inside_quotes_are_not_counted_in_messages() -> None:
    error = error_of('poll x via "a\nb"\n limit x\n')
    assert str(error) == f"fetchmail:{RCFILE}:2: syntax error at x"
    assert error.location == f"{RCFILE}:3:8"


def test_numbers_beyond_32_bits_are_rejected() -> None:
    # fetchmail's atoi() would silently truncate them (deviation, see report)
    assert "number out of range" in str(error_of("poll x user a limit 99999999999\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("poll x interface eth0\n", "fetchmail: missing IP interface address"),
        ("poll x interface eth0/1.2.3.x\n", "fetchmail: invalid IP interface address"),
        ("poll x interface eth0/1.2.3.4/255.x\n", "fetchmail: invalid IP interface mask"),
    ],
)
def test_interface_is_checked_while_parsing(text: str, message: str) -> None:
    assert str(error_of(text)) == message


def test_seed_example_on_one_line() -> None:
    # The Fedora guide's example, flattened to one line (the grammar is free-format).
    config = load(
        "set postmaster \"user1\" set bouncemail poll pop.domain.com proto pop3 user 'user1' "
        "there with password 'secret' is user1 here poll mail.domain2.com user 'user5' there "
        "with password 'secret2' is user1 here user 'user7' there with password 'secret3' "
        "is user1 here"
    )
    assert config.run.postmaster == "user1"
    assert [(q.server.pollname, q.user.remote, q.user.password) for q in config.queries] == [
        ("pop.domain.com", "user1", "secret"),
        ("mail.domain2.com", "user5", "secret2"),
        ("mail.domain2.com", "user7", "secret3"),
    ]
    assert {q.user.localnames[0].local for q in config.queries} == {"user1"}


@pytest.mark.parametrize(
    ("text", "pollname", "remote"),
    [
        ("poll a\\x00b user c\n", "a", "c"),  # strings are C strings: NUL ends them
        ("poll a\x00b user c\n", "a", "c"),
        ('poll a user "x\x00y" keep\n', "a", "x"),
        ("poll a\fb user c\n", "a\fb", "c"),  # form feed is not a separator
    ],
)
def test_nul_and_control_characters(text: str, pollname: str, remote: str) -> None:
    q = query(text)
    assert (q.server.pollname, q.user.remote) == (pollname, remote)


def test_nul_token_is_reported_as_end_of_input() -> None:
    assert str(error_of("\x00")) == f"fetchmail:{RCFILE}:1: syntax error at end of input"
