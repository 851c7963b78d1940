"""Loading: defaults merge, command line, server names, validation, files (spec 1.3-1.8, 4.2)."""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import pytest

from pyfetchmail.config.model import Auth, BadHeader, MailProtocol, NameMapping
from pyfetchmail.config.overrides import CommandLineOptions, apply_overrides
from pyfetchmail.config.rcfile import check_file_security, load_config
from pyfetchmail.errors import ConfigError, DNSError, FetchmailError, RcPermissionError
from tests.data.rc.rchelp import IDENT, ROOT_IDENT, load, load_result, query

# -- defaults ------------------------------------------------------------------


def test_defaults_fill_only_unset_options() -> None:
    config = load(
        "defaults proto pop3 timeout 120 user defuser keep fetchlimit 50 antispam 571\n"
        "poll a\n"
        "poll b proto imap user u no keep antispam 550 fetchlimit 0\n"
    )
    a, b = config.queries
    assert (a.server.protocol, a.server.timeout, a.user.remote) == (
        MailProtocol.POP3,
        120,
        "defuser",
    )
    assert (a.user.keep, a.user.fetchlimit, a.user.antispam) == (True, 50, (571,))
    # "no keep" and an explicit 0 count as set; lists are taken only if empty
    assert (b.server.protocol, b.user.remote, b.user.keep) == (MailProtocol.IMAP, "u", False)
    assert (b.user.fetchlimit, b.user.antispam) == (0, (550,))


def test_defaults_no_envelope_can_be_undone() -> None:
    config = load("defaults no envelope\npoll a\npoll b envelope X-To\n")
    assert [q.server.envelope for q in config.queries] == [None, "X-To"]


def test_zero_values_count_as_unset_in_the_merge() -> None:
    # fetchmail stores auth any, bad-header reject, interval/timeout/envskip 0
    # as 0, which its merge treats as "unset".
    q = query(
        'defaults auth password bad-header accept envelope 2 "Y" interval 4 timeout 9\n'
        'poll x auth any bad-header reject envelope 0 "X" interval 0 timeout 0\n'
    )
    assert (q.server.auth, q.server.badheader) == (Auth.PASSWORD, BadHeader.ACCEPT)
    assert (q.server.envelope, q.server.envskip, q.server.interval) == ("X", 2, 4)
    assert q.server.timeout == 9


def test_defaults_do_not_copy_aka_or_sdps() -> None:
    q = query("defaults aka a1 proto sdps uidl\npoll x\n")
    assert (q.server.aka, q.server.protocol, q.server.uidl) == ((), MailProtocol.POP3, True)


def test_poll_named_defaults_as_first_record_is_the_defaults_record() -> None:
    config = load('poll "defaults" user u keep\npoll y\n')
    assert [(q.server.pollname, q.user.remote) for q in config.queries] == [("y", "u")]


def test_defaults_must_be_first() -> None:
    with pytest.raises(ConfigError, match='multiple "defaults" records'):
        load("poll x\ndefaults keep\n")


def test_second_defaults_right_after_the_first_is_an_entry() -> None:
    # fetchmail compares with the new head of its list: quirk kept
    config = load("defaults keep\ndefaults\npoll x\n")
    assert [q.server.pollname for q in config.queries] == ["defaults", "x"]
    with pytest.raises(ConfigError, match='multiple "defaults" records'):
        load("defaults keep\ndefaults\ndefaults\n")


def test_defaults_with_two_user_blocks_is_rejected() -> None:
    with pytest.raises(ConfigError, match='multiple "defaults" records'):
        load("defaults user a user b\npoll x\n")


# -- command line --------------------------------------------------------------


def test_command_line_overrides_every_query() -> None:
    options = CommandLineOptions(
        keep=False, limit=0, protocol=MailProtocol.IMAP, auth=Auth.CRAM_MD5, norewrite=True
    )
    config = load("poll a proto pop3 user u keep limit 5\nskip b\n", options)
    for q in config.queries:
        assert (q.user.keep, q.user.limit, q.user.rewrite) == (False, 0, False)
        assert (q.server.protocol, q.server.auth) == (MailProtocol.IMAP, Auth.CRAM_MD5)


