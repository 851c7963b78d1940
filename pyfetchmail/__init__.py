"""pyfetchmail: a fetchmail-compatible mail retrieval daemon.

Only the version lives here; importing the package must stay cheap because the
console script imports it on every invocation (including daemon wake-ups).
"""

__all__ = ["FETCHMAIL_COMPAT_VERSION", "__version__"]

__version__ = "0.1.0"

#: The fetchmail release whose behaviour (rc language, options, exit codes,
#: output formats) this package reproduces.
FETCHMAIL_COMPAT_VERSION = "6.4.37"
