"""Helpers for rc parser tests: a fixed identity and one-call loading of rc text."""

from __future__ import annotations

from pyfetchmail.config.env import Identity
from pyfetchmail.config.model import Config, Query
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.config.rcfile import LoadResult, build_config
from pyfetchmail.config.rcgrammar import parse_rc

__all__ = ["IDENT", "RCFILE", "ROOT_IDENT", "load", "load_result", "query"]

RCFILE = "/home/alice/.fetchmailrc"
IDENT = Identity(
    user="alice",
    uid=1000,
    home="/home/alice",
    fmhome="/home/alice",
    rcfile=RCFILE,
    idfile="/home/alice/.fetchids",
    pidfile="/home/alice/.fetchmail.pid",
    netrc="/home/alice/.netrc",
    fetchmailhost="vm",
)
ROOT_IDENT = Identity(
    user="root",
    uid=0,
    home="/root",
    fmhome="/root",
    rcfile="/root/.fetchmailrc",
    idfile="/root/.fetchids",
    pidfile="/var/run/fetchmail.pid",
    netrc="/root/.netrc",
    fetchmailhost="vm",
)


def load_result(
    text: str,
    options: CommandLineOptions | None = None,
    identity: Identity = IDENT,
    rcfile: str = RCFILE,
) -> LoadResult:
    """Parse and merge *text* as if it were *rcfile* (no file access)."""
    rcdir = rcfile.rpartition("/")[0] or "/"
    raw = parse_rc(text, rcfile, rcdir)
    return build_config(raw, options or CommandLineOptions(), identity, rcfile=rcfile)


def load(text: str, options: CommandLineOptions | None = None) -> Config:
    """The :class:`Config` of *text*."""
    return load_result(text, options).config


def query(text: str, index: int = 0, options: CommandLineOptions | None = None) -> Query:
    """Query number *index* of *text*."""
    return load(text, options).queries[index]