def test_command_line_lists_are_appended() -> None:
    options = CommandLineOptions(smtphosts=("foo",), folders=("F2",), antispam=(550,))
    q = query("poll a user u smtphost bar folder F1 antispam 571\n", options=options)
    assert (q.user.smtphunt, q.user.mailboxes, q.user.antispam) == (
        ("bar", "foo"),
        ("F1", "F2"),
        (571, 550),
    )
    # without rc hosts the CLI host replaces the built-in "localhost"
    assert query("poll a\n", options=options).user.smtphunt == ("foo",)


def test_command_line_zero_timeout_means_default() -> None:
    assert query("poll a timeout 20\n", options=CommandLineOptions(timeout=0)).server.timeout == 300


def test_command_line_mda_turns_stripcr_on() -> None:
    user = query("poll a\n", options=CommandLineOptions(mda="procmail")).user
    assert (user.stripcr, user.effective_stripcr) == (None, True)


def test_command_line_globals() -> None:
    options = CommandLineOptions(
        daemon=30, postmaster="pm", nobounce=True, syslog=False, idfile="/x/ids", logfile=None
    )
    run = load("set daemon 5\nset syslog\n", options).run
    assert (run.poll_interval, run.postmaster, run.bouncemail) == (30, "pm", False)
    assert (run.syslog, run.idfile) == (False, "/x/ids")
    assert load("set daemon 5\n", CommandLineOptions(check=True)).run.poll_interval == 0


# -- server names on the command line -----------------------------------------


def test_named_servers_activate_entries_and_skips() -> None:
    options = CommandLineOptions(servers=("MAIL.example.NET", "b"))
    config = load("poll a aka mail.example.net\nskip b\npoll c\n", options)
    assert [(q.server.pollname, q.server.active) for q in config.queries] == [
        ("a", True),
        ("b", True),
        ("c", False),
    ]


def test_unknown_server_name_synthesises_an_entry() -> None:
    options = CommandLineOptions(servers=("host1.example",), keep=True)
    config = load("defaults proto imap\npoll a\n", options)
    new = config.queries[-1]
    assert (new.server.pollname, new.server.via, new.server.active) == (
        "host1.example",
        "host1.example",
        True,
    )
    assert (new.server.protocol, new.user.keep) == (MailProtocol.IMAP, True)


# -- built-in defaults -----------------------------------------------------------


def test_postmaster_default_depends_on_root() -> None:
    assert load("poll a\n").run.postmaster == "alice"
    assert load_result("poll a\n", identity=ROOT_IDENT).config.run.postmaster == "postmaster"


def test_paths_are_relative_to_the_rc_directory() -> None:
    result = load_result("set idfile ids\nset pidfile '-'\n", rcfile="/etc/fm/rc")
    assert (result.config.run.idfile, result.config.run.pidfile) == ("/etc/fm/ids", "-")


def test_dummy_password_for_password_less_auth() -> None:
    config = load(
        "poll a auth ssh user u\npoll b proto etrn user v\npoll c proto odmr user w\n"
        "skip d auth gssapi user x\npoll e auth external user y pass real\n"
    )
    assert [q.user.password for q in config.queries] == ["u", "v", None, None, "real"]


def test_etrn_and_odmr_default_fetchdomains_is_this_host() -> None:
    config = load("poll a proto etrn\npoll b proto odmr fetchdomains d\npoll c\n")
    assert [q.user.fetchdomains for q in config.queries] == [("vm",), ("d",), ()]


def test_logfile_that_does_not_exist_is_ignored_with_a_notice(tmp_path: Path) -> None:
    result = load_result("set logfile nolog\n", rcfile=f"{tmp_path}/rc")
    assert result.config.run.logfile is None
    assert result.warnings == (
        f'Logfile "{tmp_path}/nolog" does not exist, ignoring logfile option.',
    )
    (tmp_path / "log").write_text("")
    assert load_result("set logfile log\n", rcfile=f"{tmp_path}/rc").config.run.logfile == str(
        tmp_path / "log"
    )


def test_localnames_default_and_wildcard() -> None:
    user = query("poll a user u is * here\n").user
    assert (user.localnames, user.wildcard, user.multidrop) == (
        (NameMapping("alice", "alice"),),
        True,
        True,
    )


