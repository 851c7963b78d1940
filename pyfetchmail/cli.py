"""Command line: fetchmail 6.4's options, ``--help``, ``-V``, ``--configdump``, exit status.

Split as in aiosmtpd: :func:`build_parser` (argparse, also the source of the
``--help`` text), :func:`parse_args` (argv -> :class:`CommandLineOptions`,
with fetchmail's conversions and cross-option checks) and :func:`main`.

Invariants:
- The option table :data:`OPTIONS` is the single source for the parser, the
  help text and the man page check (``tests/unit/test_cli_man.py``).
- Long options follow GNU ``getopt_long``: an unambiguous prefix is accepted,
  and a prefix matching only aliases of one option (``--use`` for
  ``--user``/``--username``) is not ambiguous.  :func:`_normalise` does this
  walk before argparse sees the words, so argparse runs with
  ``allow_abbrev=False`` and never guesses.
- Options are applied in command-line order, so ``-p kpop --auth password``
  and ``--auth password -p kpop`` differ exactly as in fetchmail.
- Usage errors exit 5 (:class:`UsageError`).  fetchmail exits 0 after an
  *unknown* option; we exit 5 (documented deviation).
- :func:`main` is the only place that turns an exception into an exit status;
  a configuration error never prints a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, NoReturn

from pyfetchmail.config.dump import configdump
from pyfetchmail.config.model import Auth, BadHeader, MailProtocol
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.errors import ConfigError, FetchmailError
from pyfetchmail.exitcodes import ExitCode
from pyfetchmail.service.versiondump import version_banner, version_dump

if TYPE_CHECKING:  # a type only: the module itself is imported when the rc file is read
    from pyfetchmail.config.rcfile import LoadResult

__all__ = [
    "OPTIONS",
    "HelpRequested",
    "OptionSpec",
    "UsageError",
    "build_parser",
    "format_help",
    "format_warning",
    "main",
    "parse_args",
    "parse_number",
]

log = logging.getLogger(__name__)

PROG = "pyfetchmail"
_INT_MAX = 2**31 - 1
_INT_MIN = -(2**31)


class UsageError(ConfigError):
    """Bad command line (exit 5); :func:`main` prints the message and the usage."""


class HelpRequested(Exception):
    """``-?``/``--help`` was given: print the help on stdout and exit 0."""


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One command-line option: its spellings, what it sets, and its help line.

    *kind* says how the argument is converted (see :func:`_apply`); *display*
    is the long-option column of the help text (fetchmail writes
    ``--proto[col]`` for ``--proto``/``--protocol``).
    """

    short: str | None
    longs: tuple[str, ...]
    kind: str
    dest: str
    help: str
    display: str = ""

    @property
    def takes_arg(self) -> bool:
        """True if the option needs an argument."""
        return self.kind not in _NO_ARG_KINDS


_NO_ARG_KINDS = frozenset({"true", "false", "verbose", "silent", "help"})

