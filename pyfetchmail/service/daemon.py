"""Running pyfetchmail: the single run and the daemon loop (fetchmail(1), "DAEMON MODE").

:func:`run` is called by :func:`pyfetchmail.cli.main` after option and rc
parsing.  In order it:

1. sets up logging (:mod:`pyfetchmail.log`) and umask 077;
2. applies the second-invocation rules when another instance holds the lock
   (:func:`pyfetchmail.service.lock.handle_running_instance`: ``--quit``, wake-up,
   refusals) — before any password is asked for, so waking a daemon never
   prompts;
3. resolves the password of every active query
   (:mod:`pyfetchmail.auth.credentials`), prompting in the foreground;
4. in daemon mode (``-d N``/``set daemon N``, not ``-c``, not ``-d 0``)
   detaches unless ``-N``: fork, setsid, fork (the parent exits 0), stdin
   from ``/dev/null``, stdout/stderr to the logfile or ``/dev/null``,
   ``chdir /``, SIGHUP ignored (non-root);
5. creates the lock (PID, plus the interval for a daemon) and runs cycles
   (:class:`pyfetchmail.service.cycle.CycleRunner`): one for a single run, else
   cycle / sleep / cycle until a stop signal, with SIGUSR1 wake-ups;
6. at the start of every cycle checks the rc file's mtime and, when it
   changed, re-executes ``python -m pyfetchmail`` with the original
   arguments from the original directory (same PID; the new process finds
   its own PID in the lock and takes it over) — not for ``-f -``;
7. on SIGTERM/SIGINT/SIGQUIT logs ``terminated with signal N``, saves state,
   removes the lock and returns the last status.

IDLE queries (``idle`` with IMAP) are handed to :func:`pyfetchmail.service.idle.run_idle`,
one thread each (:class:`pyfetchmail.service.idle.IdleGroup`); every poll
context of the run shares one stop event, set when the run ends.  The
concrete engine, store and credentials come from :mod:`.wiring`.

Differences from fetchmail 6.4 (all deliberate):

- the second-invocation check comes before password lookup, so waking or
  stopping a daemon never asks for (or fails for lack of) a password;
- ``--quit`` also waits (up to 10 s) for the daemon to be gone when it is
  the last argument, so a service manager's stop command returns only then;
- a SIGUSR1 that arrives during a poll is remembered and starts the next
  cycle at once (fetchmail drops it), see :mod:`pyfetchmail.service.signals`;
- a stop signal during a poll abandons the message in flight safely instead
  of calling ``exit()`` from the handler (the engine's invariants make this
  lose nothing; the message is fetched again next time);
- a poll that raises an unexpected exception ends only that query (status
  23), never the daemon;
- warning mails (:mod:`pyfetchmail.delivery.warnings`) are sent through the query's
  sink as fetchmail does, with fetchmail's subjects.

Invariants: the lock is removed on every way out of :func:`run` that created
it, except a re-exec (which keeps it for the same PID); no exception other
than a :class:`~pyfetchmail.errors.FetchmailError` from setup (bad logfile,
missing password, lock failure) leaves this function.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import sys
import time

from pyfetchmail import __version__
from pyfetchmail.config.model import Query
from pyfetchmail.config.overrides import CommandLineOptions
from pyfetchmail.config.rcfile import LoadResult
from pyfetchmail.delivery.warnings import OversizedItem, oversized_warning, send_warning_mail
from pyfetchmail.engine.stats import OversizedMessage, PollStats
from pyfetchmail.errors import ConfigError, FetchmailError, LocalIOError
from pyfetchmail.exitcodes import ExitCode, aggregate
from pyfetchmail.log import register_secret, reset_logging, setup_logging
from pyfetchmail.service import wiring
from pyfetchmail.service.cycle import CycleRunner
from pyfetchmail.service.idle import IdleGroup, is_idle
from pyfetchmail.service.lock import PidLock, handle_running_instance, read_lock
from pyfetchmail.service.signals import SignalState, Terminated, WakeReason
from pyfetchmail.service.wiring import PollFunc
from pyfetchmail.state.uidstore import UidStore

__all__ = ["PollObserver", "run"]

log = logging.getLogger(__name__)


def _daemon_interval(result: LoadResult, options: CommandLineOptions) -> int:
    if options.check:
        return 0
    if options.daemon is not None:
        return max(options.daemon, 0)
    return max(result.config.run.poll_interval, 0)


def _rc_mtime(result: LoadResult) -> float | None:
    if result.rcfile in ("", "-") or not result.rcfile_exists:
        return None
    try:
        return os.stat(result.rcfile).st_mtime
    except OSError:
        return None


def _reexec(result: LoadResult, options: CommandLineOptions, cwd: str) -> None:
    """Replace this process by a fresh ``python -m pyfetchmail`` (same PID)."""
    log.info("restarting pyfetchmail (%s changed)", result.rcfile)
    for handler in logging.getLogger("pyfetchmail").handlers:
        handler.flush()
    with contextlib.suppress(OSError):
        os.chdir(cwd)
    argv = [sys.executable, "-m", "pyfetchmail", *options.argv]
    os.execv(sys.executable, argv)


def _detach(logfile: str | None) -> None:
    """Become a daemon: double fork, new session, standard fds redirected."""
    for signum in (signal.SIGTTOU, signal.SIGTTIN, signal.SIGTSTP):
        signal.signal(signum, signal.SIG_IGN)
    for handler in logging.getLogger("pyfetchmail").handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        if os.fork():
            os._exit(0)
        os.setsid()
        # The session leader's exit would send SIGHUP to the orphaned group.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if os.fork():
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        out = devnull
        if logfile:
            with contextlib.suppress(OSError):
                out = os.open(logfile, os.O_WRONLY | os.O_APPEND)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.chdir("/")
    except OSError as exc:
        raise FetchmailError("Cannot detach into background. Aborting.") from exc


class PollObserver:
    """What the engine reported about each poll (``PollContext.on_stats``).

    - timeouts, for the wedged-query rule (:class:`~pyfetchmail.service.cycle.CycleRunner`);
    - oversized messages, for the warning mail of fetchmail(1), "warnings": only from a
      detached daemon, sent when a new oversized message shows up and otherwise
      at most every ``warnings`` seconds per query.
    """

    def __init__(self, result: LoadResult, *, warn_oversized: bool) -> None:
        self._result = result
        self._warn_oversized = warn_oversized
        self._timed_out: dict[int, bool] = {}
        self._oversized_seen: dict[int, frozenset[tuple[str | None, str | None, int]]] = {}
        self._warned_at: dict[int, float] = {}

    def on_stats(self, query: Query, stats: PollStats) -> None:
        self._timed_out[id(query)] = bool(stats.timed_out)
        if self._warn_oversized and stats.oversized:
            self._oversized(query, stats.oversized)

    def timed_out(self, query: Query, _status: int) -> bool:
        return self._timed_out.get(id(query), False)

    def _oversized(self, query: Query, found: tuple[OversizedMessage, ...]) -> None:
        key = id(query)
        ids = frozenset((m.folder, m.uid, m.number) for m in found)
        is_new = not ids <= self._oversized_seen.get(key, frozenset())
        self._oversized_seen[key] = ids
        last = self._warned_at.get(key)
        now = time.monotonic()
        if not is_new and last is not None and now - last < query.user.warnings:
            return
        self._warned_at[key] = now
        items = [OversizedItem(m.number, m.size, m.flushed) for m in found]
        mail = oversized_warning(query.server.pollname, query.user.remote, items)
        send_warning_mail(query, self._result.config.run, wiring.fetchmailhost(self._result), mail)


def _save_store(store: UidStore | None, options: CommandLineOptions) -> None:
    if store is None or options.check:
        return
    try:
        store.save()
    except (LocalIOError, OSError) as exc:
        log.error("could not save the UID state: %s", exc)


def _say_time(options: CommandLineOptions, syslog: bool) -> bool:
    """fetchmail shows sleep/wake times when verbose, or on a terminal without syslog."""
    try:
        tty = sys.stdout.isatty()
    except (ValueError, OSError):
        tty = False
    return options.verbose > 0 or (not options.silent and not syslog and tty)


def run(
    result: LoadResult,
    options: CommandLineOptions,
    *,
    poll: PollFunc | None = None,
    interactive: bool | None = None,
) -> int:
    """Run pyfetchmail once or as a daemon; return the exit status.

    :param result: the loaded configuration (``config.rcfile.LoadResult``).
    :param options: the command line.
    :param poll: per-query poll function (tests); default the fetch engine.
    :param interactive: allow password prompts (``None``: iff stdin is a tty).
    :raises FetchmailError: setup failed (logfile, password, lock, detach).
    """
    setup_logging(options, result.config.run)
    # Files we create (lock, state, temporary spool) are private (fetchmail(1), "FILES").
    # Process-wide settings are restored on return, for callers that go on
    # (tests calling cli.main); a daemon never returns here.
    old_umask = os.umask(0o077)
    old_core = resource.getrlimit(resource.RLIMIT_CORE)
    try:
        return _run(result, options, poll, interactive)
    finally:
        os.umask(old_umask)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CORE, old_core)
        reset_logging()


def _run(
    result: LoadResult,
    options: CommandLineOptions,
    poll: PollFunc | None,
    interactive: bool | None,
) -> int:
    config = result.config
    run_ctl = config.run
    cwd = os.getcwd()
    rc_mtime = _rc_mtime(result)
    pidfile = run_ctl.pidfile or getattr(result.identity, "pidfile", "")
    if not config.queries and not (options.quit and options.quit_is_last):
        # fetchmail checks this before the lock, except for a pure --quit.
        raise ConfigError("no mailservers have been specified.")
    verdict = handle_running_instance(options, pidfile)
    if verdict is not None:
        return verdict

    interval = _daemon_interval(result, options)
    daemon = interval > 0
    queries = config.active_queries
    credentials = wiring.resolve_all_credentials(queries, result, interactive=interactive)
    for query in config.queries:  # SMTP AUTH secrets are masked in logs too
        register_secret(query.server.esmtppassword)
    if not (options.verbose and not daemon):
        with contextlib.suppress(ValueError, OSError):
            hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
            resource.setrlimit(resource.RLIMIT_CORE, (0, hard))  # no passwords in cores

    existing = read_lock(pidfile)
    reexeced = existing is not None and existing.pid == os.getpid()
    detached = daemon and not options.nodetach and not reexeced and os.getppid() != 1
    if detached:
        _detach(run_ctl.logfile)
    detached = detached or (daemon and reexeced and not options.nodetach)

    lock = PidLock(pidfile)
    with SignalState(detached=detached) as sig:
        lock.acquire(interval if daemon else None)
        store: UidStore | None = None
        idle = IdleGroup()  # its stop event is every poll context's stop event
        observer = PollObserver(result, warn_oversized=detached)
        try:
            if daemon:
                log.info("starting pyfetchmail %s daemon", __version__)
            regular = [i for i, q in enumerate(queries) if not is_idle(q)]
            if poll is None:
                store = wiring.load_store(result)
                make_context = wiring.poll_context_factory(
                    result, options, store, daemon=daemon,
                    on_stats=observer.on_stats, stop=idle.stop_event,
                )  # fmt: skip
                poll = wiring.engine_poll(make_context)
                idle.start(queries, credentials, make_context, sig)
            runner = CycleRunner(
                queries=tuple(queries[i] for i in regular),
                credentials=tuple(credentials[i] for i in regular),
                poll=poll,
                daemon=daemon,
                verbose=options.verbose,
                timed_out=observer.timed_out,
                notify=None if store is None else wiring.notifier(result),
            )
            status = _loop(result, options, runner, sig, interval, rc_mtime, cwd, store, idle)
        finally:
            idle.stop()
            _save_store(store, options)
            lock.release()
    return status


def _loop(
    result: LoadResult,
    options: CommandLineOptions,
    runner: CycleRunner,
    sig: SignalState,
    interval: int,
    rc_mtime: float | None,
    cwd: str,
    store: UidStore | None,
    idle: IdleGroup,
) -> int:
    """Cycles until done; returns the exit status."""
    last: int | None = None
    syslog = result.config.run.syslog
    while True:
        if rc_mtime is not None:
            now_mtime = _rc_mtime(result)
            if now_mtime is not None and now_mtime > rc_mtime:
                idle.stop()  # let IDLE loops log out rather than vanish mid-message
                _save_store(store, options)
                _reexec(result, options, cwd)
        partial: list[int] = []
        try:
            with sig.polling():
                last = runner.cycle(partial)
        except Terminated:
            if partial:
                last = aggregate(partial)
            break
        _save_store(store, options)
        if interval <= 0:
            # fetchmail stays in IDLE until it is stopped; run_idle returns
            # by itself when the server cannot IDLE.
            while idle.threads:
                reason = sig.sleep(3600.0, done=idle.finished)
                if reason is WakeReason.WAKE:
                    sig.take_wake()
                    idle.wake()
                elif reason is not WakeReason.TIMEOUT:
                    break
            break
        if runner.all_wedged:
            log.error("All connections are wedged.  Exiting.")
            last = int(ExitCode.AUTHFAIL)
            break
        if _say_time(options, syslog):
            log.info("sleeping at %s for %d seconds", time.strftime("%c"), interval)
        reason = sig.sleep(interval)
        if reason is WakeReason.STOP:
            break
        if reason is WakeReason.WAKE:
            signum = sig.take_wake()
            if not options.silent:
                log.info("awakened by signal %d", signum or signal.SIGUSR1)
            runner.unwedge()
            idle.wake()
        if _say_time(options, syslog):
            log.info("awakened at %s", time.strftime("%c"))
    status = last if last is not None else int(ExitCode.SUCCESS)
    if sig.stop_signum is not None:
        log.info("terminated with signal %d", sig.stop_signum)
    elif options.verbose:
        log.info("normal termination, status %d", status)
    return status