# -- validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("poll x auth kerberos\n", "KERBEROS v4 support is configured, but not compiled in."),
        ("poll x service 0\n", "specify positive port number for service or port"),
        ("poll x port 70000\n", "Cannot resolve service 70000 to port number."),
        ("poll x service nosuchservice\n", 'getaddrinfo(NULL, "nosuchservice") error'),
        ("poll x proto rpop port 2000\n", "RPOP requires a privileged port"),
        ("poll x proto rpop service 'kpop'\n", "RPOP requires a privileged port"),  # 1109
        ("poll x user a lmtp\n", "x configuration invalid, LMTP can't use default SMTP port"),
        ("poll x user a lmtp smtphost h/smtp\n", "LMTP can't use default SMTP port"),
        ("poll x user a lmtp smtphost h/25\n", "LMTP can't use default SMTP port"),
        ("poll x user a idle folder a b\n", "idle mode does not work for multiple folders"),
        ("poll x user a idle\npoll y user b\n", "idle mode does not work for multiple folders"),
    ],
)
def test_fatal_validation(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(text)


def test_validation_skips_inactive_entries_unless_configdump() -> None:
    text = "skip x service 0\npoll y\n"
    assert len(load(text).queries) == 2
    with pytest.raises(ConfigError):
        load(text, CommandLineOptions(configdump=True))


def test_lmtp_with_unix_socket_or_other_port_is_fine() -> None:
    assert query("poll x user a lmtp smtphost /run/lmtp h/24\n").user.lmtp


def test_warnings_in_fetchmail_order() -> None:
    result = load_result(
        "poll a proto imap service imaps user u is b c here\n"
        "poll b proto pop3 port 110 user v ssl\n"
    )
    assert result.warnings == (
        "fetchmail: warning: multidrop for a requires envelope option!",
        "fetchmail: warning: Do not ask for support if all mail goes to postmaster!",
        "fetchmail: WARNING: a configuration invalid, you normally need --ssl for port "
        "993/service imaps.",
        "fetchmail: WARNING: b configuration invalid, you normally need port 995/service "
        "pop3s for --ssl.",
    )


def test_fetchall_keep_daemon_warning() -> None:
    text = "set daemon 60\npoll a user u fetchall keep\n"
    assert load_result(text).warnings == (
        "Both fetchall and keep on in daemon or idle mode is a mistake!",
    )
    assert load_result(text, CommandLineOptions(nodetach=True)).warnings == ()


def test_warnings_printed_before_a_fatal_error_are_part_of_it() -> None:
    with pytest.raises(ConfigError) as info:
        load("poll a user u is b c here idle\npoll b\n")
    assert str(info.value).splitlines() == [
        "fetchmail: warning: multidrop for a requires envelope option!",
        "fetchmail: warning: Do not ask for support if all mail goes to postmaster!",
        "fetchmail: Error: idle mode does not work for multiple folders or accounts!",
    ]


# -- files -----------------------------------------------------------------------


def _env(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "USER": "nobody-such-user"}


def test_missing_rc_file_means_no_servers(tmp_path: Path) -> None:
    result = load_config(CommandLineOptions(), environ=_env(tmp_path))
    assert (result.rcfile, result.rcfile_exists) == (f"{tmp_path}/.fetchmailrc", False)
    assert result.config.queries == ()


def test_rc_file_is_read_and_checked(tmp_path: Path) -> None:
    rc = tmp_path / ".fetchmailrc"
    rc.write_bytes(b"poll a.example user u pass p\n")
    rc.chmod(0o710)  # group-execute is (quirk) allowed
    result = load_config(CommandLineOptions(), environ=_env(tmp_path))
    assert result.rcfile_exists
    assert result.config.queries[0].user.password == "p"


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (0o644, "must have no more than -rwx------ (0700) permissions."),
        (0o640, "must have no more than -rwx------ (0700) permissions."),
        (0o701, "must have no more than -rwx------ (0700) permissions."),
    ],
)
def test_rc_file_permissions(tmp_path: Path, mode: int, message: str) -> None:
    rc = tmp_path / "rc"
    rc.write_text("poll a\n")
    rc.chmod(mode)
    with pytest.raises(RcPermissionError) as info:
        load_config(CommandLineOptions(fetchmailrc=str(rc)), environ=_env(tmp_path))
    assert str(info.value) == f"File {rc} {message}"
    assert info.value.exit_code == 6
    # -V skips the check
    assert load_config(
        CommandLineOptions(fetchmailrc=str(rc), version=True), environ=_env(tmp_path)
    )