# fetchmail's option order (options.c), which is also the --help order.
OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("?", ("help",), "help", "help", "show this help and exit"),
    OptionSpec("V", ("version",), "true", "version", "show version and effective settings"),
    OptionSpec("c", ("check",), "true", "check", "only check whether mail is waiting"),
    OptionSpec("s", ("silent",), "silent", "silent", "print errors only"),
    OptionSpec("v", ("verbose",), "verbose", "verbose", "more output; twice for debug output"),
    OptionSpec("d", ("daemon",), "number", "daemon", "poll every N seconds in the background"),
    OptionSpec("N", ("nodetach",), "true", "nodetach", "stay in the foreground as a daemon"),
    OptionSpec("q", ("quit",), "true", "quit", "stop the running daemon"),
    OptionSpec("L", ("logfile",), "path", "logfile", "append log messages to this file"),
    OptionSpec(None, ("syslog",), "true", "syslog", "log through syslog (facility mail)"),
    OptionSpec(None, ("nosyslog",), "false", "syslog", "do not log through syslog"),
    OptionSpec(
        None, ("invisible",), "true", "invisible", "add no Received header, spoof the server"
    ),
    OptionSpec(
        "f", ("fetchmailrc",), "path", "fetchmailrc", "read this run-control file (- = stdin)"
    ),
    OptionSpec("i", ("idfile",), "path", "idfile", "keep seen-UID state in this file"),
    OptionSpec(None, ("pidfile",), "path", "pidfile", "use this lock (PID) file"),
    OptionSpec(None, ("postmaster",), "string", "postmaster", "last-resort recipient"),
    OptionSpec(None, ("nobounce",), "true", "nobounce", "send error mail to the postmaster"),
    OptionSpec(
        None, ("nosoftbounce",), "false", "softbounce", "drop permanently undeliverable mail"
    ),
    OptionSpec(
        None, ("softbounce",), "true", "softbounce", "keep undeliverable mail on the server"
    ),
    OptionSpec(
        "p", ("protocol", "proto"), "protocol", "protocol", "retrieval protocol", "--proto[col]"
    ),
    OptionSpec("U", ("uidl",), "true", "uidl", "force UIDL use (POP3)"),
    OptionSpec(None, ("idle",), "true", "idle", "wait for new mail with IMAP IDLE"),
    OptionSpec(None, ("port",), "string", "service", "same as --service (obsolete)"),
    OptionSpec("P", ("service",), "string", "service", "TCP service name or port number"),
    OptionSpec(None, ("auth",), "auth", "auth", "authentication method"),
    OptionSpec("t", ("timeout",), "number", "timeout", "server inactivity timeout, seconds"),
    OptionSpec("E", ("envelope",), "string", "envelope", "header holding the envelope address"),
    OptionSpec("Q", ("qvirtual",), "string", "qvirtual", "prefix to strip from local names"),
    OptionSpec(None, ("bad-header",), "badheader", "bad_header", "reject or accept bad headers"),
    OptionSpec(None, ("principal",), "string", "principal", "Kerberos/GSSAPI service principal"),
    OptionSpec(None, ("tracepolls",), "true", "tracepolls", "name the account in Received"),
    OptionSpec(
        "u", ("user", "username"), "string", "username", "login name on the server", "--user[name]"
    ),
    OptionSpec(
        "a", ("all", "fetchall"), "true", "fetchall", "fetch old and new messages", "--[fetch]all"
    ),
    OptionSpec("K", ("nokeep",), "false", "keep", "delete messages after retrieval"),
    OptionSpec("k", ("keep",), "true", "keep", "keep messages on the server"),
    OptionSpec("F", ("flush",), "true", "flush", "delete old (seen) messages"),
    OptionSpec(None, ("limitflush",), "true", "limitflush", "delete messages over the size limit"),
    OptionSpec("n", ("norewrite",), "true", "norewrite", "do not rewrite header addresses"),
    OptionSpec("l", ("limit",), "number", "limit", "skip messages larger than N octets"),
    OptionSpec("w", ("warnings",), "number", "warnings", "seconds between size warnings"),
    OptionSpec("S", ("smtphost",), "list", "smtphosts", "SMTP/LMTP hosts (comma list)"),
    OptionSpec(None, ("fetchdomains",), "list", "fetchdomains", "ETRN/ODMR domains (comma list)"),
    OptionSpec("D", ("smtpaddress",), "string", "smtpaddress", "domain appended to recipients"),
    OptionSpec(None, ("smtpname",), "string", "smtpname", "full recipient user@domain"),
    OptionSpec("Z", ("antispam",), "numlist", "antispam", "SMTP codes meaning spam (comma list)"),
    OptionSpec("b", ("batchlimit",), "number", "batchlimit", "messages per SMTP connection"),
    OptionSpec("B", ("fetchlimit",), "number", "fetchlimit", "messages per poll"),
    OptionSpec(None, ("fetchsizelimit",), "number", "fetchsizelimit", "sizes fetched per request"),
    OptionSpec(None, ("fastuidl",), "number", "fastuidl", "binary UIDL search every N polls"),
    OptionSpec("e", ("expunge",), "number", "expunge", "deletions between expunges"),
    OptionSpec("m", ("mda",), "string", "mda", "deliver with this command"),
    OptionSpec(None, ("bsmtp",), "path", "bsmtp", "append BSMTP to this file (- = stdout)"),
    OptionSpec(None, ("lmtp",), "true", "lmtp", "deliver with LMTP (RFC 2033)"),
    OptionSpec("r", ("folder",), "list", "folders", "IMAP folders (comma list)"),
    OptionSpec(None, ("showdots",), "true", "showdots", "progress dots even into log files"),
    OptionSpec("I", ("interface",), "string", "interface", "require interface/address/mask"),
    OptionSpec("M", ("monitor",), "string", "monitor", "poll only if interface had traffic"),
    OptionSpec(None, ("ssl",), "true", "ssl", "connect with TLS from the start"),
    OptionSpec(None, ("sslkey",), "path", "sslkey", "TLS client key file"),
    OptionSpec(None, ("sslcert",), "path", "sslcert", "TLS client certificate file"),
    OptionSpec(None, ("sslproto",), "string", "sslproto", "TLS version / STARTTLS policy"),
    OptionSpec(None, ("sslcertck",), "true", "sslcertck", "verify the server certificate"),
    OptionSpec(
        None, ("nosslcertck",), "false", "sslcertck", "do not verify the certificate (unsafe)"
    ),
    OptionSpec(None, ("sslcertfile",), "path", "sslcertfile", "trusted CA certificates file"),
    OptionSpec(None, ("sslcertpath",), "path", "sslcertpath", "trusted CA certificates directory"),
    OptionSpec(None, ("sslcommonname",), "string", "sslcommonname", "expected server name"),
    OptionSpec(None, ("sslfingerprint",), "string", "sslfingerprint", "expected key fingerprint"),
    OptionSpec(None, ("plugin",), "string", "plugin", "command that connects to the server"),
    OptionSpec(None, ("plugout",), "string", "plugout", "command that connects to the listener"),
    OptionSpec(None, ("configdump",), "true", "configdump", "dump the configuration (Python)"),
    OptionSpec("y", ("yydebug",), "true", "yydebug", "accepted and ignored"),
)

