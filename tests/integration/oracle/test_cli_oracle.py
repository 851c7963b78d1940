"""Oracle: ``--configdump`` and ``-V`` of pyfetchmail against the real fetchmail 6.4.37.

Both programs run in a subprocess with the same minimal environment, the same
temporary HOME (so every default path is the same) and the same rc files
(mode 0600).  They run as the invoking user: our interpreter lives under
/root, which user ``nobody`` cannot reach, so "run both as nobody" is not
possible here; running both as the same user compares like with like (root's
own defaults, e.g. postmaster, apply to both).

Normalised before comparing (documented deviations, see pyfetchmail(1)):
``feature_options``, the ``-V`` banner, the program-name prefix of stderr
lines, fetchmail's "Running as root is discouraged." warning, and the
``-V -v`` password lines (we never print passwords).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.samples import SAMPLES

pytestmark = [pytest.mark.oracle, pytest.mark.timeout(120)]

FETCHMAIL = shutil.which("fetchmail") or "/usr/bin/fetchmail"


def _require(ok: bool, reason: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _oracle_available() -> None:
    _require(os.access(FETCHMAIL, os.X_OK), "fetchmail (the oracle) is not installed")
    _require(
        importlib.util.find_spec("pyfetchmail.config.rcfile") is not None,
        "pyfetchmail.config.rcfile is not available yet",
    )


@dataclass(frozen=True)
class Run:
    status: int
    out: str
    err: str


def _run(program: list[str], argv: list[str], home: Path, stdin: str | None = None) -> Run:
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    done = subprocess.run(
        [*program, *argv],
        cwd=home,
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=60,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def _both(argv: list[str], home: Path, stdin: str | None = None) -> tuple[Run, Run]:
    theirs = _run([FETCHMAIL], argv, home, stdin)
    ours = _run([sys.executable, "-m", "pyfetchmail"], argv, home, stdin)
    return theirs, ours


_FEATURES = re.compile(r"^feature_options = .*$", re.MULTILINE)
_SECRET = re.compile(r'^  (Password|APOP secret|RPOP id) = ".*"\.$', re.MULTILINE)


def _norm_out(text: str) -> str:
    text = _FEATURES.sub("feature_options = <features>", text)
    # -V: drop the banner (everything before the settings report).
    if "\nTaking options from command line" in text:
        text = text[text.index("\nTaking options from command line") + 1 :]
    return _SECRET.sub(lambda m: f"  {m.group(1)} is set.", text)


def _norm_err(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        if line.startswith("pyfetchmail:"):
            line = line[2:]
        line = line.removeprefix("fetchmail: ")
        if line != "WARNING: Running as root is discouraged.":
            lines.append(line)
    return lines


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def _rc(home: Path, text: str, name: str = "rc", mode: int = 0o600) -> str:
    path = home / name
    path.write_text(text)
    path.chmod(mode)
    return name


RC_TEXTS = {
    "small": (SAMPLES / "rc-small.fetchmailrc").read_text(),
    "full": (SAMPLES / "rc-full.fetchmailrc").read_text(),
    "min": (SAMPLES / "rc-min.fetchmailrc").read_text(),
    "skips": "poll a.example proto pop3 user u pass p\n"
    "skip b.example proto imap user v pass q\n"
    "poll c.example user w pass r keep\n",
    "many": "poll m1.example via v1.example proto pop3 auth ssh monitor eth0 no envelope\n"
    '  checkalias qvirtual "pre-" user "x1" pass "p" is a b here limit 5000 warnings 0\n'
    "  sslproto '' no sslcertck smtpaddress dom.example smtpname \"n@d\" lmtp\n"
    "  smtphost h1/24 fetchsizelimit 0 fastuidl 1 expunge 0 antispam -1\n"
    'poll m2.example proto imap envelope 2 "Delivered-To" user y is * here limit 10\n'
    '  ssl sslfingerprint "00:11" no rewrite\n'
    "poll m3.example proto rpop user z pass zz\n"
    "poll m4.example proto apop user w pass ww sslproto ssl23 fetchall keep\n"
    "poll m5.example proto pop3 auth kerberos_v5 port 1109 user k\n"
    'poll m6.example proto imap auth gssapi user g mda "procmail" bsmtp -\n'
    "poll m7.example proto pop3 auth otp user o\n"
    "poll m8.example proto pop3 auth msn user o\n"
    'poll m10.example proto pop3 auth cram-md5 user o is "o@x"="oo" here\n',
}


@pytest.mark.parametrize("rc", sorted(RC_TEXTS))
@pytest.mark.parametrize("mode", [["--configdump"], ["-V"], ["-V", "-v"]])
def test_rc_files_dump_like_fetchmail(home: Path, rc: str, mode: list[str]) -> None:
    name = _rc(home, RC_TEXTS[rc])
    theirs, ours = _both(["-f", name, *mode], home)
    assert ours.status == theirs.status
    assert _norm_out(ours.out) == _norm_out(theirs.out)
    assert _norm_err(ours.err) == _norm_err(theirs.err)


CLI_CASES = [
    [],
    ["-S", "a,,b", "-r", "X,Y", "-r", "Z", "-Z", "550,0x10", "-k"],
    ["-p", "kpop"],
    ["--auth", "password", "-p", "KPOP"],
    ["-u", "joe", "-t", "0x10", "--ssl", "--sslproto", "tls1.3+", "--nosslcertck"],
    ["--bad-header", "ACCEPT", "--tracepolls", "-U", "-E", "X-To", "-Q", "pre-"],
    ["b.example"],
    ["new.example", "a.example"],
    ["-d", "300", "--nobounce", "--nosoftbounce", "--syslog", "--invisible", "--showdots"],
    ["--postmaster", "pm", "-N", "-c", "-s"],
    ["-i", "ids", "--bsmtp", "out", "--sslcertfile", "ca", "--sslcertpath", "../d"],
    ["-l", "010", "-w", "60", "-b", "3", "-B", "5", "--fetchsizelimit", "0", "--fastuidl", "1"],
    ["-e", "2", "--sslkey", "k", "--sslcert", "c", "--sslcommonname", "cn"],
    ["-m", "procmail -d %T", "--fetchdomains", "d1,d2", "-D", "dom", "--smtpname", "a@b"],
    ["--lmtp", "-S", "/var/run/lmtp"],
    ["-I", "eth0/10.0.0.1/255.0.0.0", "-M", "eth0", "--plugin", "nc %h %p"],
    ["--plugout", "nc x 25", "--principal", "p/h", "--sslfingerprint", "AA:BB"],
    ["-a", "-F", "--limitflush", "-n", "-P", "1110", "-K"],
    ["--idle"],
    ["--fetchm", "rc", "--use", "jane", "--prot", "pop3"],
    ["-kvd300"],
]


@pytest.mark.parametrize("argv", CLI_CASES, ids=lambda a: " ".join(a) or "none")
@pytest.mark.parametrize("mode", [["--configdump"], ["-V"]])
def test_command_line_options_dump_like_fetchmail(
    home: Path, argv: list[str], mode: list[str]
) -> None:
    name = _rc(home, RC_TEXTS["skips"])
    theirs, ours = _both(["-f", name, *mode, *argv], home)
    assert ours.status == theirs.status, (theirs.err, ours.err)
    if theirs.status == 0:
        assert _norm_out(ours.out) == _norm_out(theirs.out)
        assert _norm_err(ours.err) == _norm_err(theirs.err)


def test_rc_from_stdin(home: Path) -> None:
    theirs, ours = _both(["-f", "-", "--configdump"], home, stdin=RC_TEXTS["small"])
    assert (ours.status, _norm_out(ours.out)) == (theirs.status, _norm_out(theirs.out))


def test_saved_uids_are_reported(home: Path) -> None:
    name = _rc(home, RC_TEXTS["skips"])
    ids = home / ".fetchids"
    ids.write_text("u@a.example uid-1\nU@A.EXAMPLE uid-2\nw@c.example x\nzz@q.example y\n")
    ids.chmod(0o600)
    for mode in (["-V"], ["-V", "-v"]):
        theirs, ours = _both(["-f", name, *mode], home)
        assert _norm_out(ours.out) == _norm_out(theirs.out)


@pytest.mark.parametrize(
    ("rc_text", "rc_mode", "argv"),
    [
        ("poll a.example user u pass p\n", 0o644, ["--configdump"]),
        ("poll a.example user u pass p\n", 0o640, ["--configdump"]),
        ("poll a.example user u pass p\n", 0o710, ["--configdump"]),
        ("poll a.example user u pass p\n", 0o644, ["-V"]),
        ("poll a.example keep user u\n", 0o600, ["--configdump"]),
        ("POLL a.example\n", 0o600, ["--configdump"]),
        ("poll a.example proto imap user u idle\npoll b user v idle\n", 0o600, ["--configdump"]),
        ("poll a.example user u\n", 0o600, ["--configdump", "-d", "x"]),
        ("poll a.example user u\n", 0o600, ["--configdump", "-S", "a", "-m", "b"]),
        ("poll a.example user u\n", 0o600, ["--configdump", "-p", "foo"]),
        ("poll a.example user u\n", 0o600, ["--configdump", "--auth", "Password"]),
        ("poll a.example user u\n", 0o600, ["--configdump", "--ss"]),
        ("", 0o600, ["--configdump"]),
    ],
)
def test_exit_status_like_fetchmail(
    home: Path, rc_text: str, rc_mode: int, argv: list[str]
) -> None:
    name = _rc(home, rc_text, mode=rc_mode)
    theirs, ours = _both(["-f", name, *argv], home)
    expected = theirs.status
    if argv[-1] == "--ss":
        expected = 5  # deviation: fetchmail exits 0 after an unusable option
    assert ours.status == expected, (theirs.err, ours.err)


def test_unknown_option_deviation(home: Path) -> None:
    theirs, ours = _both(["--bogus"], home)
    assert theirs.status == 0
    assert theirs.out.startswith("usage:  fetchmail [options] [server ...]")
    assert ours.status == 5
    assert ours.out == ""
    assert ours.err.startswith("pyfetchmail: unrecognized option '--bogus'\n")


@pytest.mark.parametrize(
    ("rc_text", "rc_mode"),
    [
        ("POLL a.example\n", 0o600),
        ("poll a.example keep user u\n", 0o600),
        ("poll a.example user u pass p\n", 0o644),
        ("poll a.example user u pass p\ndefaults keep\n", 0o600),
        ("poll a.example proto imap user u idle\npoll b user v idle\n", 0o600),
    ],
)
def test_config_error_messages_like_fetchmail(home: Path, rc_text: str, rc_mode: int) -> None:
    name = _rc(home, rc_text, mode=rc_mode)
    theirs, ours = _both(["-f", name, "--configdump"], home)
    assert ours.status == theirs.status
    assert _norm_err(ours.err) == _norm_err(theirs.err)


def test_auth_external_deviation(home: Path) -> None:
    """fetchmail drops ``auth external`` from both dumps; we show it (documented)."""
    name = _rc(home, "poll a.example proto imap auth external user u\n")
    theirs, ours = _both(["-f", name, "--configdump"], home)
    assert '"auth":' not in theirs.out
    assert _norm_out(ours.out).replace('\t    "auth":"external",\n', "") == _norm_out(theirs.out)
    theirs, ours = _both(["-f", name, "-V"], home)
    extra = "  External authentication will be forced.\n"
    assert extra not in theirs.out
    assert _norm_out(ours.out).replace(extra, "") == _norm_out(theirs.out)