def test_rc_file_must_be_regular_and_owned(tmp_path: Path) -> None:
    with pytest.raises(RcPermissionError, match="must be a regular file"):
        check_file_security(str(tmp_path))
    rc = tmp_path / "rc"
    rc.write_text("")
    rc.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(rc, 65534, -1)
        with pytest.raises(RcPermissionError, match="must be owned by you"):
            check_file_security(str(rc))
    assert check_file_security("/dev/null")
    assert check_file_security("-")
    assert not check_file_security(str(tmp_path / "missing"))


def test_idfile_gets_the_same_check(tmp_path: Path) -> None:
    ids = tmp_path / ".fetchids"
    ids.write_text("")
    ids.chmod(0o644)
    with pytest.raises(RcPermissionError, match=r"\.fetchids must have no more"):
        load_config(CommandLineOptions(), environ=_env(tmp_path))


def test_rc_from_stdin_as_bytes_or_text(tmp_path: Path) -> None:
    options = CommandLineOptions(fetchmailrc="-")
    stdin = io.TextIOWrapper(io.BytesIO(b"poll a user \xc3\xa4\n"), encoding="ascii")
    assert (
        load_config(options, environ=_env(tmp_path), stdin=stdin).config.queries[0].user.remote
        == "ä"
    )
    text = io.StringIO("poll b\n")
    assert (
        load_config(options, environ=_env(tmp_path), stdin=text).config.queries[0].server.pollname
        == "b"
    )


def test_unreadable_rc_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can read mode 000 files")
    rc = tmp_path / "rc"
    rc.write_text("poll a\n")
    rc.chmod(0)
    with pytest.raises(RcPermissionError, match=f"open: {rc}: Permission denied"):
        load_config(CommandLineOptions(fetchmailrc=str(rc)), environ=_env(tmp_path))


def test_syntax_error_from_file_names_the_file(tmp_path: Path) -> None:
    rc = tmp_path / "rc"
    rc.write_bytes(b"poll a\n\xff\xfe keep\n")
    rc.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        load_config(CommandLineOptions(fetchmailrc=str(rc)), environ=_env(tmp_path))
    assert str(info.value) == f"fetchmail:{rc}:2: syntax error at \udcff\udcfe"
    assert isinstance(info.value, FetchmailError)


def test_rc_path_through_a_file_is_an_io_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = f"{tmp_path}/file/rc"
    with pytest.raises(RcPermissionError) as info:
        load_config(CommandLineOptions(fetchmailrc=path), environ=_env(tmp_path))
    assert str(info.value).splitlines() == [
        "fetchmail: couldn't time-check the run-control file",
        f"fetchmail: lstat: {path}: Not a directory",
    ]


def test_apply_overrides_is_pure() -> None:
    server = {"protocol": MailProtocol.POP3}
    user = {"smtphunt": ["a"], "keep": True}
    options = CommandLineOptions(smtphosts=("b",), keep=False, auth=Auth.ANY, uidl=True)
    srv, usr = apply_overrides(server, user, options)
    assert (srv, usr) == (
        {"protocol": MailProtocol.POP3, "uidl": True},
        {"smtphunt": ["a", "b"], "keep": False},
    )
    assert (server, user) == ({"protocol": MailProtocol.POP3}, {"smtphunt": ["a"], "keep": True})


def test_unqualified_host_name_warns_or_fails_for_etrn() -> None:
    ident = dataclasses.replace(IDENT, fetchmailhost="box", fetchmailhost_error="Name unknown")
    first = [
        'getaddrinfo failed for "box": Name unknown',
        "Cannot find my own host in hosts database to qualify it!",
    ]
    result = load_result("poll a\n", identity=ident)
    assert list(result.warnings[:2]) == first
    assert result.warnings[2] == "Trying to continue with unqualified hostname."
    with pytest.raises(DNSError) as info:
        load_result("poll a proto etrn\n", identity=ident)
    assert str(info.value).splitlines() == first
    assert info.value.exit_code == 11
    # only polled entries need the qualified name
    assert load_result("skip a proto odmr\n", identity=ident).config.queries