_BY_SHORT = {spec.short: spec for spec in OPTIONS if spec.short}
_BY_LONG = {name: spec for spec in OPTIONS for name in spec.longs}
_ALL_LONGS = tuple(name for spec in OPTIONS for name in spec.longs)

# -S, -m and --bsmtp each name the delivery target; fetchmail allows one.
_SINK_DESTS = frozenset({"smtphosts", "mda", "bsmtp"})

_PROTOCOLS = {p.value: p for p in MailProtocol}

# CLI --auth spellings (options.c): case-sensitive except "external";
# "kerberos" means v5 on the command line (the rc file says v4).
_AUTHS = {
    "password": Auth.PASSWORD,
    "kerberos": Auth.KERBEROS_V5,
    "kerberos_v5": Auth.KERBEROS_V5,
    "kerberos_v4": Auth.KERBEROS_V4,
    "ssh": Auth.SSH,
    "otp": Auth.OTP,
    "opie": Auth.OTP,
    "ntlm": Auth.NTLM,
    "cram": Auth.CRAM_MD5,
    "cram-md5": Auth.CRAM_MD5,
    "gssapi": Auth.GSSAPI,
    "any": Auth.ANY,
    "msn": Auth.MSN,
}

_NUMBER = re.compile(r"\s*[+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def parse_number(text: str) -> int:
    """Parse *text* as C ``strtol(text, &end, 0)`` consuming all of it (fetchmail's xatoi).

    >>> parse_number("0x10"), parse_number("010"), parse_number(" -7")
    (16, 8, -7)
    """
    if not _NUMBER.fullmatch(text):
        raise UsageError(f"String '{text}' is not a valid number string.")
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    digits = body.lstrip("+-")
    if digits[:2] in ("0x", "0X"):
        value = int(digits[2:], 16)
    elif digits.startswith("0"):
        value = int(digits, 8)  # C octal: "010" is 8
    else:
        value = int(digits, 10)
    value *= sign
    if value > _INT_MAX:
        raise UsageError(f"Value of string '{text}' is larger than {_INT_MAX}.")
    if value < _INT_MIN:
        raise UsageError(f"Value of string '{text}' is smaller than {_INT_MIN}.")
    return value


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are :class:`UsageError` (exit 5), not exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class _Record(argparse.Action):
    """Append ``(spec, value)`` to ``namespace.events`` so options apply in order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, "events", None) is None:
            namespace.events = []
        namespace.events.append((_BY_LONG[self.dest], values))


def build_parser() -> argparse.ArgumentParser:
    """Return the argparse parser for every fetchmail 6.4 option (see :data:`OPTIONS`).

    The parser expects the words produced by :func:`_normalise` (canonical
    ``--long[=value]`` words), so it runs without abbreviation guessing.
    """
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} [options] [server ...]",
        add_help=False,
        allow_abbrev=False,
    )
    for spec in OPTIONS:
        names = [f"--{name}" for name in spec.longs]
        if spec.short:
            names.insert(0, f"-{spec.short}")
        parser.add_argument(
            *names,
            dest=spec.longs[0],
            action=_Record,
            nargs=None if spec.takes_arg else 0,
            help=spec.help,
        )
    parser.add_argument("servers", nargs="*", help="poll only these servers")
    return parser


def format_help() -> str:
    """The ``-?`` text, in fetchmail's layout, one line per option of :data:`OPTIONS`."""
    lines = [f"usage:  {PROG} [options] [server ...]", "  Options are as follows:"]
    for spec in OPTIONS:
        short = f"-{spec.short}, " if spec.short else "    "
        long = spec.display or f"--{spec.longs[0]}"
        lines.append(f"  {short}{long.ljust(13)} {spec.help}")
    return "\n".join(lines) + "\n"


def _resolve_long(name: str) -> OptionSpec:
    """GNU getopt_long lookup: exact name, else a prefix naming exactly one option."""
    if name in _BY_LONG:
        return _BY_LONG[name]
    matches = [long for long in _ALL_LONGS if long.startswith(name)] if name else []
    specs = {id(_BY_LONG[m]): _BY_LONG[m] for m in matches}
    if not specs:
        raise UsageError(f"unrecognized option '--{name}'")
    if len(specs) > 1:
        listed = " ".join(f"'--{m}'" for m in matches)
        raise UsageError(f"option '--{name}' is ambiguous; possibilities: {listed}")
    return next(iter(specs.values()))


def _normalise(argv: Sequence[str]) -> tuple[list[str], bool]:
    """Rewrite *argv* the way GNU getopt reads it into canonical argparse words.

    Returns the words (options as ``--long`` / ``--long=value``, then ``--``
    and the server names) and whether ``-q`` was the last argument.
    """
    words: list[str] = []
    servers: list[str] = []
    quit_token_end = -1
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            servers.extend(argv[i:])
            break
        if word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            spec = _resolve_long(name)
            if spec.takes_arg and not eq:
                if i >= len(argv):
                    raise UsageError(f"option '--{spec.longs[0]}' requires an argument")
                value, i = argv[i], i + 1
            elif eq and not spec.takes_arg:
                raise UsageError(f"option '--{spec.longs[0]}' doesn't allow an argument")
            words.append(f"--{spec.longs[0]}={value}" if spec.takes_arg else f"--{spec.longs[0]}")
        elif word.startswith("-") and word != "-":
            pos = 1
            while pos < len(word):
                char = word[pos]
                pos += 1
                short = _BY_SHORT.get(char)
                if short is None:
                    raise UsageError(f"invalid option -- '{char}'")
                if not short.takes_arg:
                    words.append(f"--{short.longs[0]}")
                    continue
                value = word[pos:]
                if not value:
                    if i >= len(argv):
                        raise UsageError(f"option requires an argument -- '{char}'")
                    value, i = argv[i], i + 1
                words.append(f"--{short.longs[0]}={value}")
                break
        else:
            servers.append(word)
            continue
        if words and words[-1] == "--quit":
            quit_token_end = i
    return [*words, "--", *servers], quit_token_end == len(argv)


def _absolute(path: str) -> str:
    """fetchmail's prependdir(): prefix the cwd to a relative path, without normalising."""
    if path == "-" or path.startswith("/") or not path:
        return path
    return os.path.join(os.getcwd(), path)


def _split(text: str) -> tuple[str, ...]:
    """Comma list; empty items are dropped as C strtok() does."""
    return tuple(item for item in text.split(",") if item)


def _apply(values: dict[str, Any], spec: OptionSpec, raw: str | None) -> None:
    """Apply one option occurrence to *values* (field name -> value)."""
    kind, dest = spec.kind, spec.dest
    arg = raw or ""
    if kind == "true":
        values[dest] = True
    elif kind == "false":
        values[dest] = False
    elif kind == "silent":
        values["silent"], values["verbose"] = True, 0
    elif kind == "verbose":
        values["silent"], values["verbose"] = False, values.get("verbose", 0) + 1
    elif kind == "number":
        values[dest] = parse_number(arg)
    elif kind == "string":
        values[dest] = arg
    elif kind == "path":
        values[dest] = _absolute(arg)
    elif kind == "list":
        values[dest] = values.get(dest, ()) + _split(arg)
    elif kind == "numlist":
        values[dest] = values.get(dest, ()) + tuple(parse_number(x) for x in _split(arg))
    elif kind == "protocol":
        _apply_protocol(values, arg)
    elif kind == "auth":
        auth = Auth.EXTERNAL if arg.lower() == "external" else _AUTHS.get(arg)
        if auth is None:
            raise UsageError(f"Invalid authentication `{arg}' specified.")
        values["auth"] = auth
    elif kind == "badheader":
        try:
            values["bad_header"] = BadHeader(arg.lower())
        except ValueError:
            raise UsageError(f"Invalid bad-header policy `{arg}' specified.") from None
    else:  # pragma: no cover - the table only uses the kinds above
        raise AssertionError(kind)


def _apply_protocol(values: dict[str, Any], arg: str) -> None:
    """``-p``: kpop also sets service ``kpop`` and Kerberos V5 at this point of argv."""
    protocol = _PROTOCOLS.get(arg.lower())
    if protocol is None:
        raise UsageError(f"Invalid protocol `{arg}' specified.")
    values["protocol"] = protocol
    if protocol is MailProtocol.KPOP:
        values["service"] = "kpop"
        values["auth"] = Auth.KERBEROS_V5


_FIELDS = frozenset(f.name for f in fields(CommandLineOptions))


def parse_args(argv: Sequence[str]) -> CommandLineOptions:
    """Turn *argv* (without the program name) into :class:`CommandLineOptions`.

    Raises :class:`HelpRequested` for ``-?``/``--help`` and
    :class:`UsageError` (exit 5) for anything fetchmail rejects.
    """
    words, quit_is_last = _normalise(argv)
    namespace = argparse.Namespace(events=[])
    build_parser().parse_args(words, namespace=namespace)
    events: list[tuple[OptionSpec, str | list[str]]] = namespace.events
    if any(spec.kind == "help" for spec, _ in events):
        raise HelpRequested()
    values: dict[str, Any] = {}
    sinks = 0
    for spec, raw in events:
        _apply(values, spec, raw if isinstance(raw, str) else None)
        sinks += spec.dest in _SINK_DESTS
    if sinks > 1:
        raise UsageError("only one of --smtphost, --mda and --bsmtp may be given")
    unknown = set(values) - _FIELDS
    assert not unknown, unknown  # the table names only CommandLineOptions fields
    return CommandLineOptions(
        **values,
        servers=tuple(namespace.servers),
        quit_is_last=quit_is_last and bool(values.get("quit")),
        argv=tuple(argv),
    )


# --- main -----------------------------------------------------------------


def _load_config(options: CommandLineOptions) -> LoadResult:
    """Load the rc file and apply the command line (:func:`~.config.rcfile.load_config`).

    Imported here rather than at the top, like :func:`_run`'s import: ``--help``
    and usage errors then answer without loading the parser and the engine.
    """
    from pyfetchmail.config.rcfile import load_config

    return load_config(options)


def _run(result: LoadResult, options: CommandLineOptions) -> int:
    """Hand over to the service layer (:func:`pyfetchmail.service.daemon.run`)."""
    from pyfetchmail.service.daemon import run

    return int(run(result, options))


def _say(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")


def _error_text(message: str, *, exact: bool = False) -> str:
    """Error lines for stderr.

    With *exact* (messages from rc loading, which are fetchmail's own stderr
    lines) only an existing ``fetchmail`` prefix becomes ``pyfetchmail``;
    lines fetchmail prints bare stay bare.  Otherwise every line gets the
    program-name prefix once.
    """
    lines = []
    for line in message.splitlines() or [""]:
        if line.startswith("fetchmail:"):
            lines.append("py" + line)
        elif line.startswith(f"{PROG}:") or exact:
            lines.append(line)
        else:
            lines.append(f"{PROG}: {line}")
    return "\n".join(lines) + "\n"


def format_warning(text: str) -> str:
    """One rc-loading warning as fetchmail prints it: only its own prefix is renamed."""
    return _error_text(text, exact=True).rstrip("\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run pyfetchmail with *argv* (default ``sys.argv[1:]``); return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = 0
    try:
        try:
            options = parse_args(args)
        except HelpRequested:
            sys.stdout.write(format_help())
            return int(ExitCode.SUCCESS)
        except UsageError as exc:
            sys.stderr.write(f"{PROG}: {exc}\n{format_help()}")
            return int(ExitCode.SYNTAX)
        verbose = options.verbose
        if options.version:
            sys.stdout.write(version_banner())
            sys.stdout.flush()
        try:
            result = _load_config(options)
        except FetchmailError as exc:
            sys.stderr.write(_error_text(str(exc), exact=True))
            return int(exc.exit_code)
        for warning in result.warnings:
            sys.stderr.write(format_warning(warning) + "\n")
        sys.stderr.flush()
        if options.version:
            text, missing = version_dump(
                result, verbose=options.verbose, implicit=not options.servers
            )
            sys.stdout.write(text)
            if missing:
                sys.stdout.flush()
                sys.stderr.write(missing)
            return int(ExitCode.SUCCESS)
        if options.configdump:
            sys.stdout.write(configdump(result, implicit=not options.servers))
            return int(ExitCode.SUCCESS)
        return _run(result, options)
    except FetchmailError as exc:
        sys.stderr.write(_error_text(str(exc)))
        return int(exc.exit_code)
    except KeyboardInterrupt:
        _say("interrupted")
        return int(ExitCode.NOMAIL)
    except Exception as exc:
        _say(f"internal error: {type(exc).__name__}: {exc}")
        if verbose:
            traceback.print_exc(file=sys.stderr)
        return int(ExitCode.UNDEFINED)
