"""Command-line parsing: every fetchmail 6.4 option, GNU getopt rules, exit codes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from pyfetchmail import cli
from pyfetchmail.config.model import Auth, BadHeader, Config, MailProtocol, RunControl
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.errors import ConfigError, RcPermissionError
from pyfetchmail.exitcodes import ExitCode

# (argv, field, expected value) for every option, short and long spellings.
CASES: list[tuple[list[str], str, Any]] = [
    (["-V"], "version", True),
    (["--version"], "version", True),
    (["-c"], "check", True),
    (["--check"], "check", True),
    (["-s"], "silent", True),
    (["--silent"], "silent", True),
    (["-v"], "verbose", 1),
    (["--verbose", "--verbose"], "verbose", 2),
    (["-d", "300"], "daemon", 300),
    (["--daemon=0"], "daemon", 0),
    (["-N"], "nodetach", True),
    (["--nodetach"], "nodetach", True),
    (["-q"], "quit", True),
    (["--quit"], "quit", True),
    (["-L", "/l"], "logfile", "/l"),
    (["--logfile", "/l"], "logfile", "/l"),
    (["--syslog"], "syslog", True),
    (["--nosyslog"], "syslog", False),
    (["--invisible"], "invisible", True),
    (["--showdots"], "showdots", True),
    (["-f", "/rc"], "fetchmailrc", "/rc"),
    (["--fetchmailrc", "/rc"], "fetchmailrc", "/rc"),
    (["-i", "/ids"], "idfile", "/ids"),
    (["--idfile", "/ids"], "idfile", "/ids"),
    (["--pidfile", "/p"], "pidfile", "/p"),
    (["--postmaster", "pm"], "postmaster", "pm"),
    (["--nobounce"], "nobounce", True),
    (["--softbounce"], "softbounce", True),
    (["--nosoftbounce"], "softbounce", False),
    (["-p", "IMAP"], "protocol", MailProtocol.IMAP),
    (["--protocol", "pop3"], "protocol", MailProtocol.POP3),
    (["--proto", "Etrn"], "protocol", MailProtocol.ETRN),
    (["-U"], "uidl", True),
    (["--uidl"], "uidl", True),
    (["--idle"], "idle", True),
    (["-P", "pop3s"], "service", "pop3s"),
    (["--service", "995"], "service", "995"),
    (["--port", "110"], "service", "110"),
    (["--auth", "password"], "auth", Auth.PASSWORD),
    (["--auth", "kerberos"], "auth", Auth.KERBEROS_V5),
    (["--auth", "kerberos_v4"], "auth", Auth.KERBEROS_V4),
    (["--auth", "EXTERNAL"], "auth", Auth.EXTERNAL),
    (["--auth", "cram"], "auth", Auth.CRAM_MD5),
    (["--auth", "opie"], "auth", Auth.OTP),
    (["-t", "60"], "timeout", 60),
    (["--timeout", "60"], "timeout", 60),
    (["-E", "X-Envelope-To"], "envelope", "X-Envelope-To"),
    (["--envelope", "Delivered-To"], "envelope", "Delivered-To"),
    (["-Q", "pre-"], "qvirtual", "pre-"),
    (["--qvirtual", "pre-"], "qvirtual", "pre-"),
    (["--bad-header", "ACCEPT"], "bad_header", BadHeader.ACCEPT),
    (["--bad-header", "reject"], "bad_header", BadHeader.REJECT),
    (["--principal", "pop/h"], "principal", "pop/h"),
    (["--tracepolls"], "tracepolls", True),
    (["-u", "joe"], "username", "joe"),
    (["--user", "joe"], "username", "joe"),
    (["--username", "joe"], "username", "joe"),
    (["-a"], "fetchall", True),
    (["--all"], "fetchall", True),
    (["--fetchall"], "fetchall", True),
    (["-K"], "keep", False),
    (["--nokeep"], "keep", False),
    (["-k"], "keep", True),
    (["--keep"], "keep", True),
    (["-F"], "flush", True),
    (["--flush"], "flush", True),
    (["--limitflush"], "limitflush", True),
    (["-n"], "norewrite", True),
    (["--norewrite"], "norewrite", True),
    (["-l", "1000"], "limit", 1000),
    (["--limit", "1000"], "limit", 1000),
    (["-w", "60"], "warnings", 60),
    (["--warnings", "60"], "warnings", 60),
    (["-r", "INBOX"], "folders", ("INBOX",)),
    (["--folder", "a,b"], "folders", ("a", "b")),
    (["-S", "h1,h2/2525"], "smtphosts", ("h1", "h2/2525")),
    (["--smtphost", "h"], "smtphosts", ("h",)),
    (["--fetchdomains", "a.example"], "fetchdomains", ("a.example",)),
    (["-D", "dom"], "smtpaddress", "dom"),
    (["--smtpaddress", "dom"], "smtpaddress", "dom"),
    (["--smtpname", "u@d"], "smtpname", "u@d"),
    (["-Z", "571,550"], "antispam", (571, 550)),
    (["--antispam", "501"], "antispam", (501,)),
    (["-b", "5"], "batchlimit", 5),
    (["--batchlimit", "5"], "batchlimit", 5),
    (["-B", "7"], "fetchlimit", 7),
    (["--fetchlimit", "7"], "fetchlimit", 7),
    (["--fetchsizelimit", "0"], "fetchsizelimit", 0),
    (["--fastuidl", "1"], "fastuidl", 1),
    (["-e", "3"], "expunge", 3),
    (["--expunge", "3"], "expunge", 3),
    (["-m", "procmail -d %T"], "mda", "procmail -d %T"),
    (["--mda", "x"], "mda", "x"),
    (["--bsmtp", "-"], "bsmtp", "-"),
    (["--lmtp"], "lmtp", True),
    (["--ssl"], "ssl", True),
    (["--sslkey", "/k"], "sslkey", "/k"),
    (["--sslcert", "/c"], "sslcert", "/c"),
    (["--sslproto", "tls1.2+"], "sslproto", "tls1.2+"),
    (["--sslcertck"], "sslcertck", True),
    (["--nosslcertck"], "sslcertck", False),
    (["--sslcertfile", "/ca.pem"], "sslcertfile", "/ca.pem"),
    (["--sslcertpath", "/certs"], "sslcertpath", "/certs"),
    (["--sslcommonname", "cn"], "sslcommonname", "cn"),
    (["--sslfingerprint", "AA:BB"], "sslfingerprint", "AA:BB"),
    (["-I", "eth0/1.2.3.4"], "interface", "eth0/1.2.3.4"),
    (["--interface", "eth0/1.2.3.4"], "interface", "eth0/1.2.3.4"),
    (["-M", "eth0"], "monitor", "eth0"),
    (["--monitor", "eth0"], "monitor", "eth0"),
    (["--plugin", "nc %h %p"], "plugin", "nc %h %p"),
    (["--plugout", "nc localhost 25"], "plugout", "nc localhost 25"),
    (["--configdump"], "configdump", True),
    (["-y"], "yydebug", True),
    (["--yydebug"], "yydebug", True),
    # GNU getopt_long prefixes, including prefixes of aliases of one option
    (["--fetchm", "/rc"], "fetchmailrc", "/rc"),
    (["--use", "joe"], "username", "joe"),
    (["--prot", "imap"], "protocol", MailProtocol.IMAP),
    (["--verb"], "verbose", 1),
    (["--nosslc"], "sslcertck", False),
    (["--sslcertc"], "sslcertck", True),
    (["--bad=accept"], "bad_header", BadHeader.ACCEPT),
    (["--configd"], "configdump", True),
]


@pytest.mark.parametrize(("argv", "name", "value"), CASES, ids=lambda x: str(x))
def test_option_maps_to_field(argv: list[str], name: str, value: Any) -> None:
    options = cli.parse_args(argv)
    assert getattr(options, name) == value
    assert options.argv == tuple(argv)


def test_every_option_is_covered_by_cases() -> None:
    tested = {word.split("=")[0] for argv, _, _ in CASES for word in argv if word[0] == "-"}
    for spec in cli.OPTIONS:
        if spec.kind == "help":
            continue
        for long in spec.longs:
            assert f"--{long}" in tested, long
        if spec.short:
            assert f"-{spec.short}" in tested, spec.short


def test_defaults_are_not_given() -> None:
    assert cli.parse_args([]) == CommandLineOptions(argv=())


def test_short_option_clusters() -> None:
    options = cli.parse_args(["-kvd300", "-vN"])
    assert (options.keep, options.verbose, options.daemon, options.nodetach) == (
        True,
        2,
        300,
        True,
    )
    assert cli.parse_args(["-d300"]).daemon == 300
    assert cli.parse_args(["-vv"]).verbose == 2


def test_silent_and_verbose_apply_in_order() -> None:
    assert (cli.parse_args(["-s", "-v"]).silent, cli.parse_args(["-s", "-v"]).verbose) == (
        False,
        1,
    )
    options = cli.parse_args(["-v", "-s"])
    assert (options.silent, options.verbose) == (True, 0)


def test_later_flag_wins() -> None:
    assert cli.parse_args(["-k", "-K"]).keep is False
    assert cli.parse_args(["--nosyslog", "--syslog"]).syslog is True


def test_kpop_sets_service_and_auth_in_argument_order() -> None:
    options = cli.parse_args(["-p", "kpop", "--auth", "password"])
    assert (options.protocol, options.service, options.auth) == (
        MailProtocol.KPOP,
        "kpop",
        Auth.PASSWORD,
    )
    options = cli.parse_args(["--auth", "password", "-p", "KPOP"])
    assert options.auth is Auth.KERBEROS_V5


def test_lists_are_appended_and_empty_items_dropped() -> None:
    options = cli.parse_args(["-r", "A,B", "-r", "C", "-Z", "1,0x10,010", "-Z", "7", "-S", "a,,b"])
    assert options.folders == ("A", "B", "C")
    assert options.antispam == (1, 16, 8, 7)
    assert options.smtphosts == ("a", "b")
    fd = cli.parse_args(["--fetchdomains", "d1", "--fetchdomains", "d2"]).fetchdomains
    assert fd == ("d1", "d2")


@pytest.mark.parametrize(
    ("text", "value"),
    [("0x10", 16), ("0X1f", 31), ("010", 8), ("0", 0), (" +0x1F", 31), ("-5", -5), ("42", 42)],
)
def test_numbers_parse_like_strtol_base_0(text: str, value: int) -> None:
    assert cli.parse_number(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x", "String 'x' is not a valid number string."),
        ("08", "String '08' is not a valid number string."),
        ("12a", "String '12a' is not a valid number string."),
        ("", "String '' is not a valid number string."),
        ("99999999999", "Value of string '99999999999' is larger than 2147483647."),
        ("-99999999999", "Value of string '-99999999999' is smaller than -2147483648."),
    ],
)
def test_bad_numbers(text: str, message: str) -> None:
    with pytest.raises(cli.UsageError) as info:
        cli.parse_args(["-t", text])
    assert str(info.value) == message
    assert info.value.exit_code == ExitCode.SYNTAX


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus"], "unrecognized option '--bogus'"),
        (["-x"], "invalid option -- 'x'"),
        (["-d"], "option requires an argument -- 'd'"),
        (["--mda"], "option '--mda' requires an argument"),
        (["--ssl=yes"], "option '--ssl' doesn't allow an argument"),
        (["-p", "foo"], "Invalid protocol `foo' specified."),
        (["--auth", "Password"], "Invalid authentication `Password' specified."),
        (["--bad-header", "x"], "Invalid bad-header policy `x' specified."),
        (
            ["--fetch"],
            "option '--fetch' is ambiguous; possibilities: '--fetchmailrc' '--fetchall'"
            " '--fetchdomains' '--fetchlimit' '--fetchsizelimit'",
        ),
        (["--ssl", "-S", "a", "-m", "b"], "only one of --smtphost, --mda and --bsmtp may be given"),
        (["-S", "a", "-S", "b"], "only one of --smtphost, --mda and --bsmtp may be given"),
        (["-m", "a", "--bsmtp", "b"], "only one of --smtphost, --mda and --bsmtp may be given"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(cli.UsageError) as info:
        cli.parse_args(argv)
    assert str(info.value) == message


def test_ambiguous_prefix_lists_every_candidate() -> None:
    with pytest.raises(cli.UsageError, match="'--ssl' '--sslkey' '--sslcert' '--sslproto'"):
        cli.parse_args(["--ss"])


def test_paths_are_made_absolute_without_normalising(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cwd = os.getcwd()
    options = cli.parse_args(
        [
            "-f", "rc", "-i", "ids", "-L", "../log", "--pidfile", "p", "--bsmtp", "b",
            "--sslkey", "k", "--sslcert", "c", "--sslcertfile", "cf", "--sslcertpath", "/abs",
        ]
    )  # fmt: skip
    assert options.fetchmailrc == f"{cwd}/rc"
    assert options.idfile == f"{cwd}/ids"
    assert options.logfile == f"{cwd}/../log"
    assert options.pidfile == f"{cwd}/p"
    assert options.bsmtp == f"{cwd}/b"
    assert (options.sslkey, options.sslcert) == (f"{cwd}/k", f"{cwd}/c")
    assert (options.sslcertfile, options.sslcertpath) == (f"{cwd}/cf", "/abs")
    assert cli.parse_args(["-f", "-"]).fetchmailrc == "-"


def test_servers_and_double_dash() -> None:
    options = cli.parse_args(["a.example", "-k", "b.example", "--", "-c"])
    assert options.servers == ("a.example", "b.example", "-c")
    assert options.keep is True
    assert options.check is False


def test_option_value_may_start_with_dash() -> None:
    assert cli.parse_args(["-m", "-x"]).mda == "-x"
    assert cli.parse_args(["--mda", "--y"]).mda == "--y"
    assert cli.parse_args(["-t", "-1"]).timeout == -1


def test_quit_is_last() -> None:
    assert cli.parse_args(["-v", "-q"]).quit_is_last is True
    assert cli.parse_args(["-vq"]).quit_is_last is True
    assert cli.parse_args(["-q", "-v"]).quit_is_last is False
    assert cli.parse_args(["-q", "host"]).quit_is_last is False
    assert cli.parse_args(["-v"]).quit_is_last is False


def test_help_requested() -> None:
    for argv in (["-?"], ["--help"], ["--he"], ["-v", "-?"]):
        with pytest.raises(cli.HelpRequested):
            cli.parse_args(argv)


def test_help_lists_every_option() -> None:
    text = cli.format_help()
    assert text.startswith(
        "usage:  pyfetchmail [options] [server ...]\n  Options are as follows:\n"
    )
    for spec in cli.OPTIONS:
        shown = spec.display or f"--{spec.longs[0]}"
        assert shown in text
        if spec.short:
            assert f"  -{spec.short}, {shown}" in text
    help_lines = text.splitlines()[2:]
    assert len(help_lines) == len(cli.OPTIONS)


def test_every_long_option_is_accepted_by_the_parser() -> None:
    parser = cli.build_parser()
    for spec in cli.OPTIONS:
        for long in spec.longs:
            word = f"--{long}=1" if spec.takes_arg else f"--{long}"
            parser.parse_args([word])


# --- main ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Identity:
    user: str = "alice"
    fetchmailhost: str = "vm"


@dataclass(frozen=True)
class _Result:
    config: Config = field(default_factory=lambda: Config(RunControl(idfile="/x/.fetchids")))
    rcfile: str = "/x/.fetchmailrc"
    rcfile_exists: bool = False
    warnings: tuple[str, ...] = ()
    identity: _Identity = _Identity()


def test_main_help_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-?"]) == 0
    out, err = capsys.readouterr()
    assert out == cli.format_help()
    assert err == ""


def test_main_unknown_option_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--bogus"]) == 5
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("pyfetchmail: unrecognized option '--bogus'\nusage:  pyfetchmail")


def test_main_bad_number_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-d", "x"]) == 5
    assert "String 'x' is not a valid number string." in capsys.readouterr().err


def _fake_loader(monkeypatch: pytest.MonkeyPatch, outcome: Any) -> list[CommandLineOptions]:
    seen: list[CommandLineOptions] = []

    def load(options: CommandLineOptions) -> Any:
        seen.append(options)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(cli, "_load_config", load)
    return seen


def test_main_config_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_loader(monkeypatch, ConfigError("fetchmail:/rc:3: syntax error at x"))
    assert cli.main(["-v", "-v", "--configdump"]) == 5
    _, err = capsys.readouterr()
    assert err == "pyfetchmail:/rc:3: syntax error at x\n"


def test_main_keeps_bare_rc_warnings_bare(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # fetchmail prints some loading errors without a program prefix; so do we.
    _fake_loader(monkeypatch, ConfigError("File /rc must be owned by you."))
    assert cli.main(["--configdump"]) == 5
    _, err = capsys.readouterr()
    assert err == "File /rc must be owned by you.\n"


def test_main_rc_syntax_errors_keep_fetchmails_form(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    message = "fetchmail:/rc:1: syntax error at POLL\nfetchmail:/rc:2: syntax error at x"
    _fake_loader(monkeypatch, ConfigError(message))
    assert cli.main([]) == 5
    assert capsys.readouterr().err == (
        "pyfetchmail:/rc:1: syntax error at POLL\npyfetchmail:/rc:2: syntax error at x\n"
    )


def test_main_permission_error_exits_6(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_loader(monkeypatch, RcPermissionError("File /rc must be owned by you."))
    assert cli.main(["--configdump"]) == 6
    # fetchmail prints this one without a program prefix.
    assert capsys.readouterr().err == "File /rc must be owned by you.\n"


def test_main_internal_error_exits_23(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_loader(monkeypatch, ZeroDivisionError("boom"))
    assert cli.main(["--configdump"]) == 23
    err = capsys.readouterr().err
    assert err == "pyfetchmail: internal error: ZeroDivisionError: boom\n"
    assert cli.main(["-v", "--configdump"]) == 23
    assert "Traceback" in capsys.readouterr().err


def test_main_keyboard_interrupt_is_clean(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_loader(monkeypatch, KeyboardInterrupt())
    assert cli.main([]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_main_configdump_prints_warnings_first(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    warnings = (
        "fetchmail: WARNING: h configuration invalid, you normally need --ssl for port 993/"
        "service imaps.",
        "Both fetchall and keep on in daemon or idle mode is a mistake!",
        'Logfile "/x/log" does not exist, ignoring logfile option.',
        "fetchmail: warning: multidrop for h requires envelope option!",
    )
    _fake_loader(monkeypatch, _Result(warnings=warnings))
    assert cli.main(["--configdump"]) == 0
    out, err = capsys.readouterr()
    assert err == (
        "pyfetchmail: WARNING: h configuration invalid, you normally need --ssl for port"
        " 993/service imaps.\n"
        "Both fetchall and keep on in daemon or idle mode is a mistake!\n"
        'Logfile "/x/log" does not exist, ignoring logfile option.\n'
        "pyfetchmail: warning: multidrop for h requires envelope option!\n"
    )
    assert out.startswith("TRUE=1; FALSE=0\n\nos_type = ")
    assert out.endswith("    'servers': []\n}\n# End of initializer\n")


def test_main_version_without_servers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = _fake_loader(monkeypatch, _Result())
    assert cli.main(["-V"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("This is pyfetchmail release ")
    assert out.endswith("GNU/Linux\nTaking options from command line\n")
    assert err == "No mailservers set up -- perhaps /x/.fetchmailrc is missing?\n"
    assert seen[0].version is True


def test_main_runs_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_loader(monkeypatch, _Result())
    calls: list[Any] = []

    def run(result: Any, options: CommandLineOptions) -> int:
        calls.append((result, options))
        return 13

    monkeypatch.setattr(cli, "_run", run)
    assert cli.main(["-k"]) == 13
    assert calls[0][1].keep is True
